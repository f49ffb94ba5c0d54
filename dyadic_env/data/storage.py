"""Reading dataset directories (the layout is described in :mod:`dyadic_env.data.ondisk`; writing is in
:mod:`dyadic_env.data.writer`).

Opening a dataset reads the manifest and the ``.npy`` headers only: arrays, the clip index and the clip
ids are memory-mapped, and a clip's JSON line is parsed when the clip is read. A clip's arrays are
read-only views into the maps; copy them before modifying.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from dyadic_env.data import ondisk
from dyadic_env.data.appropriate import AppropriateSets, open_sets, set_entries, set_listeners
from dyadic_env.data.clip import Clip, Word
from dyadic_env.data.errors import DataValidationError
from dyadic_env.data.specs import resolve_spec
from dyadic_env.data.validation import _finite_problem

if TYPE_CHECKING:
    from dyadic_env.tokenizer import ActionTokenizer


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
        self.appropriate: AppropriateSets | None = None
        """Appropriate-reaction sets (schema 2, :mod:`dyadic_env.data.appropriate`), None when there are none."""
        self.appropriate, problems = open_sets(
            self.path, manifest, len(self.index), np.asarray(self.index[:, ondisk.LENGTH])
        )
        _raise_first(problems)
        self._lines = self._open_lines()
        self._finite = np.zeros(len(self.index), bool)  # clips whose arrays were read and found finite
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
        return self.clip_at(self.row_of(clip_id))

    def row_of(self, clip_id: str) -> int:
        """The row of clip ``clip_id`` (for :meth:`clip_at` and :meth:`appropriate_listeners`)."""
        if self._row_of is None:
            self._row_of = {clip_id: row for row, clip_id in enumerate(self.clip_id_array.tolist())}
        if clip_id not in self._row_of:
            raise KeyError(
                f"{self.path}: no clip {clip_id!r} (`dyadic data info {self.path}` lists the splits)"
            )
        return self._row_of[clip_id]

    @property
    def has_appropriate(self) -> bool:
        return self.appropriate is not None

    def appropriate_listeners(self, row: int) -> list[np.ndarray]:
        """The listener reactions appropriate to clip ``row``'s speaker, read-only ``(T_i, 56)`` views.

        Empty when the dataset or the clip has no set. Stored reactions are as long as the clip; recorded
        listeners of other clips keep their own length.
        """
        if self.appropriate is None:
            return []
        offsets = np.asarray(self.index[:, ondisk.OFFSET])
        return set_listeners(self.appropriate, row, self.arrays["listener_motion"], offsets)

    def appropriate_entries(self, row: int) -> list[np.ndarray | str]:
        """Clip ``row``'s set as :func:`~dyadic_env.data.write_dataset` takes it (stored arrays, and the clip ids
        of recorded listeners): a copy of the dataset yields ``(split, clip, dataset.appropriate_entries(row))``."""
        return [] if self.appropriate is None else set_entries(self.appropriate, row, self.clip_id_array)

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
        if not self._finite[row]:
            self._check_finite(entry["clip_id"], sl)
            self._finite[row] = True
        return Clip(
            clip_id=entry["clip_id"], fps=float(entry.get("fps", self.fps)),
            speaker_motion=self.arrays["speaker_motion"][sl], listener_motion=self.arrays["listener_motion"][sl],
            speaker_words=tuple(Word(float(s), float(e), str(w)) for s, e, w in entry.get("words", [])),
            speaker_id=entry.get("speaker_id", ""), listener_id=entry.get("listener_id", ""),
            source=entry.get("source", ""), meta=entry.get("meta", {}), **optional,
        )  # fmt: skip

    def _check_finite(self, clip_id: str, frames: slice) -> None:
        """NaN or inf in a clip is an error when the clip is first read: it would turn the env's rewards and
        every metric into NaN far from its cause. Each clip is checked once per opened dataset."""
        for name, array in self.arrays.items():
            problem = _finite_problem(
                np.asarray(array[frames]), source=str(ondisk.array_file(self.path, name, self.manifest)),
                field=f"{name} of clip {clip_id!r}", frame_base=0,
            )  # fmt: skip
            if problem:
                raise DataValidationError(
                    problem.file, problem.field, problem.expected, problem.found + " (frame within the clip)",
                    "Fix or drop the clip and write the dataset again; `dyadic data validate DATASET` lists "
                    "every problem.",
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
            "appropriate": self.manifest.get("appropriate"),
        }  # fmt: skip


def _raise_first(problems: list[DataValidationError]) -> None:
    if problems:
        raise problems[0]


def load_dataset(path_or_spec: str | os.PathLike | DyadicDataset) -> DyadicDataset:
    """Open a dataset directory, or a spec ``SCHEME:NAME`` of a registered scheme
    (:func:`dyadic_env.data.specs.register_scheme`; ``synthetic:PRESET`` generates a preset once into the
    cache, then reuses it)."""
    if isinstance(path_or_spec, DyadicDataset):
        return path_or_spec
    return DyadicDataset(resolve_spec(str(path_or_spec)))
