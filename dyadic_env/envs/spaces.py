"""The listener env's observation space: the same for every split and clip of every dataset of a width.

A space that depended on the data (e.g. ``step`` bounded by the split's longest clip) would make a policy
saved on one split refuse another (Stable-Baselines3 compares spaces on ``load``), so every bound here is
a constant: ``step`` is bounded by :data:`MAX_CLIP_FRAMES`, ``phase`` by 1.

:class:`WordsText` is Gymnasium's ``Text`` space whose shared-memory reads stay live. Gymnasium's
``AsyncVectorEnv`` reads its shared observation buffer once, at construction: numeric arrays come back as
views that the workers keep writing into, but a ``Text`` space comes back as a tuple of strings decoded
then, so ``words`` would never change. Reading a :class:`WordsText` returns :class:`SharedTexts`, a view that
decodes the buffer when indexed (and a plain tuple when copied, as AsyncVectorEnv does by default).
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory

from dyadic_env.expression_basis import FRAME_DIM

# Characters the "words" Text space holds; words are lowercased and stripped of anything else.
WORD_CHARSET = frozenset(string.ascii_lowercase + string.digits + " '-")
# The upper bound of the ``step`` observation, whatever the data: 1,000,000 frames is 11.1 hours at 25 fps.
# A longer clip is refused when the env is made (split it into shorter clips).
MAX_CLIP_FRAMES = 1_000_000


class WordsText(spaces.Text):
    """Gymnasium's ``Text`` space, read live from an ``AsyncVectorEnv``'s shared memory (see the module)."""


class SharedTexts(Sequence[str]):
    """The strings of a shared-memory ``Text`` buffer ``(n, max_length)`` int32, decoded when read."""

    def __init__(self, space: spaces.Text, buffer: Any, n: int) -> None:
        self._space, self._n = space, n
        self._codes = np.frombuffer(buffer.get_obj(), dtype=np.int32).reshape(n, space.max_length)
        self._chars = np.array([*space.character_list, ""], dtype=object)  # the last: Gymnasium's padding

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(self._n)))
        codes = np.minimum(self._codes[i], len(self._chars) - 1)
        return "".join(self._chars[codes])

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(self._n))

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, SharedTexts)) else other)

    __hash__ = None  # type: ignore[assignment]  # mutable: it changes with the buffer

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(WordsText)
def _read_words(space: WordsText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(space, shared_memory, n)


def listener_observation_space(
    context_frames: int, max_words_chars: int, feature_dim: int | None
) -> spaces.Dict:
    """The env's observation space (see :class:`~dyadic_env.envs.listener.ListenerEnv`): it depends on the
    env's settings and the dataset's feature width only, never on the split or its clips."""
    k = context_frames
    obs: dict[str, spaces.Space] = {
        "speaker_motion": spaces.Box(-np.inf, np.inf, (k, FRAME_DIM), np.float32),
        "listener_motion": spaces.Box(-np.inf, np.inf, (k, FRAME_DIM), np.float32),
        "mask": spaces.MultiBinary(k),
        "words": WordsText(max_length=max_words_chars, min_length=0, charset=WORD_CHARSET),
        "step": spaces.Box(0, MAX_CLIP_FRAMES, (1,), np.int64),
        "phase": spaces.Box(0.0, 1.0, (1,), np.float32),
    }
    if feature_dim:
        obs["speaker_features"] = spaces.Box(-np.inf, np.inf, (k, feature_dim), np.float32)
    return spaces.Dict(obs)


def check_clip_lengths(lengths: np.ndarray, where: str) -> None:
    """Refuse clips longer than :data:`MAX_CLIP_FRAMES` (the fixed bound of ``step``)."""
    longest = int(np.max(lengths)) if len(lengths) else 0
    if longest > MAX_CLIP_FRAMES:
        raise ValueError(
            f"{where}: a clip of {longest} frames is longer than the env's fixed step bound MAX_CLIP_FRAMES = "
            f"{MAX_CLIP_FRAMES}; split it into shorter clips"
        )
