"""A plug-in agent for `dyadic eval --agent tests.experiments.plugin_agent:make` (see test_eval_seeds)."""

from __future__ import annotations

import numpy as np


class ConstantToken:
    def __init__(self, token: int) -> None:
        self.token = token

    def reset(self, *, seed=None) -> None:
        return None

    def act(self, observation) -> np.ndarray:
        return np.full(56, self.token, np.int64)


def make(dataset, seed, tokenizer):
    return ConstantToken(tokenizer.num_bins // 2)
