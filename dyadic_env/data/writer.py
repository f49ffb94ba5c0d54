"""Writing dataset directories (the layout is described in :mod:`dyadic_env.data.ondisk`).

:func:`write_dataset` streams validated clips to disk and renames the finished directory into place, so a
reader never sees a half-written dataset. :func:`add_appropriate_sets` gives an existing dataset
appropriate-reaction sets (:mod:`dyadic_env.data.appropriate`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dyadic_env.data import appropriate, ondisk
from dyadic_env.data.clip import Clip
from dyadic_env.data.errors import DataValidationError
from dyadic_env.data.storage import DyadicDataset
from dyadic_env.data.validation import array_problems, clip_problems
from dyadic_env.expression_basis import EXPRESSION_BASES, FRAME_DIM

# The tokenizer's 1 % / 99 % bounds are estimated on at most this many evenly spaced training frames,
# plenty for a precise quantile while keeping the fit within a few hundred MB on any dataset size.
MAX_TOKENIZER_FIT_FRAMES = 500_000


def write_dataset(
    out: str | os.PathLike,
    clips: Iterable[tuple[str, Clip]] | Iterable[tuple[str, Clip] | tuple[str, Clip, Sequence[Any]]],
    *,
    fps: float,
    expression_basis: str,
    name: str = "",
    extra_manifest: dict[str, Any] | None = None,
    fit_tokenizer: bool = True,
    appropriate_info: dict[str, Any] | None = None,
) -> Path:
    """Write ``(split, clip)`` pairs as a dataset directory, validating each clip; returns ``out``.

    An item may also be ``(split, clip, appropriate)``: the clip's appropriate-reaction set, a list of
    ``(T, 56)`` arrays as long as the clip and/or ids of clips (written in the same call) whose recorded
    listener fits (:mod:`dyadic_env.data.appropriate`); ``appropriate_info`` (``method``, ``params``) says
    how the sets were made. Clips stream to disk one at a time, so the input may be a generator larger than memory. With
    ``fit_tokenizer`` an :class:`~dyadic_env.tokenizer.ActionTokenizer` is fitted on the listener motion
    of the ``train`` split (of all clips when there is none) and saved as ``tokenizer.json``.
    Everything is written into a fresh hidden ``.partial`` directory beside ``out`` and renamed into
    place at the end: an error leaves ``out`` untouched and removes only that directory.
    """
    if expression_basis not in EXPRESSION_BASES:
        raise ValueError(f"expression_basis: expected one of {EXPRESSION_BASES}, found {expression_basis!r}")
    if ondisk.fps_problem(fps):
        raise ValueError(
            f"fps: expected a frame rate in (0, {ondisk.MAX_FPS:g}], found {ondisk.fps_problem(fps)}"
        )
    reserved = set(_RESERVED_MANIFEST_KEYS) & set(extra_manifest or {})
    if reserved:
        raise ValueError(f"extra_manifest: keys {sorted(reserved)} are reserved by the format; rename them")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out} exists and is not an empty directory; choose a new --out directory or delete it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        writer = _ClipWriter(tmp, fps)
        try:
            for item_number, item in enumerate(clips):
                writer.add(item, item_number)
        finally:
            writer.close()
        if not writer.ids:
            raise ValueError("write_dataset: no clips given")
        index = np.array(writer.index_rows, dtype=np.int64)
        np.save(tmp / ondisk.CLIP_INDEX, index)
        np.save(tmp / ondisk.CLIP_IDS, np.array(writer.ids, dtype=str))
        splits = list(writer.splits)
        tokenizer_info = _fit_tokenizer(tmp, index, splits) if fit_tokenizer else None
        sets = writer.sets.finish(writer.ids, index[:, ondisk.LENGTH], appropriate_info)
        manifest = {
            "format": ondisk.FORMAT_NAME, "schema_version": ondisk.SCHEMA_VERSION, "name": name or out.name,
            "fps": float(fps), "expression_basis": expression_basis, "frame_dim": FRAME_DIM,
            "feature_dim": writer.feature_dim, "splits": splits, "num_clips": len(writer.ids),
            "num_frames": writer.frames, "arrays": writer.array_specs(),
            "files": {ondisk.CLIP_LINES: {"bytes": writer.line_bytes}}, "tokenizer": tokenizer_info,
            **({"appropriate": sets} if sets else {}), **(extra_manifest or {}),
        }  # fmt: skip
        (tmp / ondisk.MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default))
        if out.exists():
            out.rmdir()  # empty (checked above); rename needs the name free
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


_RESERVED_MANIFEST_KEYS = (
    "format", "schema_version", "fps", "expression_basis", "frame_dim", "feature_dim", "splits", "num_clips",
    "num_frames", "arrays", "files", "tokenizer", "appropriate",
)  # fmt: skip


def _json_default(value: object) -> object:
    """Numpy values that clip meta often carries, as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


class _ClipWriter:
    """Streams validated clips into the arrays, the JSON lines and the index rows of a dataset."""

    def __init__(self, root: Path, fps: float) -> None:
        self.root, self.fps = root, float(fps)
        self.appenders: dict[str, ondisk.NpyAppender] = {}
        self.lines = open(root / ondisk.CLIP_LINES, "wb")  # noqa: SIM115 (closed by close())
        self.line_bytes = self.frames = 0
        self.index_rows: list[tuple[int, ...]] = []
        self.ids: list[str] = []
        self.seen: set[str] = set()
        self.splits: dict[str, int] = {}
        self.present: tuple[str, ...] | None = None
        self.feature_dim: int | None = None
        self.sets = SetWriter(root)

    def add(self, item: object, item_number: int) -> None:
        if not (isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[1], Clip)):
            raise TypeError(
                f"write_dataset: item {item_number}: expected a (split, Clip) pair or a (split, Clip, "
                f"appropriate) triple, found {item!r:.80}"
            )
        split, clip = item[:2]
        source = f"clip {clip.clip_id!r} (item {item_number} given to write_dataset)"
        if not isinstance(split, str) or not split.strip() or "\n" in split:
            raise DataValidationError(source, "split", "a non-empty split name such as 'train'", repr(split))
        problems = clip_problems(clip, source=source)
        if problems:
            raise problems[0]
        if clip.clip_id in self.seen:
            raise DataValidationError(
                source, "clip_id", "an id not used by an earlier clip", f"{clip.clip_id!r} again"
            )
        self._check_optional_arrays(clip, source)
        for name in (*ondisk.REQUIRED_ARRAYS, *(self.present or ())):
            array = getattr(clip, name)
            if name not in self.appenders:
                self.appenders[name] = ondisk.NpyAppender(self.root / f"{name}.npy", array.shape[1])
            self.appenders[name].append(array)
        if len(item) == 3:
            self.sets.add(len(self.ids), clip.num_frames, item[2], source)
        self._write_entry(split, clip, source)

    def _check_optional_arrays(self, clip: Clip, source: str) -> None:
        present = tuple(n for n in ondisk.OPTIONAL_ARRAYS if getattr(clip, n) is not None)
        if self.present is None:
            self.present = present
            self.feature_dim = None if clip.speaker_features is None else int(clip.speaker_features.shape[1])
        elif present != self.present:
            raise DataValidationError(
                source, "optional arrays", f"the same as the first clip: {list(self.present) or 'none'}",
                f"{list(present) or 'none'}", "Every clip must carry the same optional fields.",
            )  # fmt: skip
        elif clip.speaker_features is not None and clip.speaker_features.shape[1] != self.feature_dim:
            raise DataValidationError(
                source, "speaker_features", f"{self.feature_dim} columns like the first clip",
                f"{clip.speaker_features.shape[1]} columns",
            )  # fmt: skip

    def _write_entry(self, split: str, clip: Clip, source: str) -> None:
        entry: dict[str, Any] = {
            "clip_id": clip.clip_id, "split": split, "speaker_id": clip.speaker_id,
            "listener_id": clip.listener_id, "source": clip.source,
            "words": [[round(float(w.start), 4), round(float(w.end), 4), str(w.text)] for w in clip.speaker_words],
        }  # fmt: skip
        if float(clip.fps) != self.fps:
            entry["fps"] = float(clip.fps)
        if clip.meta:
            entry["meta"] = clip.meta
        try:
            line = (json.dumps(entry, default=_json_default, allow_nan=False) + "\n").encode()
        except (TypeError, ValueError) as e:
            raise DataValidationError(source, "meta", "JSON-serializable values (no NaN)", str(e)) from None
        split_code = self.splits.setdefault(split, len(self.splits))
        self.lines.write(line)
        self.index_rows.append(
            (self.frames, clip.num_frames, split_code, len(clip.speaker_words), self.line_bytes, len(line))
        )
        self.line_bytes += len(line)
        self.frames += clip.num_frames
        self.ids.append(clip.clip_id)
        self.seen.add(clip.clip_id)

    def array_specs(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"file": f"{name}.npy", "shape": [a.rows, a.width], "dtype": "float32"}
            for name, a in self.appenders.items()
        }

    def close(self) -> None:
        self.lines.close()
        self.sets.close()
        for appender in self.appenders.values():
            appender.close()


def _fit_tokenizer(root: Path, index: np.ndarray, splits: list[str]) -> dict[str, Any]:
    """Fit and save the action tokenizer on the train split's listener frames (all clips if no train)."""
    from dyadic_env.tokenizer import ActionTokenizer

    fitted_on = "train" if "train" in splits else "all"
    rows = index[index[:, ondisk.SPLIT] == splits.index("train")] if fitted_on == "train" else index
    frames = _evenly_spaced_frames(rows[:, ondisk.OFFSET], rows[:, ondisk.LENGTH], MAX_TOKENIZER_FIT_FRAMES)
    listener = np.load(root / "listener_motion.npy", mmap_mode="r")
    tokenizer = ActionTokenizer.fit(listener[frames])
    tokenizer.save(root / ondisk.TOKENIZER)
    return {"file": ondisk.TOKENIZER, "fitted_on": fitted_on, "frames": len(frames)}


def _evenly_spaced_frames(offsets: np.ndarray, lengths: np.ndarray, limit: int) -> np.ndarray:
    """Frame numbers of the given clips, or ``limit`` of them evenly spaced, in O(limit) memory."""
    total = int(lengths.sum())
    positions = np.arange(total) if total <= limit else np.linspace(0, total - 1, limit).astype(np.int64)
    ends = np.cumsum(lengths)
    clip = np.searchsorted(ends, positions, side="right")
    return offsets[clip] + positions - (ends[clip] - lengths[clip])


class SetWriter:
    """Collects the sets of clips written one after another, then writes the two files of the format."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows: list[tuple[int, int, int | str, int]] = []
        self.motion: ondisk.NpyAppender | None = None

    def add(self, row: int, frames: int, entries: Sequence[Any], source: str) -> None:
        """Add clip ``row``'s set (``frames``: its length): arrays are stored, strings are clip ids."""
        if isinstance(entries, (str, np.ndarray)) or not isinstance(entries, Sequence):
            raise DataValidationError(
                source, "appropriate set", "a list of (T, 56) arrays and/or clip ids", type(entries).__name__
            )
        for j, entry in enumerate(entries):
            if isinstance(entry, str):
                self.rows.append((row, appropriate.RECORDED, entry, -1))
                continue
            problems = array_problems(
                entry, source=source, field=f"appropriate[{j}]", width=FRAME_DIM, frames=frames
            )
            if problems:
                raise problems[0]
            if self.motion is None:
                self.motion = ondisk.NpyAppender(self.root / appropriate.MOTION_FILE, FRAME_DIM)
            self.rows.append((row, appropriate.STORED, self.motion.rows, frames))
            self.motion.append(entry)

    def finish(
        self, ids: list[str], lengths: np.ndarray, info: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """Resolve clip ids, save the index and return the manifest block (None when no clip has a set)."""
        self.close()
        if not self.rows and info is None:
            return None
        row_of = {clip_id: row for row, clip_id in enumerate(ids)}
        table = []
        for row, source, ref, frames in self.rows:
            if isinstance(ref, str):
                if ref not in row_of:
                    raise DataValidationError(
                        f"clip {ids[row]!r}", "appropriate set", "ids of clips in the dataset", repr(ref),
                        "A recorded listener can only be named by the id of a clip written with it.",
                    )  # fmt: skip
                table.append((row, source, row_of[ref], int(lengths[row_of[ref]])))
            else:
                table.append((row, source, ref, frames))
        index = np.array(table, dtype=np.int64).reshape(-1, 4)
        np.save(self.root / appropriate.INDEX_FILE, index)
        motion = None if self.motion is None else appropriate.MOTION_FILE
        return appropriate.manifest_block(index, motion, info or {}, len(ids))

    def close(self) -> None:
        if self.motion is not None:
            self.motion.close()


def add_appropriate_sets(
    path: str | os.PathLike, sets: Mapping[str, Sequence[Any]], *, method: str,
    params: Mapping[str, Any] | None = None, replace: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Give the clips of an existing dataset appropriate sets; returns the new ``manifest["appropriate"]``.

    ``sets`` maps a clip id to its entries (``(T, 56)`` arrays as long as the clip, or ids of clips whose
    recorded listener fits). New files get fresh names and the manifest is replaced atomically, so readers
    of the dataset see the old sets or the new ones, never a mix; the old files are removed afterwards.
    A dataset that has sets keeps them unless ``replace`` is True. A schema 1 dataset becomes schema 2.
    """
    dataset = DyadicDataset(path)
    old = dataset.manifest.get("appropriate")
    if old is not None and not replace:
        raise FileExistsError(
            f"{dataset.path}: already has appropriate sets ({old.get('method')}, {old.get('entries')} entries); "
            "pass replace=True (`--replace`) to overwrite them"
        )
    ids = dataset.clip_ids
    unknown = sorted(set(sets) - set(ids))
    if unknown:
        raise KeyError(f"{dataset.path}: no clips {unknown[:5]} to give appropriate sets")
    lengths = np.asarray(dataset.index[:, ondisk.LENGTH])
    token = uuid.uuid4().hex[:8]
    staging = dataset.path / f".appropriate-{token}"
    staging.mkdir()
    try:
        writer = SetWriter(staging)
        for row, clip_id in enumerate(ids):
            if clip_id in sets:
                writer.add(row, int(lengths[row]), sets[clip_id], f"clip {clip_id!r}")
        block = writer.finish(ids, lengths, {"method": method, "params": dict(params or {})})
        assert block is not None
        block["index"] = f"appropriate_index-{token}.npy"
        os.replace(staging / appropriate.INDEX_FILE, dataset.path / block["index"])
        if block["motion"] is not None:
            block["motion"] = f"appropriate_motion-{token}.npy"
            os.replace(staging / appropriate.MOTION_FILE, dataset.path / block["motion"])
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    manifest = {**dataset.manifest, "schema_version": ondisk.SCHEMA_VERSION, "appropriate": block}
    tmp = dataset.path / f".{ondisk.MANIFEST}.{token}"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, dataset.path / ondisk.MANIFEST)
    for name in (old or {}).get("index"), (old or {}).get("motion"):
        if name and name not in (block["index"], block["motion"]):
            (dataset.path / name).unlink(missing_ok=True)
    return block
