"""Validation of clips and whole dataset directories.

Every problem is a :class:`DataValidationError` naming file, field, expected and found.
:func:`validate_dataset` lists every problem of a directory instead of stopping at the first, so
``dyadic data validate`` can report them all at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dyadic_env.data import ondisk
from dyadic_env.data.appropriate import set_problems
from dyadic_env.data.clip import Clip
from dyadic_env.data.errors import DataValidationError
from dyadic_env.expression_basis import FRAME_DIM

# Words may end slightly after the last frame (rounding of timestamps); anything beyond is an error.
WORD_TIME_TOLERANCE_S = 0.05
# Frames scanned for NaN/inf at a time, so validating a dataset larger than RAM stays in bounded memory.
SCAN_CHUNK_FRAMES = 1 << 18
# Clips reported per array with non-finite values before the rest are summed up in one line.
MAX_REPORTED_CLIPS = 100


def array_problems(
    array: object, *, source: str, field: str, width: int | None, frames: int | None = None
) -> list[DataValidationError]:
    """Problems of ``array`` as a finite float32 ``(frames, width)`` array (empty when it is one)."""
    if not isinstance(array, np.ndarray):
        return [DataValidationError(source, field, "a numpy array", type(array).__name__)]
    problems = []
    if array.dtype != np.float32:
        problems.append(DataValidationError(source, field, "dtype float32", f"dtype {array.dtype}"))
    expected = f"({frames if frames is not None else 'T'}, {width if width is not None else 'd'})"
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        return [*problems, DataValidationError(source, field, f"shape {expected}", f"shape {array.shape}")]
    if frames is not None and array.shape[0] != frames:
        problems.append(
            DataValidationError(
                source,
                field,
                f"shape {expected} (as many frames as speaker_motion)",
                f"shape {array.shape}",
                "Speaker and listener data must be cut to the same frames.",
            )
        )
    if array.dtype.kind in "fc":  # only floats can hold NaN or inf
        problem = _finite_problem(np.asarray(array), source=source, field=field)
        if problem:
            problems.append(problem)
    return problems


def _finite_problem(
    array: np.ndarray, *, source: str, field: str, frame_base: int = 0
) -> DataValidationError | None:
    finite = np.isfinite(array)
    if finite.all():
        return None
    row, col = np.argwhere(~finite)[0]
    count = int((~finite).sum())
    return DataValidationError(
        source, field, "finite values",
        f"{array[row, col]} at frame {row + frame_base}, dim {col} ({count} non-finite value{'s' * (count > 1)})",
    )  # fmt: skip


def word_problems(
    words: Sequence[Any], *, duration: float, source: str, field: str = "speaker_words"
) -> list[DataValidationError]:
    """Problems of ``(start, end, text)`` words of a clip lasting ``duration`` seconds."""
    problems = []
    for i, word in enumerate(words):
        name = f"{field}[{i}]"
        if not isinstance(word, (tuple, list)) or len(word) != 3:
            problems.append(DataValidationError(source, name, "a (start_s, end_s, text) triple", repr(word)))
            continue
        start, end, text = word
        if not isinstance(text, str) or not text.strip():
            problems.append(DataValidationError(source, name, "a non-empty word string", repr(text)))
            continue
        name = f"{name} ({text!r})"
        numbers = all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end))
        if not numbers or not np.isfinite([start, end]).all():
            problems.append(
                DataValidationError(source, name, "finite start and end seconds", f"{start!r}, {end!r}")
            )
        elif not 0 <= start <= end <= duration + WORD_TIME_TOLERANCE_S:
            problems.append(
                DataValidationError(
                    source,
                    name,
                    f"0 <= start <= end <= {duration:.3f} s (the clip's duration)",
                    f"start={start}, end={end}",
                    "Words must lie within the clip; cut or shift their times.",
                )
            )
    return problems


def clip_problems(clip: Clip, *, source: str = "") -> list[DataValidationError]:
    """Every problem found in an in-memory ``clip`` (empty when it is valid)."""
    source = source or f"clip {clip.clip_id!r}"
    problems = []
    if not isinstance(clip.clip_id, str) or not clip.clip_id or any(c in clip.clip_id for c in "\n\r\t"):
        problems.append(
            DataValidationError(source, "clip_id", "a non-empty single-line string", repr(clip.clip_id))
        )
    bad_fps = ondisk.fps_problem(clip.fps)
    if bad_fps:
        problems.append(
            DataValidationError(source, "fps", f"a frame rate in (0, {ondisk.MAX_FPS:g}]", bad_fps)
        )
    speaker = array_problems(clip.speaker_motion, source=source, field="speaker_motion", width=FRAME_DIM)
    problems += speaker
    frames = None
    if isinstance(clip.speaker_motion, np.ndarray) and clip.speaker_motion.ndim == 2:
        frames = int(clip.speaker_motion.shape[0])
        if frames == 0:
            problems.append(DataValidationError(source, "speaker_motion", "at least one frame", "0 frames"))
    listener = clip.listener_motion
    if (
        frames is not None
        and isinstance(listener, np.ndarray)
        and listener.ndim == 2
        and len(listener) != frames
    ):
        problems.append(
            DataValidationError(
                source,
                "listener_motion",
                f"{frames} frames (as many as speaker_motion)",
                f"{len(listener)} frames",
                "Speaker and listener must be cut to the same frames.",
            )
        )
        frames_for_listener = None
    else:
        frames_for_listener = frames
    problems += array_problems(
        listener, source=source, field="listener_motion", width=FRAME_DIM, frames=frames_for_listener
    )
    for field, width in (("speaker_features", None), ("speaker_affect", 2), ("listener_affect", 2)):
        value = getattr(clip, field)
        if value is not None:
            problems += array_problems(value, source=source, field=field, width=width, frames=frames)
    if frames and not bad_fps:
        problems += word_problems(clip.speaker_words, duration=frames / clip.fps, source=source)
    return problems


def validate_clip(clip: Clip, *, source: str = "") -> None:
    """Raise a :class:`DataValidationError` for the first problem found in ``clip``."""
    problems = clip_problems(clip, source=source)
    if problems:
        raise problems[0]


def validate_dataset(path: str | os.PathLike) -> list[DataValidationError]:
    """Check a dataset directory completely: manifest, index, array headers, every clip's values, and the
    appropriate-reaction sets (files, index against the clips, finite stored frames).

    Returns every problem found (empty when the dataset is valid): a broken file does not hide the
    problems of the others.
    """
    path = Path(path)
    if not path.is_dir():
        return [DataValidationError(str(path), "dataset directory", "an existing directory", "nothing there")]
    manifest, problems = ondisk.read_manifest(path)
    names = [
        *ondisk.REQUIRED_ARRAYS,
        *[n for n in (manifest or {}).get("arrays") or {} if n in ondisk.OPTIONAL_ARRAYS],
    ]
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        array, found = ondisk.open_motion_array(path, name, manifest)
        problems += found
        if array is not None:
            arrays[name] = array
    problems += _frame_count_problems(path, manifest, arrays)
    index, ids, index_problems = _open_index(path, manifest)
    problems += index_problems
    if index is not None and ids is not None and manifest is not None:
        total = min((len(a) for a in arrays.values()), default=None)
        problems += _clip_entry_problems(path, manifest, index, ids, total)
        for name, array in arrays.items():
            problems += _non_finite_problems(path, manifest, name, array, index, ids)
        problems += set_problems(path, manifest, index)
    problems += _tokenizer_problems(path)
    return problems


def _frame_count_problems(
    path: Path, manifest: dict[str, Any] | None, arrays: dict[str, np.ndarray]
) -> list[DataValidationError]:
    if "speaker_motion" not in arrays:
        return []
    total = len(arrays["speaker_motion"])
    return [
        DataValidationError(
            str(ondisk.array_file(path, name, manifest)),
            name,
            f"{total} frames (as many as speaker_motion.npy)",
            f"{len(array)} frames",
            "Speaker and listener arrays must hold the same frames.",
        )
        for name, array in arrays.items()
        if len(array) != total
    ]


def _open_index(
    path: Path, manifest: dict[str, Any] | None
) -> tuple[np.ndarray | None, np.ndarray | None, list[DataValidationError]]:
    index, ids, problems = ondisk.open_index(path, manifest)
    if ids is not None:
        unique, counts = np.unique(np.asarray(ids), return_counts=True)
        for clip_id in unique[counts > 1][:MAX_REPORTED_CLIPS]:
            problems.append(
                DataValidationError(
                    str(path / ondisk.CLIP_IDS), "clip ids", "unique ids", f"{clip_id!r} repeated"
                )
            )
    return index, ids, problems


def _clip_entry_problems(
    path: Path, manifest: dict[str, Any], index: np.ndarray, ids: np.ndarray, total: int | None
) -> list[DataValidationError]:
    lines_file = path / ondisk.CLIP_LINES
    if not lines_file.exists():
        return [
            DataValidationError(
                str(lines_file), "clip entries", "one JSON line per clip", "no file", ondisk.RECREATE_HINT
            )
        ]
    raw = lines_file.read_bytes()
    splits: list[Any] = manifest["splits"] if isinstance(manifest.get("splits"), list) else []
    fps = manifest["fps"] if not ondisk.fps_problem(manifest.get("fps")) else None
    problems: list[DataValidationError] = []
    expected_bytes = ((manifest.get("files") or {}).get(ondisk.CLIP_LINES) or {}).get("bytes")
    if expected_bytes is not None and expected_bytes != len(raw):
        problems.append(
            DataValidationError(
                str(lines_file),
                "clip entries",
                f"{expected_bytes} bytes (manifest.json)",
                f"{len(raw)} bytes",
                ondisk.RECREATE_HINT,
            )
        )
    for row, values in enumerate(np.asarray(index).tolist()):
        offset, length, split, num_words, start, size = values
        where = f"{path / ondisk.CLIP_INDEX} (clip {str(ids[row])!r}, row {row})"
        if length <= 0 or offset < 0 or (total is not None and offset + length > total):
            problems.append(
                DataValidationError(
                    where,
                    "offset/length",
                    f"a range of at least one frame within the {total} stored frames",
                    f"[{offset}, {offset + length})",
                    ondisk.RECREATE_HINT,
                )
            )
        if not 0 <= split < len(splits):
            problems.append(
                DataValidationError(where, "split", f"a number in [0, {len(splits)})", str(split))
            )
        if start < 0 or size <= 0 or start + size > len(raw):
            problems.append(
                DataValidationError(
                    where,
                    "line range",
                    f"a byte range within {ondisk.CLIP_LINES} ({len(raw)} bytes)",
                    f"[{start}, {start + size})",
                    ondisk.RECREATE_HINT,
                )
            )
            continue
        entry_where = f"{lines_file} line {row + 1} (clip {str(ids[row])!r})"
        problems += _entry_problems(
            raw[start : start + size], entry_where, str(ids[row]), length, num_words, fps
        )
    return problems


def _entry_problems(
    line: bytes, where: str, clip_id: str, length: int, num_words: int, fps: float | None
) -> list[DataValidationError]:
    try:
        entry = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return [
            DataValidationError(
                where, "clip entry", "one JSON object", f"unreadable JSON ({e})", ondisk.RECREATE_HINT
            )
        ]
    if not isinstance(entry, dict):
        return [DataValidationError(where, "clip entry", "a JSON object", type(entry).__name__)]
    problems = []
    if entry.get("clip_id") != clip_id:
        problems.append(
            DataValidationError(
                where, "clip_id", f"{clip_id!r} (as in {ondisk.CLIP_IDS})", repr(entry.get("clip_id"))
            )
        )
    if "fps" in entry:
        bad_fps = ondisk.fps_problem(entry["fps"])
        if bad_fps:
            problems.append(
                DataValidationError(where, "fps", f"a frame rate in (0, {ondisk.MAX_FPS:g}]", bad_fps)
            )
            return problems
        fps = float(entry["fps"])
    words = entry.get("words", [])
    if not isinstance(words, list):
        return [
            *problems,
            DataValidationError(where, "words", "a list of [start_s, end_s, text]", type(words).__name__),
        ]
    if len(words) != num_words:
        problems.append(
            DataValidationError(
                where, "words", f"{num_words} words (as counted in {ondisk.CLIP_INDEX})", f"{len(words)}"
            )
        )
    if fps is not None:
        problems += word_problems(words, duration=length / fps, source=where, field="words")
    return problems


def _non_finite_problems(
    path: Path, manifest: dict[str, Any], name: str, array: np.ndarray, index: np.ndarray, ids: np.ndarray
) -> list[DataValidationError]:
    """NaN and inf in an array, reported per clip, scanning in chunks so memory stays bounded."""
    bad_frames = []
    for begin in range(0, len(array), SCAN_CHUNK_FRAMES):
        chunk = np.asarray(array[begin : begin + SCAN_CHUNK_FRAMES])
        bad_frames.append(np.flatnonzero(~np.isfinite(chunk).all(axis=1)) + begin)
    frames = np.concatenate(bad_frames) if bad_frames else np.zeros(0, np.int64)
    if not len(frames):
        return []
    file = str(ondisk.array_file(path, name, manifest))
    order = np.argsort(index[:, ondisk.OFFSET], kind="stable")
    starts = np.asarray(index[order, ondisk.OFFSET])
    rows = order[np.clip(np.searchsorted(starts, frames, side="right") - 1, 0, len(order) - 1)]
    inside = frames < np.asarray(index[rows, ondisk.OFFSET] + index[rows, ondisk.LENGTH])
    problems = []
    if not inside.all():
        problems.append(
            DataValidationError(
                file, name, "finite values", f"{int((~inside).sum())} non-finite frames outside any clip"
            )
        )
    clip_rows = list(dict.fromkeys(rows[inside].tolist()))
    for row in clip_rows[:MAX_REPORTED_CLIPS]:
        offset, length = int(index[row, ondisk.OFFSET]), int(index[row, ondisk.LENGTH])
        problem = _finite_problem(
            np.asarray(array[offset : offset + length]), source=file, field=f"{name} (clip {str(ids[row])!r})"
        )
        if problem:
            problems.append(problem)
    if len(clip_rows) > MAX_REPORTED_CLIPS:
        problems.append(
            DataValidationError(
                file,
                name,
                "finite values",
                f"non-finite values in {len(clip_rows) - MAX_REPORTED_CLIPS} more clips",
            )
        )
    return problems


def _tokenizer_problems(path: Path) -> list[DataValidationError]:
    file = path / ondisk.TOKENIZER
    if not file.exists():
        return []
    from dyadic_env.tokenizer import ActionTokenizer

    try:
        tokenizer = ActionTokenizer.load(file)
    except (ValueError, TypeError, KeyError, OSError) as e:
        return [
            DataValidationError(
                str(file), "tokenizer", "a saved ActionTokenizer", f"unreadable ({e})", ondisk.RECREATE_HINT
            )
        ]
    if tokenizer.dim != FRAME_DIM:
        return [DataValidationError(str(file), "tokenizer", f"{FRAME_DIM} dimensions", f"{tokenizer.dim}")]
    return []
