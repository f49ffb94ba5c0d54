"""Appropriate sets from speaker-behaviour neighbours, as REACT 2023 built them for real recordings.

Two clips whose speakers behave alike can swap listeners: each recorded listener is an appropriate answer
to the other speaker too. Within each split, every pair of clips gets a speaker distance; a clip's set is
the recorded listeners of every clip (itself included) within ``threshold`` of it.

The distance is DTW (dtaidistance) between the two speakers' whole 56-value frames, divided by the square
root of the longer clip's frames: a root-mean-square frame distance along the best alignment, so clips are
not farther apart for being long. A threshold can be given, or taken as a ``quantile`` of the distances
between different clips of the split (the share of pairs that count as neighbours).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dyadic_env.data.storage import DyadicDataset

DEFAULT_QUANTILE = 0.05


@dataclass
class NeighbourSets:
    """The sets (``{clip_id: [clip ids whose listeners fit]}``) and how they were made."""

    sets: dict[str, list[str]]
    thresholds: dict[str, float]
    quantile: float | None
    sizes: dict[str, dict[str, float]] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """What goes into ``manifest["appropriate"]["params"]``."""
        return {
            "distance": "speaker DTW / sqrt(longer clip frames)", "thresholds": self.thresholds,
            "quantile": self.quantile, "sizes": self.sizes,
        }  # fmt: skip


def speaker_distances(speakers: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, N)`` normalised DTW distances between ``(T_i, 56)`` speaker tracks (0 on the diagonal)."""
    try:
        from dtaidistance import dtw_ndim
    except ImportError as e:
        raise ImportError(
            f"neighbour sets need dtaidistance ({e}); `pip install 'dyadic-listener[metrics]'`"
        ) from None
    series = [np.ascontiguousarray(s, dtype=np.float64) for s in speakers]
    matrix = np.asarray(dtw_ndim.distance_matrix_fast(series, compact=False, parallel=False), np.float64)
    matrix = np.where(np.isfinite(matrix), matrix, matrix.T)  # the library fills the upper triangle only
    np.fill_diagonal(matrix, 0.0)
    lengths = np.array([len(s) for s in series], np.float64)
    return matrix / np.sqrt(np.maximum(lengths[:, None], lengths[None]))


def neighbour_sets(
    dataset: DyadicDataset, splits: Sequence[str] = ("val", "test"), *, threshold: float | None = None,
    quantile: float | None = None,
) -> NeighbourSets:  # fmt: skip
    """Sets for every clip of ``splits``: recorded listeners of the same split's clips within the threshold.

    Give ``threshold`` (a distance) or ``quantile`` (in (0, 1]; default 0.05 when neither is given).
    """
    if threshold is not None and quantile is not None:
        raise ValueError("give a threshold or a quantile, not both")
    if threshold is not None and not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold: expected a distance >= 0, found {threshold}")
    if threshold is None:
        quantile = DEFAULT_QUANTILE if quantile is None else quantile
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile: expected a share of clip pairs in (0, 1], found {quantile}")
    missing = [s for s in splits if s not in dataset.splits]
    if missing:
        raise KeyError(
            f"{dataset.path}: no split {missing[0]!r}; the dataset has splits {list(dataset.splits)}"
        )
    result = NeighbourSets({}, {}, quantile)
    for split in splits:
        clips = dataset.split(split)
        ids = clips.clip_ids
        if len(ids) < 2:
            raise ValueError(
                f"{dataset.path}: split {split!r} has {len(ids)} clip(s); neighbours need at least 2"
            )
        distances = speaker_distances([np.asarray(c.speaker_motion) for c in clips])
        pairs = distances[~np.eye(len(ids), dtype=bool)]
        cut = (
            threshold
            if threshold is not None
            else float(np.quantile(pairs, float(quantile or DEFAULT_QUANTILE)))
        )
        near = distances <= cut
        result.thresholds[split] = round(float(cut), 6)
        for i, clip_id in enumerate(ids):
            result.sets[clip_id] = [ids[j] for j in np.flatnonzero(near[i])]
        sizes = near.sum(axis=1)
        result.sizes[split] = {
            "min": int(sizes.min()), "mean": round(float(sizes.mean()), 3), "max": int(sizes.max()),
            "only_itself": int((sizes == 1).sum()),
        }  # fmt: skip
    return result
