"""Shared synthetic data for the synthetic-benchmark tests: generated once per test session, in memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from dyadic_env.data import Clip
from dyadic_env.synthetic import PRESETS, Oracle, generate_clips
from dyadic_env.synthetic.evaluation import oracle_table
from dyadic_env.tokenizer import ActionTokenizer


@dataclass
class SmallBenchmark:
    """The ``small`` preset's clips, a tokenizer fitted on its train listeners, and the oracle table."""

    train: list[Clip]
    test: list[Clip]
    tokenizer: ActionTokenizer
    mean_frame: np.ndarray
    table: dict[str, dict[str, float]]


@pytest.fixture(scope="session")
def tiny_pairs() -> list[tuple[str, Clip]]:
    return generate_clips(PRESETS["tiny"])


@pytest.fixture(scope="session")
def small() -> SmallBenchmark:
    pairs = generate_clips(PRESETS["small"])
    train = [clip for split, clip in pairs if split == "train"]
    test = [clip for split, clip in pairs if split == "test"]
    listeners = np.concatenate([clip.listener_motion for clip in train])
    tokenizer = ActionTokenizer.fit(listeners)
    mean_frame = listeners.mean(axis=0)
    table = oracle_table(test, tokenizer, mean_frame, oracle=Oracle(), seed=0)
    return SmallBenchmark(train, test, tokenizer, mean_frame, table)
