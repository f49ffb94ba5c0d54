"""Continuous FLAME-frame actions for the token-action listener environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ContinuousActions(gym.ActionWrapper):
    """Take frame values (a ``Box``) and hand the env their tokens, through the env's tokenizer.

    The box spans each dimension's tokenizer range ``[low, high]`` (values outside are clipped to the end
    bins), or ``[-1, 1]`` mapped linearly onto it with ``normalized=True`` (what SB3's Gaussian policies want).

    Example:
        >>> import gymnasium as gym, numpy as np, dyadic_env
        >>> from dyadic_env.envs.testing import write_random_walk_dataset
        >>> from dyadic_env.wrappers import ContinuousActions
        >>> import tempfile; path = write_random_walk_dataset(tempfile.mkdtemp() + "/d")
        >>> env = ContinuousActions(gym.make("dyadic_env/Listener-v0", dataset=path), normalized=True)
        >>> env.action_space
        Box(-1.0, 1.0, (56,), float32)
        >>> _ = env.reset(seed=0)
        >>> info = env.step(np.zeros(56, dtype=np.float32))[-1]
        >>> info["decoded_action"].shape
        (56,)
    """

    def __init__(self, env: gym.Env, *, normalized: bool = False) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.MultiDiscrete):
            raise TypeError(f"ContinuousActions wraps a MultiDiscrete token env, found {env.action_space}")
        self.tokenizer = env.unwrapped.tokenizer  # type: ignore[attr-defined]
        shape = env.action_space.shape
        self._low = np.broadcast_to(self.tokenizer.low, shape).astype(np.float64)
        self._high = np.broadcast_to(self.tokenizer.high, shape).astype(np.float64)
        self.normalized = normalized
        if normalized:
            self.action_space = spaces.Box(-1.0, 1.0, shape, np.float32)
        else:
            self.action_space = spaces.Box(
                self._low.astype(np.float32), self._high.astype(np.float32), shape, np.float32
            )

    def action(self, action: Any) -> np.ndarray:
        values = np.asarray(action, dtype=np.float64)
        if values.shape != self.action_space.shape:
            raise ValueError(
                f"action: expected frame values of shape {self.action_space.shape}, found {values.shape}"
            )
        if self.normalized:
            values = self._low + (np.clip(values, -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)
        return self.tokenizer.encode(values)
