"""The speaker's words as text tokens: a word-level tokenizer trained offline, or the backbone's own."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from dyadic_env.envs.listener import normalize_word as _env_normalize

PAD_TOKEN, UNK_TOKEN = "[PAD]", "[UNK]"


def normalize_word(word: str) -> str:
    """Lowercase and keep the characters of the environment's ``words`` text, so training and env agree."""
    return _env_normalize(word)


def split_words(text: str) -> list[str]:
    """Normalised words of a space-joined text (empty words dropped)."""
    return [w for w in (normalize_word(t) for t in text.split()) if w]


def train_word_tokenizer(
    words: Iterable[str], *, min_frequency: int = 1, max_vocab: int = 30000
) -> PreTrainedTokenizerFast:
    """A word-level ``PreTrainedTokenizerFast`` over the given words, with ``[PAD]`` = 0 and ``[UNK]`` = 1.

    Used when the backbone has no pretrained tokenizer. Words are normalised with :func:`normalize_word`;
    the most frequent ``max_vocab`` words seen at least ``min_frequency`` times get an id.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    counts = Counter(w for w in (normalize_word(x) for x in words) if w)
    kept = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_frequency]
    vocab = {PAD_TOKEN: 0, UNK_TOKEN: 1}
    for word in kept[: max(0, max_vocab - 2)]:
        vocab[word] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD_TOKEN, unk_token=UNK_TOKEN)


class WordEncoder:
    """Turns words into text-token ids with a cache, for per-frame placement.

    Args:
        tokenizer: any Hugging Face tokenizer (word-level or the backbone's subword one).
        max_tokens_per_frame: ids kept per frame (the rest dropped); bounds the sequence length.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_tokens_per_frame: int = 16) -> None:
        self.tokenizer = tokenizer
        self.max_tokens_per_frame = max_tokens_per_frame
        self._cache: dict[str, list[int]] = {}

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else 0)

    def word_ids(self, word: str) -> list[int]:
        word = normalize_word(word)
        if not word:
            return []
        if word not in self._cache:
            # A leading space makes subword tokenizers (SentencePiece, byte-level BPE) see a word start.
            self._cache[word] = list(self.tokenizer(" " + word, add_special_tokens=False)["input_ids"])
        return self._cache[word]

    def ids(self, words: Sequence[str]) -> list[int]:
        out: list[int] = []
        for w in words:
            out.extend(self.word_ids(w))
        return out[: self.max_tokens_per_frame]

    def frame_ids(
        self, words: Sequence[tuple[float, float, str]], num_frames: int, fps: float
    ) -> list[list[int]]:
        """Ids of the words heard in each frame: a word belongs to the frame in which it ends.

        This is the environment's rule (``Clip.words_until``): a word ending at ``end`` seconds is heard by the
        end of frame ``ceil(end * fps) - 1``; words ending after the clip are dropped.
        """
        per_frame: list[list[str]] = [[] for _ in range(num_frames)]
        for _, end, text in words:
            frame = max(0, math.ceil(end * fps - 1e-6) - 1)
            if frame < num_frames:
                per_frame[frame].append(text)
        return [self.ids(ws) for ws in per_frame]


def new_words(previous: Sequence[str], current: Sequence[str]) -> list[str]:
    """Words of ``current`` that were not in ``previous``, for sliding windows of recent words.

    The words still in the window are a suffix of ``previous`` and a prefix of ``current``; the longest such
    overlap is assumed (a repeated word right at the boundary is read as already heard).
    """
    for k in range(min(len(previous), len(current)), -1, -1):
        if k == 0 or list(previous[len(previous) - k :]) == list(current[:k]):
            return list(current[k:])
    return list(current)
