"""Offscreen rendering of synthetic emotions, pairs, captions and videos (needs OSMesa or EGL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dyadic_env.expression_basis import ict_index
from dyadic_env.render import (
    Renderer,
    contact_sheet,
    read_video,
    render_pair_frame,
    render_video,
    write_video,
)
from dyadic_env.synthetic.emotions import LISTENER_EMOTIONS, prototype

pytestmark = pytest.mark.render
SIZE = 128


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    with Renderer(SIZE, SIZE) as r:
        yield r


def frame(**values: float) -> np.ndarray:
    f = np.zeros(56, np.float32)
    pose = {"pitch": 50, "yaw": 51, "roll": 52, "jaw": 53}
    for name, value in values.items():
        f[pose[name] if name in pose else ict_index(name)] = value
    return f


def emotion_frame(emotion: str) -> np.ndarray:
    f = np.zeros(56, np.float32)
    f[:50] = prototype(emotion)
    return f


def changed(a: np.ndarray, b: np.ndarray, threshold: int = 12) -> np.ndarray:
    """Mask of pixels whose colour differs noticeably."""
    return np.abs(a.astype(int) - b.astype(int)).max(-1) > threshold


def landmarks(renderer: Renderer) -> dict[str, np.ndarray]:
    """Pixel positions of the eyes, mouth corners and nose tip of the neutral head."""
    t = renderer._scene("ict-arkit")["model"].template
    mouth = np.where((np.abs(t[:, 1] + 4.5) < 1.5) & (t[:, 2] > 8.0))[0]
    points = {
        "nose": t[np.argmax(t[:, 2])],
        "mouth_left": t[mouth[np.argmax(t[mouth, 0])]],
        "mouth_right": t[mouth[np.argmin(t[mouth, 0])]],
        "eyes": np.array([0.0, 3.6, 9.5]),
    }
    return {k: renderer.project(v[None])[0] for k, v in points.items()}


def test_same_frame_renders_identically_twice(renderer: Renderer) -> None:
    frames = np.stack([emotion_frame("happiness"), frame(jaw=0.2, yaw=0.1)])
    np.testing.assert_array_equal(renderer.render_faces(frames), renderer.render_faces(frames[::-1])[::-1])


def test_camera_frames_the_head_upright(renderer: Renderer) -> None:
    image = renderer.render_faces(frame()[None])[0]
    marks = landmarks(renderer)
    assert abs(marks["nose"][0] - SIZE / 2) < 2  # centred
    assert marks["eyes"][1] < marks["nose"][1] < marks["mouth_left"][1]  # not upside down
    head = changed(image, np.full_like(image, image[0, 0]))
    rows = np.where(head.any(1))[0]
    assert rows[0] > 0 and head[:, 0].sum() == 0 and head[:, -1].sum() == 0  # whole head in view


@pytest.mark.parametrize("emotion", [e for e in LISTENER_EMOTIONS if e != "neutral"])
def test_each_synthetic_emotion_changes_the_face(renderer: Renderer, emotion: str) -> None:
    neutral, shown = renderer.render_faces(np.stack([frame(), emotion_frame(emotion)]))
    assert changed(neutral, shown).sum() > 20


def test_smile_moves_pixels_at_the_mouth_not_the_forehead(renderer: Renderer) -> None:
    neutral, smile = renderer.render_faces(np.stack([frame(), frame(mouthSmile_L=1.0, mouthSmile_R=1.0)]))
    diff = changed(neutral, smile)
    marks = landmarks(renderer)
    rows, cols = np.nonzero(diff)
    assert diff.sum() > 30
    # The change sits around the mouth corners, below the nose...
    assert np.median(rows) > marks["nose"][1]
    lo, hi = sorted([marks["mouth_right"][0], marks["mouth_left"][0]])
    assert lo - 8 < np.median(cols) < hi + 8
    # ... and nothing moves above the eyes.
    assert not diff[: int(marks["eyes"][1]) - 6].any()


def test_happiness_changes_lower_face_and_surprise_upper_face(renderer: Renderer) -> None:
    neutral, happy, surprised = renderer.render_faces(
        np.stack([frame(), emotion_frame("happiness"), emotion_frame("surprise")])
    )
    happy_rows = np.nonzero(changed(neutral, happy))[0]
    surprised_rows = np.nonzero(changed(neutral, surprised))[0]
    eyes_row = landmarks(renderer)["eyes"][1]
    assert np.median(surprised_rows) < eyes_row + 3 < np.median(happy_rows)


def test_jaw_opening_moves_pixels_below_the_mouth(renderer: Renderer) -> None:
    closed, opened = renderer.render_faces(np.stack([frame(), frame(jaw=0.3)]))
    rows = np.nonzero(changed(closed, opened))[0]
    marks = landmarks(renderer)
    assert len(rows) > 50
    assert np.median(rows) > marks["nose"][1]
    assert rows.max() > marks["mouth_left"][1] + 5  # the chin drops below where the mouth was


def test_neck_rotation_turns_the_head(renderer: Renderer) -> None:
    left, rest, right = renderer.render_faces(np.stack([frame(yaw=-0.4), frame(), frame(yaw=0.4)]))

    def dark_x(image: np.ndarray) -> float:  # irises and nostrils: the darkest features
        cols = np.nonzero(image.mean(-1) < 90)[1]
        return float(cols.mean())

    # Positive yaw turns the face towards its left, which is the viewer's right.
    assert dark_x(left) + 5 < dark_x(rest) < dark_x(right) - 5


def test_pairs_put_speaker_left_and_listener_right(renderer: Renderer) -> None:
    speaker = np.stack([frame(), emotion_frame("happiness")])
    listener = np.stack([emotion_frame("sadness"), frame(jaw=0.2)])
    pair = renderer.render_frames(speaker, listener)
    assert pair.shape == (2, SIZE, 2 * SIZE, 3) and pair.dtype == np.uint8
    strip = 12  # below the "speaker"/"listener" labels
    np.testing.assert_array_equal(pair[:, strip:, :SIZE], renderer.render_faces(speaker)[:, strip:])
    np.testing.assert_array_equal(pair[:, strip:, SIZE:], renderer.render_faces(listener)[:, strip:])


def test_captions_draw_only_along_the_bottom(renderer: Renderer) -> None:
    speaker, listener = frame()[None], frame()[None]
    plain = renderer.render_frames(speaker, listener)[0]
    captioned = renderer.render_frames(speaker, listener, captions=["so what did you think"])[0]
    rows = np.nonzero(changed(plain, captioned, threshold=0).any(1))[0]
    assert rows.min() > SIZE * 0.8 and rows.max() == SIZE - 1
    single = render_pair_frame(renderer, speaker[0], listener[0], "so what did you think")
    np.testing.assert_array_equal(single, captioned)


def test_updating_buffers_in_place_matches_fresh_meshes(renderer: Renderer) -> None:
    frames = np.stack([emotion_frame(e) for e in ("anger", "disgust", "surprise")])
    renderer.fast_upload = False
    try:
        fresh = renderer.render_faces(frames)
    finally:
        renderer.fast_upload = True
    np.testing.assert_array_equal(renderer.render_faces(frames), fresh)


def test_video_is_h264_mp4_with_every_frame(renderer: Renderer, tmp_path: Path) -> None:
    t = np.linspace(0, 1, 12, dtype=np.float32)[:, None]
    speaker = t * emotion_frame("happiness")
    listener = t * frame(jaw=0.3)
    captions = ["hello"] * 6 + ["hello there"] * 6
    path = render_video(tmp_path / "clip.mp4", speaker, listener, 25.0, captions, renderer=renderer)
    assert path.read_bytes()[4:8] == b"ftyp"
    assert not list(tmp_path.glob(".*partial*"))
    video, fps = read_video(path)
    assert video.shape == (12, SIZE, 2 * SIZE, 3) and fps == pytest.approx(25.0)
    expected = renderer.render_frames(speaker, listener, captions)
    assert np.abs(video.astype(float) - expected).mean() < 4.0  # lossy, but the same pictures


def test_inputs_are_validated(renderer: Renderer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"shape \(T, 56\)"):
        renderer.render_faces(np.zeros((2, 55)))
    with pytest.raises(ValueError, match="same length"):
        renderer.render_frames(np.zeros((2, 56)), np.zeros((3, 56)))
    with pytest.raises(ValueError, match="one entry per frame"):
        renderer.render_frames(np.zeros((2, 56)), np.zeros((2, 56)), captions=["a"])
    with pytest.raises(ValueError, match="NaN"):
        renderer.render_faces(np.full((1, 56), np.nan))
    with pytest.raises(ValueError, match="unknown expression_basis"):
        renderer.render_faces(np.zeros((1, 56)), expression_basis="arkit")
    with pytest.raises(ValueError, match="unknown rendering backend 'vulkan'"):
        Renderer(backend="vulkan")
    with pytest.raises(ValueError, match=r"ending in \.mp4"):
        write_video(tmp_path / "clip.avi", [], 25.0, (64, 64))
    with pytest.raises(ValueError, match="even width and height"):
        write_video(tmp_path / "clip.mp4", [], 25.0, (63, 64))


def test_contact_sheet_tiles_images_with_labels() -> None:
    images = [np.full((20, 30, 3), v, np.uint8) for v in (0, 100, 200)]
    sheet = contact_sheet(images, ["a", "b", "c"], columns=2)
    assert sheet.shape[0] > 2 * 20 and sheet.shape[1] == 2 * 30 + 3 * 4
    assert (sheet[4:24, 4:34] == 0).all() and (sheet[4:24, 38:68] == 100).all()
    with pytest.raises(ValueError, match="same size"):
        contact_sheet([images[0], np.zeros((10, 10, 3), np.uint8)])
