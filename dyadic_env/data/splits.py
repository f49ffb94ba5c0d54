"""Deterministic train/val/test assignment that keeps a group (a conversation, a speaker) in one split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def assign_splits(
    groups: Sequence[str], fractions: dict[str, float] | None = None, *, seed: int = 0
) -> list[str]:
    """Return a split name for each item, with all items of one group in the same split.

    Splitting by group (conversation or speaker) keeps test speakers unseen in training.
    """
    fractions = fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
    if any(f < 0 for f in fractions.values()) or not np.isclose(sum(fractions.values()), 1.0):
        raise ValueError(f"split fractions must be non-negative and sum to 1, found {fractions}")
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    bounds = np.cumsum([fractions[name] for name in fractions]) * len(unique)
    split_of = {}
    for rank, idx in enumerate(order):
        k = int(np.searchsorted(bounds, rank, side="right"))
        split_of[unique[idx]] = list(fractions)[min(k, len(fractions) - 1)]
    return [split_of[g] for g in groups]
