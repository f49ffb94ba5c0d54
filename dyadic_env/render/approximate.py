"""Looking at FLAME-basis motion without the licensed FLAME model: an approximation on the open ICT head.

Rendering ``flame`` data exactly needs the FLAME model, which users license themselves. Without it,
:func:`flame_on_ict` moves the ICT-FaceKit head (our open, FLAME-format head) by:

- **head pose and jaw: as recorded.** Both heads are FLAME-format rigs whose neck and jaw are joints rotated by
  the frame's axis-angle values ``50:56``, so these carry over unchanged (up to the two heads' proportions).
- **expression: a linear map, by default none.** FLAME's 50 expression values are PCA coefficients of FLAME's
  own mesh; ICT's are ARKit-style blendshape weights. Relating them needs both meshes (fit, e.g., on the
  landmarks the two faces share), i.e. the licensed model. So by default the expression is left neutral
  and the picture shows head motion and mouth opening only. A user who fitted a ``(50, 50)`` map ``M``
  (FLAME coefficients in rows, ICT weights in columns) passes it as ``expression_map``: the ICT weights are
  ``clip(flame_expression @ M, 0, 1)``.

Every rendered frame is labelled with :data:`APPROXIMATE_LABEL`, so an approximate picture is never taken for
an exact one.
"""

from __future__ import annotations

import os

import numpy as np

from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, POSE

APPROXIMATE_LABEL = "APPROXIMATE (FLAME pose+jaw on ICT head)"
EXPRESSION_DIM = EXPRESSION.stop - EXPRESSION.start


def flame_on_ict(frames: np.ndarray, expression_map: np.ndarray | None = None) -> np.ndarray:
    """``ict-arkit`` frames ``(T, 56)`` that approximate ``flame`` frames (see the module docstring)."""
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_DIM:
        raise ValueError(f"frames: expected shape (T, {FRAME_DIM}), found {frames.shape}")
    out = np.zeros_like(frames)
    out[:, POSE] = frames[:, POSE]
    if expression_map is not None:
        out[:, EXPRESSION] = np.clip(frames[:, EXPRESSION] @ expression_map, 0.0, 1.0)
    return out


def load_expression_map(path: str | os.PathLike) -> np.ndarray:
    """A ``(50, 50)`` FLAME-to-ICT expression map saved with ``numpy.save`` (plain floats; never unpickled)."""
    from dyadic_env.data.errors import array_load_problem

    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: expression map: {array_load_problem(e)}") from None
    if (
        matrix.shape != (EXPRESSION_DIM, EXPRESSION_DIM)
        or matrix.dtype.kind != "f"
        or not np.isfinite(matrix).all()
    ):
        raise ValueError(
            f"{path}: expression map: expected finite floats of shape ({EXPRESSION_DIM}, {EXPRESSION_DIM}) (FLAME "
            f"coefficients in rows, ICT weights in columns), found {matrix.dtype} of shape {matrix.shape}"
        )
    return matrix.astype(np.float32)
