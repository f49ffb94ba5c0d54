"""Validation of clips and whole dataset directories.

Every problem is a :class:`DataValidationError` naming file, field, expected and found.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.data.errors import DataValidationError
from dyadic_env.expression_basis import FRAME_DIM

# Words may end slightly after the last frame (rounding of timestamps); anything beyond is an error.
WORD_TIME_TOLERANCE_S = 0.05


def check_array(array: object, *, source: str, field: str, width: int | None, frames: int | None = None) -> None:
    """Raise unless ``array`` is a finite float32 ``(frames, width)`` array."""
    if not isinstance(array, np.ndarray):
        raise DataValidationError(source, field, "a numpy array", type(array).__name__)
    if array.dtype != np.float32:
        raise DataValidationError(source, field, "dtype float32", f"dtype {array.dtype}")
    expected = f"({frames if frames is not None else 'T'}, {width if width is not None else 'd'})"
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        raise DataValidationError(source, field, f"shape {expected}", f"shape {array.shape}")
    if frames is not None and array.shape[0] != frames:
        raise DataValidationError(
            source, field, f"shape {expected} (as many frames as speaker_motion)", f"shape {array.shape}"
        )
    finite = np.isfinite(array)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise DataValidationError(
            source, field, "finite values", f"{array[row, col]} at frame {row}, dim {col}",
            f"({int((~finite).sum())} non-finite values in all)",
        )  # fmt: skip


def validate_clip(clip: Clip, *, source: str = "") -> None:
    """Raise a :class:`DataValidationError` for the first problem found in ``clip``."""
    source = source or f"clip {clip.clip_id!r}"
    if not isinstance(clip.fps, (int, float)) or not np.isfinite(clip.fps) or not 0 < clip.fps <= 1000:
        raise DataValidationError(source, "fps", "a number of frames per second in (0, 1000]", repr(clip.fps))
    check_array(clip.speaker_motion, source=source, field="speaker_motion", width=FRAME_DIM)
    frames = clip.speaker_motion.shape[0]
    if frames == 0:
        raise DataValidationError(source, "speaker_motion", "at least one frame", "0 frames")
    if isinstance(clip.listener_motion, np.ndarray) and clip.listener_motion.ndim == 2:
        if clip.listener_motion.shape[0] != frames:
            raise DataValidationError(
                source, "listener_motion", f"{frames} frames (as many as speaker_motion)",
                f"{clip.listener_motion.shape[0]} frames",
                "Speaker and listener must be cut to the same frames.",
            )  # fmt: skip
    check_array(clip.listener_motion, source=source, field="listener_motion", width=FRAME_DIM, frames=frames)
    for field, width in (("speaker_features", None), ("speaker_affect", 2), ("listener_affect", 2)):
        value = getattr(clip, field)
        if value is not None:
            check_array(value, source=source, field=field, width=width, frames=frames)
    duration = frames / clip.fps
    for i, word in enumerate(clip.speaker_words):
        start, end, text = word
        if not isinstance(text, str) or not text:
            raise DataValidationError(source, f"speaker_words[{i}]", "a non-empty word string", repr(text))
        if not (0 <= start <= end <= duration + WORD_TIME_TOLERANCE_S) or not np.isfinite([start, end]).all():
            raise DataValidationError(
                source, f"speaker_words[{i}] ({text!r})",
                f"0 <= start <= end <= clip duration {duration:.3f}s", f"start={start}, end={end}",
            )  # fmt: skip


def validate_dataset(path: str | os.PathLike) -> list[DataValidationError]:
    """Check a dataset directory completely: manifest, index, array headers, and every clip's values.

    Returns the problems found (empty when the dataset is valid) instead of stopping at the first clip,
    so ``dyadic data validate`` can list them all.
    """
    from dyadic_env.data.storage import DyadicDataset

    try:
        dataset = DyadicDataset(path)
    except DataValidationError as e:
        return [e]
    problems: list[DataValidationError] = []
    for row, entry in enumerate(dataset.entries):
        try:
            validate_clip(dataset.clip_at(row), source=_clip_source(Path(path), entry["clip_id"]))
        except DataValidationError as e:
            problems.append(e)
    return problems


def _clip_source(path: Path, clip_id: str) -> str:
    return f"{path} (clip {clip_id!r})"
