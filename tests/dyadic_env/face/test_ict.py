"""The ICT-FaceKit head as a FLAME-format model: layout, joints, skinning, and what frames do to it."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from dyadic_env.expression_basis import ICT_ARKIT_EXPRESSIONS, ict_index
from dyadic_env.face import ict
from dyadic_env.face.model import FaceModel, face_model_dir


@pytest.fixture(scope="module")
def head() -> ict.IctHead:
    return ict.load_ict_head()


@pytest.fixture(scope="module")
def built(head: ict.IctHead) -> dict:
    return ict.build_ict_flame(head)


@pytest.fixture(scope="module")
def face() -> FaceModel:
    return FaceModel(face_model_dir("ict-arkit"), "ict-arkit")


def frame(**values: float) -> np.ndarray:
    """One frame from blendshape names plus ``pitch``/``yaw``/``roll`` (neck) and ``jaw`` (opening)."""
    f = np.zeros(56, np.float32)
    pose = {"pitch": 50, "yaw": 51, "roll": 52, "jaw": 53}
    for name, value in values.items():
        f[pose[name] if name in pose else ict_index(name)] = value
    return f


def test_model_has_flame_layout(built: dict, head: ict.IctHead) -> None:
    m = built["model"]
    v = len(m["v_template"])
    assert v == len(built["keep"]) == sum(b - a for a, b in ict.ICT_PARTS.values())
    assert m["shapedirs"].shape == (v, 3, 400)
    assert m["posedirs"].shape == (v, 3, 36)
    assert m["J_regressor"].shape == (5, v)
    assert m["weights"].shape == (v, 5)
    np.testing.assert_allclose(m["weights"].sum(1), 1.0, atol=1e-5)
    assert m["f"].min() >= 0 and m["f"].max() < v
    np.testing.assert_array_equal(m["kintree_table"][1], np.arange(5))
    np.testing.assert_array_equal(m["kintree_table"][0, 1:], [0, 1, 1, 1])
    # Identity directions are zeros; expressions follow ICT_ARKIT_EXPRESSIONS, then zeros.
    assert not m["shapedirs"][:, :, :300].any()
    assert not m["shapedirs"][:, :, 350:].any()
    for i in (0, ict_index("mouthSmile_L"), 49):
        expected = head.delta(ICT_ARKIT_EXPRESSIONS[i])[built["keep"]]
        np.testing.assert_array_equal(m["shapedirs"][:, :, 300 + i], expected)


def test_joints_sit_where_a_head_has_them(built: dict) -> None:
    m = built["model"]
    joints = m["J_regressor"] @ m["v_template"]
    root, neck, jaw, left_eye, right_eye = joints
    verts = m["v_template"]
    nose_tip = verts[np.argmax(verts[:, 2])]
    # Jaw hinge: on the midline, below the eyes, well behind the nose, above the neck pivot.
    assert abs(jaw[0]) < 1e-4
    assert 2.5 < left_eye[1] - jaw[1] < 6.0
    assert 8.0 < nose_tip[2] - jaw[2] < 14.0
    assert neck[1] < jaw[1] and root[1] < neck[1]
    # Eyes: mirror images, at the eyeball centres (+x is the head's left).
    assert left_eye[0] > 2.0 and right_eye[0] < -2.0
    np.testing.assert_allclose(left_eye * [-1, 1, 1], right_eye, atol=1e-3)


def test_joints_do_not_move_with_expressions(built: dict) -> None:
    m = built["model"]
    used = np.abs(m["J_regressor"]).sum(0) > 0
    assert not m["shapedirs"][used].any()


def test_landmark_embeddings_are_valid(built: dict, face: FaceModel) -> None:
    static, dynamic = built["static_embedding"], built["dynamic_embedding"]
    faces = len(built["model"]["f"])
    assert static["lmk_face_idx"].shape == (51,) and static["lmk_b_coords"].shape == (51, 3)
    assert dynamic["lmk_face_idx"].shape == (79, 17) and dynamic["lmk_b_coords"].shape == (79, 17, 3)
    for emb in (static, dynamic):
        assert emb["lmk_face_idx"].min() >= 0 and emb["lmk_face_idx"].max() < faces
        np.testing.assert_allclose(emb["lmk_b_coords"].sum(-1), 1.0, atol=1e-6)
    # iBUG order: brows, nose, eyes, mouth from top to bottom; image-left landmarks at -x.
    verts = built["model"]["v_template"]
    tri = built["model"]["f"][static["lmk_face_idx"]]
    points = np.einsum("lk,lkd->ld", static["lmk_b_coords"], verts[tri])
    brows, nose, eyes, mouth = points[:10], points[10:19], points[19:31], points[31:]
    assert brows[:, 1].min() > eyes[:, 1].max() > nose[3, 1] > mouth[:, 1].max()
    np.testing.assert_allclose(points[[0, 19, 31]][:, 0] * -1, points[[9, 28, 37]][:, 0], atol=0.6)
    # The file smplx reads holds the same embedding.
    with open(face.model_dir / "flame_static_embedding.pkl", "rb") as f:
        on_disk = pickle.load(f)
    np.testing.assert_array_equal(on_disk["lmk_face_idx"], static["lmk_face_idx"])


def test_neutral_frame_gives_the_template(face: FaceModel) -> None:
    verts = face.vertices(frame()[None])[0]
    np.testing.assert_allclose(verts, face.template, atol=1e-4)


def test_read_only_frames_give_the_same_vertices_without_a_warning(face: FaceModel) -> None:
    """Frames memory-mapped from a dataset are read-only; torch warns on wrapping them, so they are copied."""
    frames = np.stack([frame(jaw=0.1), frame(pitch=0.2)])
    locked = frames.copy()
    locked.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verts = face.vertices(locked)
    np.testing.assert_array_equal(verts, face.vertices(frames))


def test_jaw_rotation_reproduces_the_heads_own_jaw_open(face: FaceModel, head: ict.IctHead) -> None:
    keep = np.load(face.model_dir / "FLAME_NEUTRAL.npz")["dyadic_ict_vertex_index"]
    angle = ict.fit_jaw(head).angle
    verts = face.vertices(frame(jaw=angle)[None])[0]
    np.testing.assert_allclose(verts, head.neutral[keep] + head.delta("jawOpen")[keep], atol=2e-3)


def test_jaw_opening_drops_the_chin_and_leaves_the_upper_face(face: FaceModel) -> None:
    rest, opened = face.vertices(np.stack([frame(), frame(jaw=0.3)]))
    t = face.template
    front = np.where((np.abs(t[:, 0]) < 0.3) & (t[:, 2] > 7.0))[0]  # the midline profile of the face
    chin = front[np.argmin(t[front, 1])]
    assert rest[chin, 1] - opened[chin, 1] > 1.0
    upper = face.template[:, 1] > 2.0  # eyes, brows, forehead: only the head's own slight jawOpen stretch
    assert np.abs(opened[upper] - rest[upper]).max() < 0.1


def test_smile_raises_the_mouth_corners(face: FaceModel) -> None:
    rest, smile = face.vertices(np.stack([frame(), frame(mouthSmile_L=1.0, mouthSmile_R=1.0)]))
    mouth = np.where((np.abs(face.template[:, 1] + 4.5) < 1.5) & (face.template[:, 2] > 8.0))[0]
    for side in (np.argmax, np.argmin):  # the widest points of the mouth region: its corners
        corner = mouth[side(face.template[mouth, 0])]
        assert smile[corner, 1] - rest[corner, 1] > 0.3
    brows_up = face.template[:, 1] > 6.0
    assert np.abs(smile[brows_up] - rest[brows_up]).max() < 0.05  # the forehead stays


def test_neck_rotation_turns_the_head_not_the_base_of_the_neck(face: FaceModel) -> None:
    rest, turned = face.vertices(np.stack([frame(), frame(yaw=0.4)]))
    nose = np.argmax(face.template[:, 2])
    assert turned[nose, 0] - rest[nose, 0] > 3.0  # positive yaw turns the face towards +x (its left)
    assert turned[:, 0].mean() > rest[:, 0].mean() + 1.0
    base = face.template[:, 1] < -14.0
    assert np.abs(turned[base] - rest[base]).max() < 0.1


def test_frames_are_validated(face: FaceModel) -> None:
    with pytest.raises(ValueError, match=r"shape \(T, 56\)"):
        face.vertices(np.zeros((3, 50)))


def test_build_is_cached_and_atomic(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DYADIC_CACHE", str(tmp_path))
    ict.ict_flame_dir.cache_clear()
    try:
        first = ict.ict_flame_dir()
        assert first.parent == tmp_path / "face"
        assert {p.name for p in first.iterdir()} == {
            "FLAME_NEUTRAL.npz", "flame_static_embedding.pkl", "flame_dynamic_embedding.npy",
        }  # fmt: skip
        assert not [p for p in first.parent.iterdir() if p.name.endswith(".partial")]
        stamp = (first / "FLAME_NEUTRAL.npz").stat().st_mtime_ns
        ict.ict_flame_dir.cache_clear()
        assert ict.ict_flame_dir() == first
        assert (first / "FLAME_NEUTRAL.npz").stat().st_mtime_ns == stamp  # reused, not rebuilt
    finally:
        ict.ict_flame_dir.cache_clear()
