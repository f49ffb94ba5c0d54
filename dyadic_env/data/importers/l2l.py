"""Learning-to-Listen (Ng et al., CVPR 2022) ``.npy`` windows.

A folder of the release holds, per person ``p0`` (left in the video) and ``p1`` (right):
``p{k}_list_faces_clean_deca.npy`` (N, 64, 184) the windows where person k listens,
``p{k}_speak_faces_clean_deca.npy`` (N', 64, 184) the windows where person k speaks, and
``p{k}_speak_files_clean_deca.npy`` (N', 64, 3) their source video names. Window i of
``p0_list`` is the same moment as window i of ``p1_speak`` (the other person speaking), and ``p1_list``
pairs with ``p0_speak`` likewise; that is how the release's own loader pairs them. Of the 184 DECA values
per frame the first 56 (expression 50, pose 6) are kept; videos are 30 fps.

The source is searched recursively for such folders (e.g. ``data/trevor/train``). A folder named
``train``, ``val`` or ``test`` gives its split as is; other folders are split by source video (from the
``speak_files`` names, or by blocks of consecutive windows when those are absent or unreadable
without pickle) with :func:`~dyadic_env.data.assign_splits`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.data.errors import DataValidationError, array_load_problem
from dyadic_env.data.importers._common import ImportedData
from dyadic_env.data.splits import assign_splits
from dyadic_env.data.validation import array_problems
from dyadic_env.expression_basis import FRAME_DIM

L2L_FPS = 30.0
LISTENER_FILE = "p{k}_list_faces_clean_deca.npy"
SPEAKER_FILE = "p{k}_speak_faces_clean_deca.npy"
NAMES_FILE = "p{k}_speak_files_clean_deca.npy"
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# Windows grouped together for splitting when video names are unknown: neighbouring windows overlap in
# time, so keeping runs of them in one split limits leakage between train and test.
WINDOW_BLOCK = 64


@dataclass
class _Pairing:
    """Listener windows of person k with the speaker windows of the other person, same index."""

    folder: Path
    group: str
    listener: str
    listener_windows: np.ndarray
    speaker_windows: np.ndarray
    listener_file: Path
    speaker_file: Path
    videos: list[str] | None


def read_l2l(
    src: str | os.PathLike, *, seed: int = 0, fps: float = L2L_FPS, fractions: dict[str, float] | None = None
) -> ImportedData:
    """Read Learning-to-Listen windows under ``src``; see the module docstring for the layout."""
    src = Path(src)
    folders = sorted({f.parent for f in src.rglob("p[01]_list_faces_clean_deca.npy")}) if src.is_dir() else []
    if not folders:
        raise DataValidationError(
            str(src), "p0_list_faces_clean_deca.npy", "Learning-to-Listen files p{0,1}_{list,speak}_faces_clean_deca.npy "
            "in the folder or its subfolders", "none",
        )  # fmt: skip
    pairings = [p for folder in folders for p in _pairings(src, folder)]
    notes = [
        f"{len(pairings)} listener/speaker file pairs (p0_list with p1_speak, p1_list with p0_speak), {fps:g} fps"
    ]
    splits = _splits(pairings, seed, fractions, notes)
    total = sum(len(p.listener_windows) for p in pairings)
    return ImportedData("l2l", _clips(pairings, splits, fps), total, fps, "flame", notes)


def _open_windows(file: Path) -> np.ndarray:
    try:
        windows = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataValidationError(
            str(file), "windows", "a readable .npy of shape (N, 64, 184)", array_load_problem(e)
        ) from None
    if windows.ndim != 3 or windows.shape[2] < FRAME_DIM or windows.dtype.kind != "f":
        raise DataValidationError(
            str(file), "windows", f"a float array of shape (N, T, >= {FRAME_DIM}) such as (N, 64, 184)",
            f"{windows.dtype} array of shape {windows.shape}",
        )  # fmt: skip
    return windows


def _pairings(src: Path, folder: Path) -> list[_Pairing]:
    pairings = []
    for k in (0, 1):
        listener_file = folder / LISTENER_FILE.format(k=k)
        if not listener_file.exists():
            continue
        speaker_file = folder / SPEAKER_FILE.format(k=1 - k)
        if not speaker_file.exists():
            raise DataValidationError(
                str(speaker_file), "speaker windows", f"the other person's speaking windows, to pair with {listener_file.name}",
                "no file",
            )  # fmt: skip
        listener, speaker = _open_windows(listener_file), _open_windows(speaker_file)
        if listener.shape[:2] != speaker.shape[:2]:
            raise DataValidationError(
                str(speaker_file), "windows", f"shape ({listener.shape[0]}, {listener.shape[1]}, ...) like {listener_file.name}",
                f"shape {speaker.shape}", "Window i of p{k}_list pairs with window i of p{1-k}_speak.",
            )  # fmt: skip
        relative = folder.relative_to(src).as_posix()
        pairings.append(
            _Pairing(
                folder,
                relative if relative != "." else src.name,
                f"p{k}",
                listener,
                speaker,
                listener_file,
                speaker_file,
                _video_names(folder / NAMES_FILE.format(k=1 - k), len(listener)),
            )
        )
    return pairings


def _video_names(file: Path, count: int) -> list[str] | None:
    """The source video of each window, or None when the names file is absent or needs pickle."""
    if not file.exists():
        return None
    try:
        names = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if names.ndim != 3 or len(names) != count or names.dtype.kind not in "SU":
        return None
    return [str(v.decode() if isinstance(v, bytes) else v) for v in np.asarray(names[:, 0, 0])]


def _splits(
    pairings: list[_Pairing], seed: int, fractions: dict[str, float] | None, notes: list[str]
) -> list[list[str]]:
    """A split name for every window of every pairing."""
    groups: list[str] = []
    for p in pairings:
        if p.folder.name.lower() in SPLIT_FOLDERS:
            continue
        if p.videos is not None:
            groups += [f"{p.group}:{v}" for v in p.videos]
        else:
            groups += [
                f"{p.group}:{p.listener}:block{i // WINDOW_BLOCK}" for i in range(len(p.listener_windows))
            ]
    drawn = iter(assign_splits(groups, fractions, seed=seed)) if groups else iter(())
    result = []
    for p in pairings:
        given = SPLIT_FOLDERS.get(p.folder.name.lower())
        result.append(
            [given] * len(p.listener_windows) if given else [next(drawn) for _ in p.listener_windows]
        )
    given_folders = sum(p.folder.name.lower() in SPLIT_FOLDERS for p in pairings)
    if given_folders:
        notes.append(f"{given_folders} file pair(s) in train/val/test folders keep those splits")
    if groups:
        drawn_pairings = [
            p for p in pairings if p.folder.name.lower() not in SPLIT_FOLDERS and len(p.listener_windows)
        ]
        known = all(p.videos is not None for p in drawn_pairings)
        by = "source video" if known else f"source video where known, else blocks of {WINDOW_BLOCK} windows"
        notes.append(f"other windows split by {by} with seed {seed}")
    return result


def _clips(pairings: list[_Pairing], splits: list[list[str]], fps: float) -> Iterator[tuple[str, Clip]]:
    for p, split_names in zip(pairings, splits):
        speaker_person = "p1" if p.listener == "p0" else "p0"
        for i, split in enumerate(split_names):
            listener = _window(p.listener_windows, i, p.listener_file)
            speaker = _window(p.speaker_windows, i, p.speaker_file)
            meta = {"window": i} | ({"video": p.videos[i]} if p.videos else {})
            yield split, Clip(
                clip_id=f"{p.group}/{p.listener}_list/{i:06d}", fps=fps, speaker_motion=speaker,
                listener_motion=listener, speaker_id=f"{p.group}:{speaker_person}",
                listener_id=f"{p.group}:{p.listener}", source="l2l", meta=meta,
            )  # fmt: skip


def _window(windows: np.ndarray, i: int, file: Path) -> np.ndarray:
    frames = np.ascontiguousarray(windows[i, :, :FRAME_DIM], dtype=np.float32)
    problems = array_problems(frames, source=str(file), field=f"window {i} [:, :56]", width=FRAME_DIM)
    if problems:
        raise problems[0]
    return frames
