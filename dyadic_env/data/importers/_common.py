"""Pieces every importer shares: the imported-data record and checked array conversion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.data.errors import DataValidationError
from dyadic_env.data.validation import array_problems
from dyadic_env.expression_basis import FRAME_DIM


@dataclass
class ImportedData:
    """Clips read from a published format, ready for :func:`~dyadic_env.data.write_dataset`.

    ``clips`` may be a generator that reads the source lazily; ``num_clips`` says how many it yields.
    ``notes`` say what the importer changed or assumed (trimming, dropped words, split rule); notes about
    the clips' contents are appended while ``clips`` is consumed, so read them afterwards.
    """

    source_format: str
    clips: Iterable[tuple[str, Clip]]
    num_clips: int
    fps: float
    expression_basis: str
    notes: list[str] = field(default_factory=list)


def to_numpy(value: Any) -> Any:
    """A torch tensor as a numpy array (other values unchanged), without importing torch."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def float_frames(value: Any, *, file: str, key: str, width: int, frames: int | None = None) -> np.ndarray:
    """``value`` as a finite float32 ``(T, width)`` array, or an error naming ``file`` and ``key``."""
    value = to_numpy(value)
    if not isinstance(value, np.ndarray):
        raise DataValidationError(file, key, f"an array of shape (T, {width})", type(value).__name__)
    if value.dtype.kind not in "fiu":
        raise DataValidationError(file, key, "a numeric array", f"dtype {value.dtype}")
    if value.ndim != 2 or value.shape[1] != width:
        raise DataValidationError(file, key, f"shape (T, {width})", f"shape {value.shape}")
    array = np.ascontiguousarray(value, dtype=np.float32)
    problems = array_problems(array, source=file, field=key, width=width, frames=frames)
    if problems:
        raise problems[0]
    return array


def motion_frames(exp: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """FLAME ``exp`` (T, 50) and ``pose`` (T, 6: neck then jaw axis-angle) as (T, 56) frames."""
    frames = np.concatenate([exp, pose], axis=1)
    assert frames.shape[1] == FRAME_DIM
    return frames


def require_key(container: Any, key: str, *, file: str, where: str, expected: str) -> Any:
    """``container[key]``, or an error naming the file, the key and the keys that are there."""
    if not isinstance(container, dict) and not hasattr(container, "files"):
        raise DataValidationError(file, where or key, "a dictionary of arrays", type(container).__name__)
    keys = list(container.files if hasattr(container, "files") else container.keys())
    if key not in keys:
        raise DataValidationError(
            file,
            f"{where}.{key}" if where else key,
            expected,
            f"missing key (keys present: {sorted(map(str, keys))})",
        )
    return container[key]
