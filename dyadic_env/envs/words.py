"""The ``words`` observation as numbers (Stable-Baselines3 and MLPs cannot take ``Text``): a vocabulary of a
dataset's words, their ids, or a bag of words. The wrappers in :mod:`dyadic_env.wrappers.words` and the SB3
adapter (:mod:`dyadic_env.envs.sb3`) encode with these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

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
