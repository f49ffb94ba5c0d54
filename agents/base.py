"""The Agent protocol every agent follows, and a base class for agents that decide continuous frames."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.tokenizer import ActionTokenizer

Observation = dict[str, Any]


@runtime_checkable
class Agent(Protocol):
    """A listener policy for ``dyadic_env/Listener-v0``.

    ``reset`` starts an episode (``seed`` reseeds any randomness); ``act`` maps the env's raw observation
    to int64 action tokens ``(56,)``, or ``(k, 56)`` when the env places chunks of ``k`` frames. An agent may
    also define ``meet_listener(listener_id)``: evaluation (``experiments.evaluation.rollout_agents``) calls it
    before each clip; the env itself never says who listens.
    """

    def reset(self, *, seed: int | None = None) -> None: ...

    def act(self, observation: Observation) -> np.ndarray: ...


class FrameAgent(ABC):
    """An agent that decides continuous frames; this base class turns them into tokens.

    Subclasses implement :meth:`act_frames` returning ``(chunk_size, 56)`` frame values.
    """

    def __init__(self, tokenizer: ActionTokenizer, *, chunk_size: int = 1) -> None:
        if tokenizer.dim != FRAME_DIM:
            raise ValueError(
                f"tokenizer: expected one for {FRAME_DIM}-value frames, found dim {tokenizer.dim}"
            )
        if chunk_size < 1:
            raise ValueError(f"chunk_size: expected a positive integer, found {chunk_size}")
        self.tokenizer, self.chunk_size = tokenizer, chunk_size

    def reset(self, *, seed: int | None = None) -> None:
        """Start an episode; stateless agents need nothing."""
        return None

    def act(self, observation: Observation) -> np.ndarray:
        tokens = self.tokenizer.encode(self.act_frames(observation))
        return tokens[0] if self.chunk_size == 1 else tokens

    @abstractmethod
    def act_frames(self, observation: Observation) -> np.ndarray:
        """Frame values ``(chunk_size, 56)`` for the current frame (and the next ones with chunks)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(chunk_size={self.chunk_size})"
