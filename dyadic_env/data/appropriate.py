"""Appropriate-reaction sets: for a clip, listener reactions that also fit its speaker (schema 2).

One recorded listener is one of many fitting answers, so REACT-style metrics compare a prediction with a
*set* of appropriate reactions. A set entry is either

- a **stored** reaction: frames kept in ``appropriate_motion.npy``, as long as the clip (the synthetic
  benchmark draws them from other listener personas answering the same speaker), or
- a **recorded** listener: the ``listener_motion`` of a clip of the dataset (REACT 2023's neighbour
  sets: listeners of clips whose speaker behaves alike); it keeps that clip's length.

On disk (both memory-mapped)::

    appropriate_index.npy   (M, 4) int64, one row per entry, sorted by clip row:
                            clip row, source (0 stored, 1 recorded), ref, frames
                            ref: first frame in appropriate_motion.npy (stored) or the clip row (recorded)
    appropriate_motion.npy  (F', 56) float32, present when any entry is stored

``manifest["appropriate"]`` names the files and says how the sets were made (``method``, ``params``) and how
large they are (``entries``, ``frames``, ``clips``, ``sizes``). :func:`add_appropriate_sets` adds sets to an
existing dataset without rewriting its other files; ``write_dataset`` writes them with a new dataset
(both in :mod:`dyadic_env.data.writer`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dyadic_env.data import ondisk
from dyadic_env.data.errors import DataValidationError
from dyadic_env.expression_basis import FRAME_DIM

INDEX_FILE = "appropriate_index.npy"
MOTION_FILE = "appropriate_motion.npy"
CLIP_ROW, SOURCE, REF, FRAMES = range(4)
STORED, RECORDED = 0, 1
# Stored frames scanned for NaN/inf at a time (bounded memory on any dataset size).
SCAN_FRAMES = 1 << 18
# Entries per problem kind reported before the rest are summed up, so a broken index stays readable.
MAX_REPORTED = 20


class AppropriateSets:
    """The appropriate sets of an opened dataset (see :meth:`DyadicDataset.appropriate_listeners`)."""

    def __init__(self, index: np.ndarray, motion: np.ndarray | None, info: dict[str, Any]) -> None:
        self.index, self.motion, self.info = index, motion, info
        self._rows = np.asarray(index[:, CLIP_ROW])

    def entries(self, row: int) -> np.ndarray:
        """The ``(n, 4)`` index rows of clip ``row``'s set (empty when it has none)."""
        lo, hi = np.searchsorted(self._rows, [row, row + 1])
        return np.asarray(self.index[lo:hi])

    def sizes(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Set size of each clip row."""
        rows = np.asarray(rows)
        return np.searchsorted(self._rows, rows + 1) - np.searchsorted(self._rows, rows)

    @property
    def method(self) -> str:
        return str(self.info.get("method", ""))


def open_sets(
    path: Path, manifest: dict[str, Any], num_clips: int, lengths: np.ndarray
) -> tuple[AppropriateSets | None, list[DataValidationError]]:
    """Memory-map the sets named by ``manifest`` and check the index against the clips (vectorized)."""
    info = manifest.get("appropriate")
    if info is None:
        return None, []
    where = str(path / ondisk.MANIFEST)
    if not isinstance(info, dict) or not isinstance(info.get("index"), str):
        return None, [
            DataValidationError(where, "appropriate", "an object naming its index file", repr(info))
        ]
    entries = info.get("entries")
    index, problem = ondisk.open_npy(
        path / info["index"], "appropriate index", f"int64 of shape ({entries}, 4)"
    )
    if problem or index is None:
        return None, [problem] if problem else []
    if index.dtype != np.int64 or index.ndim != 2 or index.shape[1] != 4 or len(index) != entries:
        return None, [
            DataValidationError(
                str(path / info["index"]), "appropriate index", f"int64 of shape ({entries}, 4) (manifest.json)",
                f"{index.dtype} of shape {index.shape}", ondisk.RECREATE_HINT,
            )
        ]  # fmt: skip
    motion, problems = _open_motion(path, info)
    if not problems:
        problems = index_problems(str(path / info["index"]), np.asarray(index), num_clips, lengths, motion)
    return (None if problems else AppropriateSets(index, motion, info)), problems


def _open_motion(path: Path, info: dict[str, Any]) -> tuple[np.ndarray | None, list[DataValidationError]]:
    name = info.get("motion")
    if name is None:
        return None, []
    frames = info.get("frames")
    expected = f"float32 of shape ({frames}, {FRAME_DIM})"
    motion, problem = ondisk.open_npy(path / str(name), "appropriate motion", expected)
    if problem or motion is None:
        return None, [problem] if problem else []
    if (
        motion.dtype != np.float32
        or motion.ndim != 2
        or motion.shape[1] != FRAME_DIM
        or len(motion) != frames
    ):
        found = f"{motion.dtype} of shape {motion.shape}"
        return None, [DataValidationError(str(path / name), "appropriate motion", f"{expected} (manifest.json)",
                                          found, ondisk.RECREATE_HINT)]  # fmt: skip
    return motion, []


def index_problems(
    file: str, index: np.ndarray, num_clips: int, lengths: np.ndarray, motion: np.ndarray | None
) -> list[DataValidationError]:
    """Every inconsistency of the set index with the clips (``lengths``) and the stored frames."""
    rows, source, ref, frames = (index[:, c] for c in range(4)) if len(index) else [np.zeros(0, int)] * 4
    stored_frames = 0 if motion is None else len(motion)
    safe_row = np.clip(rows, 0, max(num_clips - 1, 0))
    safe_ref = np.clip(ref, 0, max(num_clips - 1, 0))
    checks = [
        ("clip row", f"a clip row in [0, {num_clips})", (rows < 0) | (rows >= num_clips)),
        ("clip row", "rows in ascending order", np.r_[False, np.diff(rows) < 0]),
        ("source", f"{STORED} (stored) or {RECORDED} (recorded listener)", ~np.isin(source, (STORED, RECORDED))),
        ("ref", f"a clip row in [0, {num_clips}) for a recorded listener",
         (source == RECORDED) & ((ref < 0) | (ref >= num_clips))),
        ("frames", "as many frames as the referenced clip", (source == RECORDED) & (frames != lengths[safe_ref])),
        ("frames", "as many frames as the clip it answers", (source == STORED) & (frames != lengths[safe_row])),
        ("ref", f"a frame range within the {stored_frames} stored frames",
         (source == STORED) & ((ref < 0) | (ref + frames > stored_frames))),
    ]  # fmt: skip
    problems = []
    for field, expected, bad in checks:
        for i in np.flatnonzero(bad)[:MAX_REPORTED]:
            problems.append(DataValidationError(f"{file} row {i}", field, expected, str(index[i].tolist()),
                                                ondisk.RECREATE_HINT))  # fmt: skip
    return problems


def set_problems(path: Path, manifest: dict[str, Any], index: np.ndarray) -> list[DataValidationError]:
    """Every problem of a dataset's appropriate sets: files, index, and non-finite stored frames."""
    _, problems = open_sets(path, manifest, len(index), np.asarray(index[:, ondisk.LENGTH]))
    info = manifest.get("appropriate")
    if not isinstance(info, dict):
        return problems
    motion = _open_motion(path, info)[0]
    if motion is None:
        return problems
    for begin in range(0, len(motion), SCAN_FRAMES):
        bad = np.flatnonzero(~np.isfinite(np.asarray(motion[begin : begin + SCAN_FRAMES])).all(axis=1))
        if len(bad):
            problems.append(DataValidationError(
                str(path / info["motion"]), "appropriate motion", "finite values",
                f"NaN or inf at frame {begin + int(bad[0])} ({len(bad)} such frames in its block)", ondisk.RECREATE_HINT,
            ))  # fmt: skip
            break
    return problems


def set_listeners(
    sets: AppropriateSets, row: int, listener_motion: np.ndarray, offsets: np.ndarray
) -> list[np.ndarray]:
    """The reactions of clip ``row``'s set as read-only ``(T_i, 56)`` views."""
    out = []
    for _, source, ref, frames in sets.entries(row).tolist():
        if source == STORED:
            assert sets.motion is not None
            out.append(sets.motion[ref : ref + frames])
        else:
            out.append(listener_motion[offsets[ref] : offsets[ref] + frames])
    return out


def set_entries(sets: AppropriateSets, row: int, clip_ids: np.ndarray) -> list[Any]:
    """Clip ``row``'s set as ``write_dataset`` takes it: stored arrays, and clip ids for recorded listeners."""
    out: list[Any] = []
    for _, source, ref, frames in sets.entries(row).tolist():
        if source == STORED:
            assert sets.motion is not None
            out.append(np.asarray(sets.motion[ref : ref + frames]))
        else:
            out.append(str(clip_ids[ref]))
    return out


def manifest_block(index: np.ndarray, motion: str | None, info: Mapping[str, Any], num_clips: int,
                   index_file: str = INDEX_FILE) -> dict[str, Any]:  # fmt: skip
    """``manifest["appropriate"]``: files, how the sets were made, and their sizes."""
    stored = index[:, SOURCE] == STORED
    sizes = np.bincount(index[:, CLIP_ROW], minlength=num_clips) if len(index) else np.zeros(num_clips, int)
    with_set = sizes[sizes > 0]
    return {
        "index": index_file, "motion": motion, "entries": len(index), "frames": int(index[stored, FRAMES].sum()),
        "stored": int(stored.sum()), "recorded": int((~stored).sum()), "clips": len(with_set),
        "sizes": {"min": int(with_set.min()) if len(with_set) else 0, "mean": float(with_set.mean()) if len(with_set) else 0.0,
                  "max": int(with_set.max()) if len(with_set) else 0},
        "method": str(info.get("method", "given")), "params": dict(info.get("params", {})),
    }  # fmt: skip
