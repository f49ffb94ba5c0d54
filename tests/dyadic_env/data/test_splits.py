"""Split assignment keeps groups together and follows the seed."""

from __future__ import annotations

from collections import Counter

import pytest

from dyadic_env.data import assign_splits


def test_groups_stay_in_one_split_and_fractions_hold():
    groups = [f"conv{i // 3}" for i in range(300)]  # 100 conversations, 3 clips each
    splits = assign_splits(groups, seed=1)
    split_of_group = {}
    for group, split in zip(groups, splits):
        assert split_of_group.setdefault(group, split) == split
    assert Counter(split_of_group.values()) == {"train": 80, "val": 10, "test": 10}


def test_seed_decides_the_assignment():
    groups = [f"g{i}" for i in range(50)]
    assert assign_splits(groups, seed=3) == assign_splits(groups, seed=3)
    assert assign_splits(groups, seed=3) != assign_splits(groups, seed=4)
    # Order of the items does not change which split a group gets.
    assert dict(zip(groups, assign_splits(groups, seed=3))) == dict(
        zip(groups[::-1], assign_splits(groups[::-1], seed=3))
    )


def test_custom_fractions_and_their_validation():
    splits = assign_splits([str(i) for i in range(10)], {"train": 0.5, "test": 0.5}, seed=0)
    assert Counter(splits) == {"train": 5, "test": 5}
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(["a"], {"train": 0.5, "test": 0.2})
    with pytest.raises(ValueError, match="non-negative"):
        assign_splits(["a"], {"train": 1.5, "test": -0.5})
