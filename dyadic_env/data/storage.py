"""The on-disk dataset format: a JSON manifest, a JSON-lines clip index and memory-mapped arrays.

Layout of a dataset directory::

    manifest.json        schema version, fps, expression basis, feature dim, splits, array table
    clips.jsonl          one line per clip: id, split, offset and length into the arrays, ids, words
    speaker_motion.npy   (F, 56) float32, all clips' frames end to end
    listener_motion.npy  (F, 56) float32
    speaker_features.npy (F, d) float32      optional
    speaker_affect.npy   (F, 2) float32      optional (valence, arousal)
    listener_affect.npy  (F, 2) float32      optional
    tokenizer.json       the fitted ActionTokenizer, optional

Arrays are opened with ``mmap_mode="r"``, so opening a dataset reads headers only; a clip's arrays are
views into the maps, read when touched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from dyadic_env.data.clip import Clip, Word
from dyadic_env.data.errors import DataValidationError
from dyadic_env.expression_basis import EXPRESSION_BASES, FRAME_DIM

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CLIP_INDEX = "clips.jsonl"
REQUIRED_ARRAYS = ("speaker_motion", "listener_motion")
OPTIONAL_ARRAYS = ("speaker_features", "speaker_affect", "listener_affect")
ARRAY_WIDTH = {"speaker_motion": FRAME_DIM, "listener_motion": FRAME_DIM, "speaker_affect": 2, "listener_affect": 2}


class ClipSequence(Sequence[Clip]):
    """The clips of one split, built lazily from the memory maps."""

    def __init__(self, dataset: DyadicDataset, rows: list[int]) -> None:
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
        return self._dataset.clip_at(self._rows[i])

    def __iter__(self) -> Iterator[Clip]:
        return (self._dataset.clip_at(r) for r in self._rows)

    @property
    def clip_ids(self) -> list[str]:
        return [self._dataset.entries[r]["clip_id"] for r in self._rows]


class DyadicDataset:
    """A dataset directory opened for reading. Use :func:`load_dataset` to open one."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = _read_manifest(self.path)
        self.entries = _read_clip_index(self.path / CLIP_INDEX)
        self.arrays = {name: _open_array(self.path, name, spec) for name, spec in self.manifest["arrays"].items()}
        self._row_of = {e["clip_id"]: i for i, e in enumerate(self.entries)}
        self._rows_by_split: dict[str, list[int]] = {}
        for row, entry in enumerate(self.entries):
            self._rows_by_split.setdefault(entry["split"], []).append(row)
        _check_offsets(self)

    # Public names other code relies on (DESIGN.md).
    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.manifest["splits"])

    def split(self, name: str) -> ClipSequence:
        if name not in self.manifest["splits"]:
            raise KeyError(f"{self.path}: no split {name!r}; the dataset has splits {list(self.splits)}")
        return ClipSequence(self, self._rows_by_split.get(name, []))

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    @property
    def expression_basis(self) -> str:
        return str(self.manifest["expression_basis"])

    @property
    def feature_dim(self) -> int | None:
        return self.manifest.get("feature_dim")

    @property
    def has_affect(self) -> bool:
        return "listener_affect" in self.arrays

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    def __len__(self) -> int:
        return len(self.entries)

    def clip(self, clip_id: str) -> Clip:
        if clip_id not in self._row_of:
            raise KeyError(f"{self.path}: no clip {clip_id!r} (run `dyadic data info {self.path}` to list splits)")
        return self.clip_at(self._row_of[clip_id])

    def clip_at(self, row: int) -> Clip:
        entry = self.entries[row]
        sl = slice(entry["offset"], entry["offset"] + entry["length"])
        opt = {name: (self.arrays[name][sl] if name in self.arrays else None) for name in OPTIONAL_ARRAYS}
        return Clip(
            clip_id=entry["clip_id"], fps=float(entry.get("fps", self.fps)),
            speaker_motion=self.arrays["speaker_motion"][sl], listener_motion=self.arrays["listener_motion"][sl],
            speaker_words=tuple(Word(float(s), float(e), str(w)) for s, e, w in entry.get("words", [])),
            speaker_id=entry.get("speaker_id", ""), listener_id=entry.get("listener_id", ""),
            source=entry.get("source", ""), meta=entry.get("meta", {}), **opt,
        )  # fmt: skip

    def tokenizer(self):  # -> ActionTokenizer | None; imported lazily to keep layers simple
        """The action tokenizer saved with the dataset (fitted on its train split), or None."""
        from dyadic_env.tokenizer import ActionTokenizer

        path = self.path / "tokenizer.json"
        return ActionTokenizer.load(path) if path.exists() else None

    def summary(self) -> dict[str, Any]:
        lengths = np.array([e["length"] for e in self.entries]) if self.entries else np.zeros(1)
        return {
            "path": str(self.path), "name": self.name, "schema_version": self.manifest["schema_version"],
            "fps": self.fps, "expression_basis": self.expression_basis, "feature_dim": self.feature_dim,
            "has_affect": self.has_affect, "clips": len(self),
            "splits": {s: len(self._rows_by_split.get(s, [])) for s in self.splits},
            "frames": int(lengths.sum()) if self.entries else 0,
            "seconds": float(lengths.sum() / self.fps) if self.entries else 0.0,
            "clip_frames_min_mean_max": [int(lengths.min()), float(lengths.mean()), int(lengths.max())],
            "words": int(sum(len(e.get("words", [])) for e in self.entries)),
        }  # fmt: skip


def load_dataset(path_or_spec: str | os.PathLike) -> DyadicDataset:
    """Open a dataset directory, or ``"synthetic:PRESET"`` (generated once into the cache, then reused)."""
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
) -> Path:
    """Write ``(split, clip)`` pairs as a dataset directory; validates each clip first.

    Written to a temporary sibling directory and renamed into place, so a crash never leaves a
    half-written dataset under ``out``.
    """
    from dyadic_env.data.validation import validate_clip

    if expression_basis not in EXPRESSION_BASES:
        raise ValueError(f"expression_basis: expected one of {EXPRESSION_BASES}, found {expression_basis!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --out directory or delete it")
    pairs = list(clips)
    if not pairs:
        raise ValueError("write_dataset: no clips given")
    for _, clip in pairs:
        validate_clip(clip, source=f"clip {clip.clip_id!r}")
    present = [n for n in OPTIONAL_ARRAYS if getattr(pairs[0][1], n) is not None]
    for split, clip in pairs:
        for n in OPTIONAL_ARRAYS:
            if (getattr(clip, n) is not None) != (n in present):
                raise DataValidationError(
                    f"clip {clip.clip_id!r}", n, "present in every clip or in none", "mixed presence"
                )
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    arrays_spec = _write_arrays(tmp, pairs, (*REQUIRED_ARRAYS, *present))
    split_names = list(dict.fromkeys(split for split, _ in pairs))
    offset = 0
    with open(tmp / CLIP_INDEX, "w") as f:
        for split, clip in pairs:
            entry = {
                "clip_id": clip.clip_id, "split": split, "offset": offset, "length": clip.num_frames,
                "speaker_id": clip.speaker_id, "listener_id": clip.listener_id, "source": clip.source,
                "words": [[round(w.start, 4), round(w.end, 4), w.text] for w in clip.speaker_words],
            }  # fmt: skip
            if clip.fps != fps:
                entry["fps"] = clip.fps
            if clip.meta:
                entry["meta"] = clip.meta
            f.write(json.dumps(entry) + "\n")
            offset += clip.num_frames
    feature_dim = int(pairs[0][1].speaker_features.shape[1]) if "speaker_features" in present else None
    manifest = {
        "format": "dyadic-dataset", "schema_version": SCHEMA_VERSION, "name": name or out.name,
        "fps": float(fps), "expression_basis": expression_basis, "frame_dim": FRAME_DIM,
        "feature_dim": feature_dim, "splits": split_names, "num_clips": len(pairs), "num_frames": offset,
        "arrays": arrays_spec, **(extra_manifest or {}),
    }  # fmt: skip
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    out.mkdir(parents=True, exist_ok=True)
    out.rmdir()
    tmp.rename(out)
    return out


def _write_arrays(tmp: Path, pairs: list[tuple[str, Clip]], names: Sequence[str]) -> dict[str, dict]:
    total = sum(clip.num_frames for _, clip in pairs)
    spec = {}
    for name in names:
        width = getattr(pairs[0][1], name).shape[1]
        target = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.float32, shape=(total, width))
        offset = 0
        for _, clip in pairs:
            target[offset : offset + clip.num_frames] = getattr(clip, name)
            offset += clip.num_frames
        target.flush()
        del target
        spec[name] = {"file": f"{name}.npy", "shape": [total, width], "dtype": "float32"}
    return spec


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: no such dataset directory (make one with `dyadic data synth` or `dyadic data import`)"
        )
    if not file.exists():
        raise DataValidationError(str(file), MANIFEST, "a manifest file", "nothing", "Is this a dataset directory?")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataValidationError(str(file), MANIFEST, "valid JSON", f"unreadable JSON ({e})") from None
    for key in ("schema_version", "fps", "expression_basis", "splits", "arrays"):
        if key not in manifest:
            raise DataValidationError(str(file), key, "a key in the manifest", "missing key")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise DataValidationError(
            str(file), "schema_version", str(SCHEMA_VERSION), repr(manifest["schema_version"]),
            "Re-create the dataset with this version of the toolkit.",
        )  # fmt: skip
    fps = manifest["fps"]
    if not isinstance(fps, (int, float)) or not np.isfinite(fps) or fps <= 0:
        raise DataValidationError(str(file), "fps", "a positive number of frames per second", repr(fps))
    if manifest["expression_basis"] not in EXPRESSION_BASES:
        raise DataValidationError(
            str(file), "expression_basis", f"one of {EXPRESSION_BASES}", repr(manifest["expression_basis"])
        )
    for name in REQUIRED_ARRAYS:
        if name not in manifest["arrays"]:
            raise DataValidationError(str(file), f"arrays.{name}", "an entry for a required array", "missing key")
    return manifest


def _read_clip_index(file: Path) -> list[dict[str, Any]]:
    if not file.exists():
        raise DataValidationError(str(file), CLIP_INDEX, "the clip index file", "no file")
    entries = []
    with open(file) as f:
        for lineno, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataValidationError(
                    f"{file}:{lineno}", "clip entry", "one JSON object per line", f"unreadable JSON ({e})",
                    "The file may be truncated; re-create or re-import the dataset.",
                ) from None  # fmt: skip
            for key in ("clip_id", "split", "offset", "length"):
                if key not in entry:
                    raise DataValidationError(f"{file}:{lineno}", key, "a key of every clip entry", "missing key")
            entries.append(entry)
    return entries


def _open_array(path: Path, name: str, spec: dict[str, Any]) -> np.ndarray:
    file = path / spec.get("file", f"{name}.npy")
    if not file.exists():
        raise DataValidationError(str(file), name, "an array file", "no file")
    try:
        array = np.load(file, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        raise DataValidationError(
            str(file), name, f"a readable .npy of shape {tuple(spec.get('shape', ()))}", f"unreadable file ({e})",
            "The file may be truncated; re-create or re-import the dataset.",
        ) from None  # fmt: skip
    if array.dtype != np.float32:
        raise DataValidationError(str(file), name, "dtype float32", f"dtype {array.dtype}")
    width = ARRAY_WIDTH.get(name)
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        raise DataValidationError(str(file), name, f"shape (frames, {width or 'd'})", f"shape {array.shape}")
    if list(array.shape) != list(spec.get("shape", array.shape)):
        raise DataValidationError(str(file), name, f"shape {tuple(spec['shape'])} (manifest)", f"shape {array.shape}")
    return array


def _check_offsets(dataset: DyadicDataset) -> None:
    total = dataset.arrays["speaker_motion"].shape[0]
    for name, array in dataset.arrays.items():
        if array.shape[0] != total:
            raise DataValidationError(
                str(dataset.path / f"{name}.npy"), name, f"{total} frames like speaker_motion",
                f"{array.shape[0]} frames",
            )  # fmt: skip
    for e in dataset.entries:
        if e["length"] <= 0 or e["offset"] < 0 or e["offset"] + e["length"] > total:
            raise DataValidationError(
                str(dataset.path / CLIP_INDEX), f"{e['clip_id']}.offset/length",
                f"a range within the {total} stored frames", f"[{e['offset']}, {e['offset'] + e['length']})",
            )  # fmt: skip
