"""Build a FLAME-format model (the files ``smplx.FLAME`` reads) from the ICT-FaceKit head.

The head ships in ``dyadic_env/assets/ict-facekit/`` (MIT, see its LICENSE). The built model has:

- ``shapedirs`` (V, 3, 400): 300 shape directions (zeros: one neutral identity) and 100 expression
  directions whose first 50 are the head's blendshapes in the order of
  :data:`dyadic_env.expression_basis.ICT_ARKIT_EXPRESSIONS` (the rest zeros);
- five joints in FLAME's order and hierarchy: root (base of the neck), neck (the head's pivot on the
  spine, where it turns), jaw (the hinge just in front of the ears), left and right eye;
- skinning ``weights``: the lower neck blends from the root to the neck joint, the head follows the neck
  joint, the jaw region (chin, lower lip, lower teeth, tongue) follows the jaw joint with weights fitted to
  the head's own ``jawOpen`` blendshape, the eyeballs follow the eye joints;
- ``posedirs``: a corrective that turns a pure jaw rotation into the head's ``jawOpen`` shape (lips
  stretch as sculpted) at the fitted opening angle, scaled with the sine of the angle;
- the landmark embeddings smplx reads (51 static iBUG points; 79 x 17 dynamic contour points).

Units are the head's (about centimetres). The rendered mesh drops only the transparent or hair-like layers
(lacrimal fluid, eye blend/occlusion shells, eyelashes); see :data:`RENDER_PARTS`.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from dyadic_env.expression_basis import ICT_ARKIT_EXPRESSIONS
from dyadic_env.face import paths

BUILD_VERSION = 2
NUM_SHAPE = 300
NUM_EXPRESSION = 100

# Vertex ranges of the ICT-FaceKit mesh parts (from ICT-FaceKit's documentation; checked on the asset:
# each range is whole connected components).
ICT_PARTS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "head_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_sockets": (13294, 14062),
    "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
}
RENDER_PARTS = tuple(ICT_PARTS)
LOWER_TEETH = (19247, 21451)

# Joint placement in head units (cm; y up, z forward, +x is the head's left). The jaw hinge is fitted.
ROOT_JOINT = np.array([0.0, -13.0, -1.0])  # centre of the neck's base
NECK_JOINT = np.array([0.0, -3.5, -1.0])  # top of the spine (atlas), below and behind the ear canals
NECK_BLEND_Y = (-12.0, -4.0)  # the neck skin blends from root to neck joint between these heights
VIEW_Y = (-15.5, 14.5)  # what the camera frames: top of the head to the base of the neck

_COLORS = {
    "skin": (0.62, 0.60, 0.58),
    "mouth_socket": (0.30, 0.25, 0.25),
    "gums_tongue": (0.46, 0.33, 0.33),
    "teeth": (0.88, 0.87, 0.82),
    "sclera": (0.90, 0.90, 0.88),
    "iris": (0.24, 0.24, 0.26),
}


@dataclass(frozen=True)
class IctHead:
    """The ICT-FaceKit head as arrays: ``neutral`` (N, 3), ``triangles`` (F, 3), ``deltas`` (53, N, 3)."""

    neutral: np.ndarray
    triangles: np.ndarray
    names: tuple[str, ...]
    deltas: np.ndarray

    def delta(self, name: str) -> np.ndarray:
        return self.deltas[self.names.index(name)]


@dataclass(frozen=True)
class JawFit:
    """The rigid motion of the lower teeth in ``jawOpen``: a rotation ``angle`` about ``axis`` at ``pivot``."""

    pivot: np.ndarray
    rotation: np.ndarray
    angle: float
    axis: np.ndarray


def load_ict_head(path: Path = paths.ICT_ASSET) -> IctHead:
    with np.load(path) as data:
        neutral = data["neutral"].astype(np.float64)
        quads, tris = data["quads"], data["tris"]
        deltas = np.zeros((len(data["expr_names"]), len(neutral), 3), np.float32)
        deltas[:, data["moved_idx"]] = data["expr_deltas"].astype(np.float32)
        names = tuple(str(n) for n in data["expr_names"])
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]], tris]).astype(np.int64)
    return IctHead(neutral=neutral, triangles=triangles, names=names, deltas=deltas)


def fit_jaw(head: IctHead) -> JawFit:
    """Fit the rotation that ``jawOpen`` applies to the (rigid) lower teeth; its axis is the jaw hinge."""
    start, stop = LOWER_TEETH
    before = head.neutral[start:stop]
    after = before + head.delta("jawOpen")[start:stop]
    rotation, translation = _rigid_fit(before, after)
    rotvec = _rotation_to_rotvec(rotation)
    angle = float(np.linalg.norm(rotvec))
    # The pivot is the point of the axis in the mid-sagittal plane (x = 0): (R - I) p = -t.
    lhs = rotation - np.eye(3)
    yz = np.linalg.lstsq(lhs[:, 1:], -translation, rcond=None)[0]
    return JawFit(pivot=np.array([0.0, yz[0], yz[1]]), rotation=rotation, angle=angle, axis=rotvec / angle)


def build_ict_flame(head: IctHead | None = None, parts: tuple[str, ...] = RENDER_PARTS) -> dict[str, object]:
    """All arrays of the FLAME-format model plus its landmark embeddings and render hints.

    Returns a dict with ``model`` (the keys of ``FLAME_NEUTRAL.npz``), ``static_embedding`` and
    ``dynamic_embedding`` (dicts), and ``keep`` (indices of the ICT vertices used, in model order).
    """
    head = head or load_ict_head()
    keep = np.concatenate([np.arange(*ICT_PARTS[p]) for p in parts])
    remap = np.full(len(head.neutral), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    tri = remap[head.triangles]
    faces = tri[(tri >= 0).all(1)]
    verts = head.neutral[keep]
    deltas = head.deltas[:, keep]
    part_of = _part_labels(keep, parts)

    jaw = fit_jaw(head)
    eye_centers = [verts[part_of == p].mean(0) for p in ("eyeball_left", "eyeball_right")]
    joints = np.stack([ROOT_JOINT, NECK_JOINT, jaw.pivot, *eye_centers])
    weights, jaw_weight = _skinning_weights(verts, faces, deltas[head.names.index("jawOpen")], jaw, part_of)

    shapedirs = np.zeros((len(verts), 3, NUM_SHAPE + NUM_EXPRESSION), np.float32)
    for i, name in enumerate(ICT_ARKIT_EXPRESSIONS):
        shapedirs[:, :, NUM_SHAPE + i] = deltas[head.names.index(name)]
    posedirs = _jaw_corrective(verts, deltas[head.names.index("jawOpen")], jaw, jaw_weight)
    unmoved = np.abs(deltas).max(axis=(0, 2)) < 1e-6
    model = {
        "v_template": verts.astype(np.float32),
        "f": faces.astype(np.int64),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": _joint_regressor(verts, unmoved, joints).astype(np.float32),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "weights": weights.astype(np.float32),
        # Not read by smplx: what the renderer and the docs use.
        "dyadic_vertex_colors": _vertex_colors(verts, part_of, eye_centers),
        "dyadic_view_center": np.array([0.0, sum(VIEW_Y) / 2, 0.0], np.float32),
        "dyadic_view_height": np.float32(VIEW_Y[1] - VIEW_Y[0]),
        "dyadic_jaw_open_radians": np.float32(jaw.angle),
        "dyadic_ict_vertex_index": keep.astype(np.int64),
    }
    static = _static_landmarks(verts, faces, part_of, head, keep)
    dynamic = _dynamic_contour(verts, faces, part_of, static["nose_tip"])
    return {
        "model": model,
        "static_embedding": {k: static[k] for k in ("lmk_face_idx", "lmk_b_coords")},
        "dynamic_embedding": dynamic,
        "keep": keep,
    }


def write_ict_flame(out_dir: Path, parts: tuple[str, ...] = RENDER_PARTS) -> Path:
    """Write ``FLAME_NEUTRAL.npz`` and the two landmark embedding files into ``out_dir``."""
    built = build_ict_flame(parts=parts)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Compressed: 350 of the 400 shape directions are zeros.
    np.savez_compressed(out_dir / paths.MODEL_FILE, **built["model"])  # type: ignore[arg-type]
    with open(out_dir / paths.STATIC_EMBEDDING_FILE, "wb") as f:
        pickle.dump(built["static_embedding"], f, protocol=4)
    np.save(out_dir / paths.DYNAMIC_EMBEDDING_FILE, np.array(built["dynamic_embedding"], dtype=object))
    return out_dir


@lru_cache(maxsize=4)
def ict_flame_dir(parts: tuple[str, ...] = RENDER_PARTS) -> Path:
    """The built ICT FLAME-format model directory, built once into the cache and reused."""
    digest = hashlib.sha256(paths.ICT_ASSET.read_bytes()).hexdigest()[:10]
    tag = hashlib.sha256(repr((BUILD_VERSION, digest, parts)).encode()).hexdigest()[:12]
    final = paths.face_cache_dir() / f"ict-flame-v{BUILD_VERSION}-{tag}"
    return paths.build_atomically(final, lambda tmp: write_ict_flame(tmp, parts))


# --- pieces -------------------------------------------------------------------------------------------


def _part_labels(keep: np.ndarray, parts: tuple[str, ...]) -> np.ndarray:
    labels = np.empty(len(keep), dtype=object)
    for part in parts:
        start, stop = ICT_PARTS[part]
        labels[(keep >= start) & (keep < stop)] = part
    return labels


def _rigid_fit(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation and translation mapping ``before`` onto ``after`` (Kabsch)."""
    cb, ca = before.mean(0), after.mean(0)
    u, _, vt = np.linalg.svd((before - cb).T @ (after - ca))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, ca - rotation @ cb


def _rotation_to_rotvec(rotation: np.ndarray) -> np.ndarray:
    angle = np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0))
    axis = np.array(
        [rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]]
    )
    return axis / (2 * np.sin(angle)) * angle


def _adjacency(num_verts: int, faces: np.ndarray) -> sp.csr_matrix:
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(num_verts, num_verts)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    return sp.csr_matrix(adj)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _skinning_weights(
    verts: np.ndarray, faces: np.ndarray, jaw_open: np.ndarray, jaw: JawFit, part_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(V, 5) weights over root, neck, jaw, left eye, right eye; and the jaw weight alone."""
    # A vertex on the jaw moves in jawOpen as the rigid rotation would move it; the ratio of its actual
    # displacement to that rigid one is how much it belongs to the jaw.
    rigid = (verts - jaw.pivot) @ (jaw.rotation - np.eye(3)).T
    norm2 = (rigid**2).sum(1)
    ratio = np.where(norm2 > 1e-4, (jaw_open * rigid).sum(1) / np.maximum(norm2, 1e-4), 0.0)
    jaw_w = np.clip(ratio, 0.0, 1.0)
    lap = _adjacency(len(verts), faces)
    degree = np.maximum(np.asarray(lap.sum(1)).ravel(), 1.0)
    for _ in range(3):  # a light smoothing removes speckle where the sculpted motion is not rigid
        jaw_w = 0.5 * jaw_w + 0.5 * (lap @ jaw_w) / degree
    jaw_w = np.clip(jaw_w, 0.0, 1.0)
    jaw_w[np.abs(jaw_open).max(1) < 1e-6] = 0.0

    head = _smoothstep(verts[:, 1], *NECK_BLEND_Y)
    weights = np.zeros((len(verts), 5))
    weights[:, 0] = (1 - jaw_w) * (1 - head)
    weights[:, 1] = (1 - jaw_w) * head
    weights[:, 2] = jaw_w
    for joint, part in ((3, "eyeball_left"), (4, "eyeball_right")):
        eye = part_of == part
        weights[eye] = 0.0
        weights[eye, joint] = 1.0
    return weights, weights[:, 2].copy()


def _jaw_corrective(verts: np.ndarray, jaw_open: np.ndarray, jaw: JawFit, jaw_w: np.ndarray) -> np.ndarray:
    """Pose corrective so that rotating the jaw by the fitted angle reproduces ``jawOpen`` exactly.

    smplx adds ``posedirs @ (R_j - I)`` over joints 1..4 before skinning. For a rotation about x the
    entries (2, 1) = sin(angle) and (1, 2) = -sin(angle) of the jaw's ``R - I`` carry the opening, so
    the rest-frame offset ``p`` goes into those two columns with opposite signs.
    """
    r = jaw.rotation
    target = verts + jaw_open
    translation = jaw.pivot - r @ jaw.pivot
    # Linear blend skinning moves a vertex by M = (1 - w) I + w R plus w t; invert it per vertex.
    m = (1 - jaw_w)[:, None, None] * np.eye(3) + jaw_w[:, None, None] * r
    rhs = target - jaw_w[:, None] * translation
    offsets = np.linalg.solve(m, rhs[..., None])[..., 0] - verts
    posedirs = np.zeros((len(verts), 3, 36), np.float32)
    s = np.sin(jaw.angle)
    jaw_block = 9  # joint 2 (jaw) is the second of the four non-root joints
    posedirs[:, :, jaw_block + 2 * 3 + 1] = offsets / (2 * s)
    posedirs[:, :, jaw_block + 1 * 3 + 2] = -offsets / (2 * s)
    return posedirs


def _joint_regressor(verts: np.ndarray, unmoved: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(5, V): each joint as an affine combination of nearby vertices that no expression moves.

    smplx regresses joints from the expression-deformed mesh; anchoring them on unmoved vertices keeps
    the pivots fixed under every expression.
    """
    candidates = np.where(unmoved)[0]
    regressor = np.zeros((len(joints), len(verts)))
    for j, target in enumerate(joints):
        near = candidates[np.argsort(np.linalg.norm(verts[candidates] - target, axis=1))[:24]]
        a = np.vstack([verts[near].T, np.ones(len(near))])  # (4, k)
        b = np.append(target, 1.0)
        w = a.T @ np.linalg.solve(a @ a.T, b)  # minimum-norm affine weights
        regressor[j, near] = w
    return regressor


def _vertex_colors(verts: np.ndarray, part_of: np.ndarray, eye_centers: list[np.ndarray]) -> np.ndarray:
    colors = np.tile(np.array([[*_COLORS["skin"], 1.0]]), (len(verts), 1))
    for part in ("mouth_socket", "gums_tongue", "teeth"):
        colors[part_of == part, :3] = _COLORS[part]
    for part, center in zip(("eyeball_left", "eyeball_right"), eye_centers):
        eye = np.where(part_of == part)[0]
        direction = verts[eye] - center
        facing = direction[:, 2] / np.linalg.norm(direction, axis=1)
        colors[eye, :3] = np.where(facing[:, None] > 0.9, _COLORS["iris"], _COLORS["sclera"])
    return colors.astype(np.float32)


# --- landmarks ----------------------------------------------------------------------------------------


def _surface_point(xy: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> tuple[int, np.ndarray]:
    """Front-most triangle under the point ``xy`` seen along -z, and the barycentric coordinates."""
    a, b, c = (verts[faces[:, k], :2] for k in range(3))
    v0, v1, v2 = b - a, c - a, xy - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    l0 = 1 - l1 - l2
    inside = ok & (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
    if not inside.any():
        raise RuntimeError(f"no face of the head lies under the landmark position {xy}")
    z = l0 * verts[faces[:, 0], 2] + l1 * verts[faces[:, 1], 2] + l2 * verts[faces[:, 2], 2]
    best = int(np.where(inside, z, -np.inf).argmax())
    return best, np.array([l0[best], l1[best], l2[best]])


def _boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Vertex sets of the boundary loops of a triangle mesh."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    border = uniq[counts == 1]
    n = int(border.max()) + 1
    graph = sp.coo_matrix((np.ones(len(border)), (border[:, 0], border[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    on_border = np.zeros(n, bool)
    on_border[border.ravel()] = True
    return [np.where((labels == k) & on_border)[0] for k in range(count) if ((labels == k) & on_border).any()]


def _contour_points(loop_xy: np.ndarray, fractions: list[float], upper: bool) -> list[np.ndarray]:
    """Points of a closed contour at given fractions between its left and right ends, upper or lower half."""
    left, right = loop_xy[:, 0].min(), loop_xy[:, 0].max()
    middle_y = loop_xy[:, 1].mean()
    half = loop_xy[(loop_xy[:, 1] >= middle_y) if upper else (loop_xy[:, 1] <= middle_y)]
    out = []
    for f in fractions:
        x = left + f * (right - left)
        out.append(half[np.argmin(np.abs(half[:, 0] - x))])
    return out


def _static_landmarks(
    verts: np.ndarray, faces: np.ndarray, part_of: np.ndarray, head: IctHead, keep: np.ndarray
) -> dict[str, np.ndarray]:
    """The 51 inner iBUG-68 landmarks (brows, nose, eyes, mouth) embedded in the face surface.

    Eye and inner-lip points come from the holes of the face mesh; brows from where the brow
    blendshapes move most; the outer lip line is offset from the inner one by typical lip heights.
    """
    face_tris = faces[(part_of[faces] == "face").all(1)]
    xy = verts[:, :2]
    loops = sorted(_boundary_loops(face_tris), key=len)[:-1]  # the longest is the outer rim
    centers = [verts[loop].mean(0) for loop in loops]
    eyes = sorted([lp for lp, c in zip(loops, centers) if c[1] > 1.0], key=lambda lp: verts[lp, 0].mean())
    mouth = next(lp for lp, c in zip(loops, centers) if c[1] < -1.0 and abs(c[0]) < 1.0)

    points: list[np.ndarray] = []
    # Brows (iBUG 18-27), image left to right.
    face_idx = np.where(part_of == "face")[0]
    for name in ("browDown_R", "browDown_L"):
        mag = np.linalg.norm(head.delta(name)[keep[face_idx]], axis=1)
        brow = face_idx[mag > 0.6 * mag.max()]
        xs = np.linspace(verts[brow, 0].min(), verts[brow, 0].max(), 7)[1:-1]
        for x in xs:
            near = brow[np.abs(verts[brow, 0] - x) < 0.5]
            points.append(np.array([x, verts[near, 1].mean()]))
    # Nose bridge (28-31) and lower nose (32-36).
    midline = face_idx[np.abs(verts[face_idx, 0]) < 0.05]
    tip = midline[np.argmax(verts[midline, 2])]
    eye_y = np.mean([verts[e, 1].mean() for e in eyes])
    for f in (0.0, 1 / 3, 2 / 3, 1.0):
        points.append(np.array([0.0, eye_y + f * (verts[tip, 1] - eye_y)]))
    below = midline[(verts[midline, 1] < verts[tip, 1] - 0.5) & (verts[midline, 1] > verts[tip, 1] - 2.5)]
    subnasal_y = verts[below[np.argmin(verts[below, 2])], 1]
    for x in (-1.2, -0.6, 0.0, 0.6, 1.2):
        points.append(np.array([x, subnasal_y + 0.15 * abs(x)]))
    # Eyes (37-48): corner, two upper, corner, two lower; right eye (image left) first.
    for loop in eyes:
        lx = xy[loop]
        left, right = lx[lx[:, 0].argmin()], lx[lx[:, 0].argmax()]
        up = _contour_points(lx, [1 / 3, 2 / 3], upper=True)
        low = _contour_points(lx, [2 / 3, 1 / 3], upper=False)
        points += [left, *up, right, *low]
    # Mouth: outer lip (49-60) from the inner contour offset by lip heights, then inner lip (61-68).
    mx = xy[mouth]
    left, right = mx[mx[:, 0].argmin()], mx[mx[:, 0].argmax()]
    fr = [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]
    up, low = _contour_points(mx, fr, True), _contour_points(mx, fr[::-1], False)
    bulge = [np.sin(np.pi * f) for f in fr]
    outer = [left - np.array([0.2, 0.0])]
    outer += [p + np.array([0.0, 0.3 + 0.6 * b]) for p, b in zip(up, bulge)]
    outer += [right + np.array([0.2, 0.0])]
    outer += [p - np.array([0.0, 0.3 + 0.8 * b]) for p, b in zip(low, bulge[::-1])]
    inner = [left, *_contour_points(mx, [0.25, 0.5, 0.75], True), right]
    inner += _contour_points(mx, [0.75, 0.5, 0.25], False)
    points += outer + inner
    assert len(points) == 51

    front = faces[np.isin(part_of[faces[:, 0]], ("face",))]
    front_index = np.where(np.isin(part_of[faces[:, 0]], ("face",)))[0]
    face_ids, barys = [], []
    for p in points:
        k, bary = _surface_point(np.asarray(p, float), verts, front)
        face_ids.append(front_index[k])
        barys.append(bary)
    return {
        "lmk_face_idx": np.array(face_ids, np.int64),
        "lmk_b_coords": np.array(barys, np.float64),
        "nose_tip": verts[tip],
    }


def _dynamic_contour(verts: np.ndarray, faces: np.ndarray, part_of: np.ndarray, nose_tip: np.ndarray) -> dict:
    """17 jaw-line contour points for each of smplx's 79 head-yaw bins (the visible silhouette).

    smplx maps a yaw of -k degrees to bin k (k = 0..39) and +k degrees to bin 39 + k.
    """
    face_idx = np.where(part_of == "face")[0]
    lower = face_idx[verts[face_idx, 1] < nose_tip[1] + 1.0]
    # One triangle per vertex, with the vertex's own barycentric one-hot.
    owner = np.full(len(verts), -1, np.int64)
    corner = np.zeros(len(verts), np.int64)
    for k in range(3):
        owner[faces[:, k]] = np.arange(len(faces))
        corner[faces[:, k]] = k
    center = np.array([0.0, nose_tip[1] - 1.0])
    angles = np.radians(np.linspace(180.0, 360.0, 17))  # image left, down to the chin, image right
    directions = np.stack([np.cos(angles), np.sin(angles)], 1)
    face_ids = np.zeros((79, 17), np.int64)
    barys = np.zeros((79, 17, 3))
    for b in range(79):
        yaw = np.radians(-b if b <= 39 else b - 39)
        c, s = np.cos(yaw), np.sin(yaw)
        x = c * verts[lower, 0] + s * verts[lower, 2]
        pts = np.stack([x, verts[lower, 1]], 1) - center
        chosen = lower[np.argmax(pts @ directions.T, axis=0)]
        face_ids[b] = owner[chosen]
        barys[b, np.arange(17), corner[chosen]] = 1.0
    return {"lmk_face_idx": face_ids, "lmk_b_coords": barys}
