"""Evaluate face meshes from motion frames through ``smplx.FLAME`` (torch, batched, no gradients).

A frame is ``[expression (50) | head rotation (3) | jaw rotation (3)]``. How it maps onto smplx's FLAME
inputs depends on the face:

- ``ict-arkit`` (the ICT head built by :mod:`dyadic_env.face.ict`): ``expression`` = frame[0:50],
  ``neck_pose`` = frame[50:53] (the head turns on the neck; the base of the neck stays),
  ``jaw_pose`` = frame[53:56], ``global_orient`` and the eyes zero.
- ``flame`` (a licensed FLAME model): ``expression`` = frame[0:50], ``global_orient`` = frame[50:53]
  (DECA/EMOCA/DualTalk codes store the head rotation as FLAME's global rotation, with the neck at rest),
  ``jaw_pose`` = frame[53:56].
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dyadic_env.expression_basis import EXPRESSION, EXPRESSION_BASES, FRAME_DIM, JAW_POSE, NECK_POSE
from dyadic_env.face import paths

CLAY = (0.62, 0.60, 0.58, 1.0)


class FlameModelNotFound(FileNotFoundError):
    """Data in the ``flame`` basis was asked to render but no licensed FLAME model is configured."""


def face_model_dir(expression_basis: str) -> Path:
    """The smplx model directory that renders frames of ``expression_basis``."""
    if expression_basis == "ict-arkit":
        from dyadic_env.face.ict import ict_flame_dir

        return ict_flame_dir()
    if expression_basis == "flame":
        model_dir = paths.registered_flame_dir()
        if model_dir is None:
            raise FlameModelNotFound(
                "this data uses expression_basis 'flame', which needs a licensed FLAME model, and none is "
                "configured. Download FLAME 2020 (free registration at flame.is.tue.mpg.de), then run "
                "`dyadic face import-flame /path/to/generic_model.pkl` (or set $DYADIC_FLAME_PATH to a "
                "directory it wrote). Without it, `dyadic render --approximate` shows the head pose and jaw on "
                "the open ICT head"
            )
        if not (model_dir / paths.MODEL_FILE).is_file():
            raise FlameModelNotFound(
                f"the configured FLAME model directory {model_dir} has no {paths.MODEL_FILE}; run "
                "`dyadic face import-flame /path/to/generic_model.pkl` again or fix $DYADIC_FLAME_PATH"
            )
        return model_dir
    raise ValueError(f"unknown expression_basis {expression_basis!r}; expected one of {EXPRESSION_BASES}")


class FaceModel:
    """A FLAME-format face model: ``vertices(frames)`` turns (T, 56) frames into (T, V, 3) meshes.

    Args:
        model_dir: a directory with ``FLAME_NEUTRAL.npz`` and ``flame_static_embedding.pkl``.
        expression_basis: ``"ict-arkit"`` or ``"flame"``; decides how frames map onto smplx's inputs.
        batch_size: frames evaluated per smplx call.
    """

    def __init__(self, model_dir: Path, expression_basis: str, *, batch_size: int = 64) -> None:
        import smplx
        import torch

        if expression_basis not in EXPRESSION_BASES:
            raise ValueError(
                f"unknown expression_basis {expression_basis!r}; expected one of {EXPRESSION_BASES}"
            )
        self.model_dir = Path(model_dir)
        self.expression_basis = expression_basis
        self.batch_size = batch_size
        with np.load(self.model_dir / paths.MODEL_FILE) as data:
            self.faces = data["f"].astype(np.int64)
            template = data["v_template"].astype(np.float32)
            colors = data["dyadic_vertex_colors"] if "dyadic_vertex_colors" in data.files else None
            if "dyadic_view_center" in data.files:
                self.view_center = data["dyadic_view_center"].astype(np.float64)
                self.view_height = float(data["dyadic_view_height"])
            else:
                # Frame the bounding box with room for its depth (the front is nearer the camera).
                lo, hi = template.min(0), template.max(0)
                self.view_center = (lo + hi) / 2
                self.view_height = float(max(hi[1] - lo[1], hi[0] - lo[0]) * 1.25)
        self.template = template
        self.vertex_colors = (
            colors.astype(np.float32)
            if colors is not None
            else np.tile(np.array(CLAY, np.float32), (len(template), 1))
        )
        # num_betas=0: one identity, so smplx does not blend 300 zero shape directions on every call.
        self._flame = smplx.FLAME(
            model_path=str(self.model_dir), ext="npz", num_expression_coeffs=50, num_betas=0, batch_size=1
        ).eval()
        num_faces = len(self.faces)
        self._vertex_face = sp.csr_matrix(
            (np.ones(3 * num_faces, np.float32), (self.faces.T.ravel(), np.tile(np.arange(num_faces), 3))),
            shape=(len(template), num_faces),
        )
        self._torch = torch

    @property
    def num_vertices(self) -> int:
        return len(self.template)

    def _inputs(self, frames: Any) -> dict[str, Any]:
        torch = self._torch
        b = frames.shape[0]
        zeros = torch.zeros(b, 3)
        head = frames[:, NECK_POSE]
        ict = self.expression_basis == "ict-arkit"
        return {
            "betas": torch.zeros(b, 0),
            "expression": frames[:, EXPRESSION],
            "global_orient": zeros if ict else head,
            "neck_pose": head if ict else zeros,
            "jaw_pose": frames[:, JAW_POSE],
            "leye_pose": zeros,
            "reye_pose": zeros,
        }

    def vertices(self, frames: np.ndarray, *, with_normals: bool = False) -> Any:
        """Mesh vertices (T, V, 3) float32 for frames (T, 56); with normals, a pair (vertices, normals)."""
        frames = np.ascontiguousarray(frames, dtype=np.float32)  # torch takes no negative strides
        if not frames.flags.writeable:  # torch warns on (and may not write through) read-only memory
            frames = frames.copy()
        if frames.ndim != 2 or frames.shape[1] != FRAME_DIM:
            raise ValueError(f"frames must have shape (T, {FRAME_DIM}); got {frames.shape}")
        torch = self._torch
        verts_out = np.empty((len(frames), self.num_vertices, 3), np.float32)
        normals_out = np.empty_like(verts_out) if with_normals else None
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                chunk = torch.from_numpy(frames[start : start + self.batch_size])
                verts = self._flame(**self._inputs(chunk)).vertices.numpy()
                verts_out[start : start + len(chunk)] = verts
                if normals_out is not None:
                    normals_out[start : start + len(chunk)] = self.normals(verts)
        return (verts_out, normals_out) if with_normals else verts_out

    def normals(self, verts: np.ndarray) -> np.ndarray:
        """Area-weighted vertex normals (B, V, 3) of meshes (B, V, 3).

        One sparse vertex-by-face sum for the whole batch: faster on CPU than torch's scatter-add.
        """
        b, v, _ = verts.shape
        f = self.faces
        flat = np.ascontiguousarray(verts.transpose(1, 0, 2)).reshape(v, b * 3)
        p0, p1, p2 = (flat[f[:, k]].reshape(len(f), b, 3) for k in range(3))
        face_normals = _cross(p1 - p0, p2 - p0).reshape(len(f), b * 3)
        normals = (self._vertex_face @ face_normals).reshape(v, b, 3).transpose(1, 0, 2)
        return (normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)).astype(
            np.float32
        )


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis; several times faster than ``np.cross`` on large arrays."""
    out = np.empty_like(a)
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


@lru_cache(maxsize=4)
def load_face_model(expression_basis: str = "ict-arkit") -> FaceModel:
    """The face model for ``expression_basis``, loaded once per process."""
    return FaceModel(face_model_dir(expression_basis), expression_basis)
