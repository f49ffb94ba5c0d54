"""Pieces every importer shares: the imported-data record and checked array conversion."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    speaker_only: int = 0
    """Clips whose listener is a placeholder (:mod:`~dyadic_env.data.importers.dualtalk`): the tokenizer is then
    fitted on real faces, those clips' speakers included."""


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


DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
# Which splits get a group first when there are fewer groups than splits: a test split makes `dyadic eval`
# (test by default) work on two conversations; val comes last.
SPLIT_PRIORITY = ("train", "test", "val")


def split_groups(
    groups: Sequence[str], fractions: dict[str, float] | None = None, *, seed: int = 0
) -> dict[str, str]:
    """``{group: split}`` for the distinct ``groups`` (conversations), every group in one split.

    Counts follow ``fractions`` by largest remainder, but each split of positive fraction gets at least one
    group while there are groups to go round (train first, then test, then val), so a handful of
    conversations still yields a test split. Which group goes where is a seeded permutation.
    """
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    if (
        not fractions
        or any(f < 0 for f in fractions.values())
        or not np.isclose(sum(fractions.values()), 1.0)
    ):
        raise ValueError(f"split fractions must be non-negative and sum to 1, found {fractions}")
    unique = sorted(set(groups))
    n = len(unique)
    exact = np.array([fractions[s] * n for s in fractions])
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    names = list(fractions)
    order = sorted(
        names, key=lambda s: SPLIT_PRIORITY.index(s) if s in SPLIT_PRIORITY else len(SPLIT_PRIORITY)
    )
    for split in order:  # give each wanted split one group, taken from the largest split that can spare one
        i = names.index(split)
        if counts[i] == 0 and fractions[split] > 0:
            donor = int(np.argmax(counts))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    permutation = np.random.default_rng(seed).permutation(n)
    labels = np.repeat(names, counts)
    return {unique[g]: str(labels[rank]) for rank, g in enumerate(permutation)}


def parse_fractions(text: str) -> dict[str, float]:
    """``"train=0.8,val=0.1,test=0.1"`` as a dict, or a ValueError saying what is wrong."""
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"split fractions: expected NAME=FRACTION[,NAME=FRACTION...], found {text!r}")
    if any(f < 0 for f in out.values()) or not np.isclose(sum(out.values()), 1.0):
        raise ValueError(f"split fractions: expected non-negative fractions that sum to 1, found {text!r}")
    return out
