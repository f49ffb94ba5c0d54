"""Reading and writing dataset directories (the layout is described in :mod:`dyadic_env.data.ondisk`).

Opening a dataset reads the manifest and the ``.npy`` headers only: arrays, the clip index and the clip
ids are memory-mapped, and a clip's JSON line is parsed when the clip is read. A clip's arrays are
read-only views into the maps; copy them before modifying.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from dyadic_env.data import ondisk
from dyadic_env.data.clip import Clip, Word
from dyadic_env.data.errors import DataValidationError
from dyadic_env.data.validation import clip_problems
from dyadic_env.expression_basis import EXPRESSION_BASES, FRAME_DIM

if TYPE_CHECKING:
    from dyadic_env.tokenizer import ActionTokenizer

# The tokenizer's 1 % / 99 % bounds are estimated on at most this many evenly spaced training frames,
# plenty for a precise quantile while keeping the fit within a few hundred MB on any dataset size.
MAX_TOKENIZER_FIT_FRAMES = 500_000


class ClipSequence(Sequence[Clip]):
    """The clips of one split, built lazily from the memory maps."""

    def __init__(self, dataset: DyadicDataset, rows: np.ndarray) -> None:
        self._dataset, self._rows = dataset, rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> Clip: ...
    @overload
    def __getitem__(self, i: slice) -> ClipSequence: ...
    def __getitem__(self, i: int | slice) -> Clip | ClipSequence:
        if isinstance(i, slice):
            return ClipSequence(self._dataset, self._rows[i])
        if not -len(self._rows) <= i < len(self._rows):
            raise IndexError(f"clip {i} out of range for a split of {len(self._rows)} clips")
        return self._dataset.clip_at(int(self._rows[i]))

    def __iter__(self) -> Iterator[Clip]:
        return (self._dataset.clip_at(int(r)) for r in self._rows)

    @property
    def clip_ids(self) -> list[str]:
        return self._dataset.clip_id_array[self._rows].tolist()

    @property
    def rows(self) -> np.ndarray:
        """Row numbers of these clips in the dataset (for :meth:`DyadicDataset.clip_at`)."""
        return self._rows

    @property
    def lengths(self) -> np.ndarray:
        """Frames of each clip, read from the index without touching the arrays."""
        return np.asarray(self._dataset.index[self._rows, ondisk.LENGTH])

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())


class DyadicDataset:
    """A dataset directory opened for reading. Use :func:`load_dataset` to open one."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"{self.path}: no such dataset directory (make one with `dyadic data synth` or `dyadic data import`)"
            )
        manifest, problems = ondisk.read_manifest(self.path)
        _raise_first(problems)
        assert manifest is not None
        self.manifest: dict[str, Any] = manifest
        self.arrays: dict[str, np.ndarray] = {}
        for name in (
            *ondisk.REQUIRED_ARRAYS,
            *[n for n in manifest["arrays"] if n in ondisk.OPTIONAL_ARRAYS],
        ):
            array, problems = ondisk.open_motion_array(self.path, name, manifest)
            _raise_first(problems)
            self.arrays[name] = array  # type: ignore[assignment]
        self.num_frames = len(self.arrays["speaker_motion"])
        for name, array in self.arrays.items():
            if len(array) != self.num_frames:
                raise DataValidationError(
                    str(ondisk.array_file(self.path, name, manifest)), name,
                    f"{self.num_frames} frames (as many as speaker_motion)", f"{len(array)} frames", ondisk.RECREATE_HINT,
                )  # fmt: skip
        index, ids, problems = ondisk.open_index(self.path, manifest)
        _raise_first(problems)
        self.index: np.ndarray = index  # type: ignore[assignment]
        self.clip_id_array: np.ndarray = ids  # type: ignore[assignment]
        self._lines = self._open_lines()
        self._rows_by_split: dict[str, np.ndarray] = {}
        self._row_of: dict[str, int] | None = None
        self._tokenizer: ActionTokenizer | bool | None = False

    def _open_lines(self) -> np.ndarray:
        file = self.path / ondisk.CLIP_LINES
        if not file.exists():
            raise DataValidationError(
                str(file), "clip entries", "one JSON line per clip", "no file", ondisk.RECREATE_HINT
            )
        expected = (self.manifest.get("files") or {}).get(ondisk.CLIP_LINES, {}).get("bytes")
        size = file.stat().st_size
        if expected is not None and size != expected:
            raise DataValidationError(
                str(file),
                "clip entries",
                f"{expected} bytes (manifest.json)",
                f"{size} bytes",
                ondisk.RECREATE_HINT,
            )
        return np.memmap(file, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)

    # Pickling a memory map would copy the whole array; a dataset pickles as its path and reopens.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"DyadicDataset({str(self.path)!r}, clips={len(self)}, splits={list(self.splits)})"

    # Public names other code relies on (DESIGN.md).
    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.manifest["splits"])

    def split(self, name: str) -> ClipSequence:
        if name not in self.manifest["splits"]:
            raise KeyError(f"{self.path}: no split {name!r}; the dataset has splits {list(self.splits)}")
        if name not in self._rows_by_split:
            code = self.manifest["splits"].index(name)
            self._rows_by_split[name] = np.flatnonzero(np.asarray(self.index[:, ondisk.SPLIT]) == code)
        return ClipSequence(self, self._rows_by_split[name])

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    @property
    def expression_basis(self) -> str:
        return str(self.manifest["expression_basis"])

    @property
    def feature_dim(self) -> int | None:
        return int(self.arrays["speaker_features"].shape[1]) if "speaker_features" in self.arrays else None

    @property
    def has_affect(self) -> bool:
        return "listener_affect" in self.arrays

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.name)

    @property
    def clip_ids(self) -> list[str]:
        return self.clip_id_array.tolist()

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[Clip]:
        return (self.clip_at(row) for row in range(len(self)))

    def clip(self, clip_id: str) -> Clip:
        if self._row_of is None:
            self._row_of = {clip_id: row for row, clip_id in enumerate(self.clip_id_array.tolist())}
        if clip_id not in self._row_of:
            raise KeyError(
                f"{self.path}: no clip {clip_id!r} (`dyadic data info {self.path}` lists the splits)"
            )
        return self.clip_at(self._row_of[clip_id])

    def entry(self, row: int) -> dict[str, Any]:
        """The parsed JSON line of clip ``row``: ids, split, words, meta."""
        if not 0 <= row < len(self):
            raise IndexError(f"{self.path}: clip row {row} out of range; the dataset has {len(self)} clips")
        _, _, _, _, start, size = self.index[row].tolist()
        where = f"{self.path / ondisk.CLIP_LINES} line {row + 1}"
        if start < 0 or size <= 0 or start + size > len(self._lines):
            raise DataValidationError(
                where, "line range", f"a byte range within {len(self._lines)} bytes", f"[{start}, {start + size})",
                ondisk.RECREATE_HINT,
            )  # fmt: skip
        try:
            entry = json.loads(self._lines[start : start + size].tobytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataValidationError(
                where, "clip entry", "one JSON object", f"unreadable ({e})", ondisk.RECREATE_HINT
            ) from None
        if not isinstance(entry, dict) or entry.get("clip_id") != self.clip_id_array[row]:
            raise DataValidationError(
                where, "clip_id", f"{str(self.clip_id_array[row])!r} (as in {ondisk.CLIP_IDS})",
                repr(entry.get("clip_id") if isinstance(entry, dict) else entry), ondisk.RECREATE_HINT,
            )  # fmt: skip
        return entry

    def clip_at(self, row: int) -> Clip:
        """The clip stored at ``row`` (0 <= row < len(dataset)), its arrays memory-mapped."""
        entry = self.entry(row)
        offset, length = self.index[row, ondisk.OFFSET], self.index[row, ondisk.LENGTH]
        if length <= 0 or offset < 0 or offset + length > self.num_frames:
            raise DataValidationError(
                f"{self.path / ondisk.CLIP_INDEX} (clip {entry['clip_id']!r})", "offset/length",
                f"a range within the {self.num_frames} stored frames", f"[{offset}, {offset + length})",
                ondisk.RECREATE_HINT,
            )  # fmt: skip
        sl = slice(int(offset), int(offset + length))
        optional = {
            name: (self.arrays[name][sl] if name in self.arrays else None) for name in ondisk.OPTIONAL_ARRAYS
        }
        return Clip(
            clip_id=entry["clip_id"], fps=float(entry.get("fps", self.fps)),
            speaker_motion=self.arrays["speaker_motion"][sl], listener_motion=self.arrays["listener_motion"][sl],
            speaker_words=tuple(Word(float(s), float(e), str(w)) for s, e, w in entry.get("words", [])),
            speaker_id=entry.get("speaker_id", ""), listener_id=entry.get("listener_id", ""),
            source=entry.get("source", ""), meta=entry.get("meta", {}), **optional,
        )  # fmt: skip

    def tokenizer(self) -> ActionTokenizer | None:
        """The action tokenizer saved with the dataset (fitted on its train split), or None."""
        if self._tokenizer is False:
            from dyadic_env.tokenizer import ActionTokenizer

            path = self.path / ondisk.TOKENIZER
            self._tokenizer = ActionTokenizer.load(path) if path.exists() else None
        return self._tokenizer  # type: ignore[return-value]

    def summary(self) -> dict[str, Any]:
        """Counts and settings of the dataset, as plain JSON-ready values."""
        index = np.asarray(self.index)
        lengths = index[:, ondisk.LENGTH]
        per_split = np.bincount(index[:, ondisk.SPLIT], minlength=len(self.splits))
        return {
            "path": str(self.path), "name": self.name, "schema_version": self.manifest["schema_version"],
            "fps": self.fps, "expression_basis": self.expression_basis, "feature_dim": self.feature_dim,
            "has_affect": self.has_affect, "clips": len(self),
            "splits": {s: int(per_split[i]) for i, s in enumerate(self.splits)},
            "frames": int(lengths.sum()), "seconds": float(lengths.sum() / self.fps),
            "clip_frames_min_mean_max": [int(lengths.min()), float(lengths.mean()), int(lengths.max())],
            "words": int(index[:, ondisk.NUM_WORDS].sum()),
            "arrays": {name: list(array.shape) for name, array in self.arrays.items()},
            "tokenizer": self.manifest.get("tokenizer"), "source": self.manifest.get("import"),
        }  # fmt: skip


def _raise_first(problems: list[DataValidationError]) -> None:
    if problems:
        raise problems[0]


def load_dataset(path_or_spec: str | os.PathLike | DyadicDataset) -> DyadicDataset:
    """Open a dataset directory, or ``"synthetic:PRESET"`` (generated once into the cache, then reused)."""
    if isinstance(path_or_spec, DyadicDataset):
        return path_or_spec
    spec = str(path_or_spec)
    if spec.startswith("synthetic:"):
        from dyadic_env.synthetic import cached_preset

        return DyadicDataset(cached_preset(spec.split(":", 1)[1]))
    return DyadicDataset(spec)


def write_dataset(
    out: str | os.PathLike,
    clips: Iterable[tuple[str, Clip]],
    *,
    fps: float,
    expression_basis: str,
    name: str = "",
    extra_manifest: dict[str, Any] | None = None,
    fit_tokenizer: bool = True,
) -> Path:
    """Write ``(split, clip)`` pairs as a dataset directory, validating each clip; returns ``out``.

    Clips stream to disk one at a time, so the input may be a generator larger than memory. With
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
        manifest = {
            "format": ondisk.FORMAT_NAME, "schema_version": ondisk.SCHEMA_VERSION, "name": name or out.name,
            "fps": float(fps), "expression_basis": expression_basis, "frame_dim": FRAME_DIM,
            "feature_dim": writer.feature_dim, "splits": splits, "num_clips": len(writer.ids),
            "num_frames": writer.frames, "arrays": writer.array_specs(),
            "files": {ondisk.CLIP_LINES: {"bytes": writer.line_bytes}}, "tokenizer": tokenizer_info,
            **(extra_manifest or {}),
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
    "num_frames", "arrays", "files", "tokenizer",
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

    def add(self, item: object, item_number: int) -> None:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Clip)):
            raise TypeError(
                f"write_dataset: item {item_number}: expected a (split, Clip) pair, found {item!r:.80}"
            )
        split, clip = item
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
