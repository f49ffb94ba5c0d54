"""Baseline listeners: the Random and Nearest-Neighbour rows of the paper's Tables I and II, and sanity floors.

- ``random``: uniformly random tokens (the RL sense of a random policy);
- ``random-train``: a random training listener's motion, replayed regardless of the speaker (the paper's
  Random row, after Learning-to-Listen and LM-listener);
- ``nn``: the listener response of the training context closest to the current speaker context (recent
  speaker motion and a bag of the recent words);
- ``neutral``: the tokens of the all-zero (neutral) frame; ``mirror``: copies the speaker's current frame;
- ``mean``: the training listeners' mean frame, whatever the speaker does. A floor for the distribution
  metrics: per-clip FD is mostly the distance between mean levels, which the average listener keeps small.
- ``linear``: a ridge regression from the speaker context (NN's features) to the listener frame: the best
  linear guess of the recorded listener, the score RL on the imitation reward should reach.

REACT's naive baselines under REACT's names: ``meanfr`` (the mean frame, the same agent as ``mean``),
``meanseq`` (the training listeners' mean sequence, frame by frame) and ``mime`` (a copy of the speaker: the
same agent as ``mirror``, which places the speaker's current frame, so the copy has no lag).

Agents whose actions do not depend on ``reset``'s seed say so with ``deterministic = True``: an evaluation
that draws several predictions per clip rolls them out once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from agents.base import Agent, FrameAgent, Observation
from dyadic_env.data import DyadicDataset, load_dataset
from dyadic_env.envs.listener import resolve_tokenizer, words_per_frame
from dyadic_env.envs.words import PAD_ID, UNKNOWN_ID, build_vocabulary
from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.tokenizer import ActionTokenizer


class RandomAgent:
    """Uniformly random tokens from a seeded generator (``reset(seed=...)`` reseeds it)."""

    def __init__(self, *, num_bins: int = 256, chunk_size: int = 1, seed: int | None = None) -> None:
        self.num_bins, self.chunk_size = num_bins, chunk_size
        self._shape = (FRAME_DIM,) if chunk_size == 1 else (chunk_size, FRAME_DIM)
        self.rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: Observation) -> np.ndarray:
        return self.rng.integers(0, self.num_bins, size=self._shape, dtype=np.int64)

    def __repr__(self) -> str:
        return f"RandomAgent(num_bins={self.num_bins}, chunk_size={self.chunk_size})"


class _Playback:
    """Tokens of the dataset's training listeners laid end to end, and where each clip starts and ends."""

    def __init__(self, dataset: DyadicDataset, split: str, tokenizer: ActionTokenizer) -> None:
        clips = dataset.split(split)
        if len(clips) == 0:
            raise ValueError(f"{dataset.path}: split {split!r} has no clips to draw listener responses from")
        lengths = np.array([c.num_frames for c in clips])
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.ends = self.starts + lengths
        # uint8 tokens keep a large training set small; widened when acted.
        dtype = np.uint8 if tokenizer.num_bins <= 256 else np.int64
        self.tokens = np.concatenate([tokenizer.encode(c.listener_motion).astype(dtype) for c in clips])

    def frames(self, start: int, end: int, count: int) -> np.ndarray:
        """``count`` token rows from ``start``, repeating the clip's last row past ``end``."""
        rows = np.minimum(np.arange(start, start + count), end - 1)
        return self.tokens[rows].astype(np.int64)


class RandomTrainAgent:
    """Replays a random training listener (random clip, random start) whatever the speaker does.

    Args:
        dataset: the dataset whose ``split`` supplies the listeners.
        seed: seeds the choice of clip and start; ``reset(seed=...)`` reseeds.
    """

    def __init__(
        self, dataset: DyadicDataset, *, split: str = "train", tokenizer: ActionTokenizer | None = None,
        chunk_size: int = 1, seed: int | None = None,
    ) -> None:  # fmt: skip
        self.chunk_size = chunk_size
        self._playback = _Playback(dataset, split, resolve_tokenizer(tokenizer, dataset))
        self.rng = np.random.default_rng(seed)
        self._pos, self._end = 0, 0

    def reset(self, *, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._pos, self._end = 0, 0

    def act(self, observation: Observation) -> np.ndarray:
        if self._pos >= self._end:  # start, or the replayed clip ran out: draw another
            clip = int(self.rng.integers(len(self._playback.starts)))
            start, self._end = int(self._playback.starts[clip]), int(self._playback.ends[clip])
            self._pos = start + int(self.rng.integers(self._end - start))
        tokens = self._playback.frames(self._pos, self._end, self.chunk_size)
        self._pos += self.chunk_size
        return tokens[0] if self.chunk_size == 1 else tokens


class NeutralAgent(FrameAgent):
    """Always the all-zero frame (the neutral face), tokenized."""

    deterministic = True

    def act_frames(self, observation: Observation) -> np.ndarray:
        return np.zeros((self.chunk_size, FRAME_DIM))

    def act(self, observation: Observation) -> np.ndarray:
        if not hasattr(self, "_tokens"):
            self._tokens = super().act(observation)
        return self._tokens.copy()


def listener_sums(dataset: DyadicDataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Per frame index t, the sum of the ``split``'s listener frames t ``(L, 56)`` and how many clips have one."""
    clips = dataset.split(split)
    if len(clips) == 0:
        raise ValueError(f"{dataset.path}: split {split!r} has no listeners to average")
    longest = int(clips.lengths.max())
    total, count = np.zeros((longest, FRAME_DIM)), np.zeros(longest)
    for clip in clips:
        total[: clip.num_frames] += np.asarray(clip.listener_motion, np.float64)
        count[: clip.num_frames] += 1
    return total, count


class MeanAgent(FrameAgent):
    """Always the mean frame of the ``split``'s listeners (every frame of every clip weighs the same).

    It ignores the speaker, so a method that does not beat it on a metric has not shown that it reads the
    speaker on that metric. REACT calls it MeanFr.
    """

    deterministic = True

    def __init__(
        self, dataset: DyadicDataset, tokenizer: ActionTokenizer, *, split: str = "train", chunk_size: int = 1
    ) -> None:
        super().__init__(tokenizer, chunk_size=chunk_size)
        total, count = listener_sums(dataset, split)
        self.frame = total.sum(axis=0) / count.sum()

    def act_frames(self, observation: Observation) -> np.ndarray:
        return np.repeat(self.frame[None], self.chunk_size, axis=0)


class MirrorAgent(FrameAgent):
    """Copies the speaker's current frame (a zero-lag mimic: the oracle's naturalness penalises it).

    The env shows the speaker's frame t when frame t is placed, so with one frame per step this is REACT's
    Mime, a copy of the speaker (passed through the action tokenizer); with chunks the chunk holds the frame.
    """

    deterministic = True

    def act_frames(self, observation: Observation) -> np.ndarray:
        return np.repeat(np.asarray(observation["speaker_motion"][-1:], np.float64), self.chunk_size, axis=0)


class MeanSeqAgent(FrameAgent):
    """The training listeners' mean sequence: at frame t, the mean of frame t over the ``split``'s clips that
    are that long (held at its last frame past the longest clip). REACT's MeanSeq; it ignores the speaker.
    """

    deterministic = True

    def __init__(
        self, dataset: DyadicDataset, tokenizer: ActionTokenizer, *, split: str = "train", chunk_size: int = 1
    ) -> None:
        super().__init__(tokenizer, chunk_size=chunk_size)
        total, count = listener_sums(dataset, split)
        self.sequence = total / count[:, None]

    def act_frames(self, observation: Observation) -> np.ndarray:
        t = int(np.asarray(observation["step"]).ravel()[0])
        return self.sequence[np.minimum(np.arange(t, t + self.chunk_size), len(self.sequence) - 1)]


class ContextFeatures:
    """The speaker context of one frame as a vector: pooled recent motion and a bag of recent words.

    Motion: the last ``motion_frames`` speaker frames (zeros before the clip starts), averaged in ``pools``
    equal parts and standardised with training statistics. Words: counts over the vocabulary, L2-normalised,
    scaled by ``words_weight * sqrt(motion dims)`` so words and motion weigh comparably in the distance
    (see :meth:`bag_of_words`).
    """

    def __init__(
        self, vocabulary: list[str], *, motion_frames: int = 16, pools: int = 4, words_weight: float = 0.5
    ) -> None:
        if motion_frames % pools:
            raise ValueError(f"motion_frames ({motion_frames}) must be a multiple of pools ({pools})")
        self.motion_frames, self.pools, self.words_weight = motion_frames, pools, words_weight
        self.vocabulary = {w: i for i, w in enumerate(vocabulary)}
        self.mean = np.zeros(pools * FRAME_DIM)
        self.std = np.ones(pools * FRAME_DIM)
        self._bow_cache: dict[str, np.ndarray] = {}

    @property
    def words_scale(self) -> float:
        return self.words_weight * float(np.sqrt(self.pools * FRAME_DIM))

    def pooled_motion(self, speaker: np.ndarray) -> np.ndarray:
        """``(T, pools*56)`` pooled windows ending at every frame of a ``(T, 56)`` speaker track."""
        w = self.motion_frames
        padded = np.concatenate([np.zeros((w - 1, FRAME_DIM), np.float32), np.asarray(speaker, np.float32)])
        windows = sliding_window_view(padded, w, axis=0)  # (T, 56, w)
        pooled = windows.reshape(len(speaker), FRAME_DIM, self.pools, w // self.pools).mean(-1)
        return pooled.transpose(0, 2, 1).reshape(len(speaker), -1)

    def bag_of_words(self, text: str) -> np.ndarray:
        """Unit-norm word counts times :attr:`words_scale`; out-of-vocabulary words count as ``<unk>``.

        No words at all sets the ``<pad>`` entry instead, so every bag has the same norm and the Euclidean
        distance between bags is a cosine distance: silence matches silence, and a partly shared wording is
        closer than no words at all.
        """
        bow = self._bow_cache.get(text)
        if bow is None:
            bow = np.zeros(len(self.vocabulary), np.float32)
            for word in text.split():
                bow[self.vocabulary.get(word, UNKNOWN_ID)] += 1.0
            if not bow.any():
                bow[PAD_ID] = 1.0
            bow *= self.words_scale / np.linalg.norm(bow)
            self._bow_cache[text] = bow
        return bow

    def clip_contexts(
        self, clip: Any, stride: int, words_window_s: float, max_words_chars: int
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Every ``stride``-th frame of a training clip, its pooled speaker motion and its words (as the env
        shows them with these word settings)."""
        frames = np.arange(0, clip.num_frames, stride)
        words = words_per_frame(clip, words_window_s, max_words_chars)
        return frames, self.pooled_motion(clip.speaker_motion)[frames], [words[f] for f in frames]

    def fit(self, pooled: np.ndarray, texts: list[str]) -> np.ndarray:
        """Standardise motion with these training contexts' statistics; their feature rows."""
        self.mean, self.std = pooled.mean(0), np.maximum(pooled.std(0), 1e-6)
        return self.combine(pooled, texts)

    def combine(self, pooled: np.ndarray, texts: list[str]) -> np.ndarray:
        motion = (pooled - self.mean) / self.std
        return np.hstack([motion, np.stack([self.bag_of_words(t) for t in texts])]).astype(np.float32)

    def query(self, observation: Observation) -> np.ndarray:
        speaker = np.asarray(observation["speaker_motion"])
        if len(speaker) < self.motion_frames:
            raise ValueError(
                f"nn and linear read {self.motion_frames} frames of speaker context, the env gives "
                f"{len(speaker)}; create the env with context_frames >= {self.motion_frames}"
            )
        pooled = self.pooled_motion(speaker[-self.motion_frames :])[-1:]
        return self.combine(pooled, [observation["words"]])[0]


class LinearReadoutAgent(FrameAgent):
    """The best linear guess of the listener's frame from the speaker context: a ridge regression from
    :class:`ContextFeatures` (recent speaker motion, recent words) to the listener frame, fitted on every
    ``stride``-th frame of the ``split``'s clips.

    Its frame is the imitation reward's conditional mean, to first order: what RL on that reward should reach
    at least (``mean`` is its special case with no inputs). ``ridge`` (times the number of frames) was picked on
    the synthetic ``small`` val split by L2 (0.00656 at 10, against Mean's 0.00787); the context is NN's.
    """

    deterministic = True

    def __init__(
        self, dataset: DyadicDataset, tokenizer: ActionTokenizer | None = None, *, split: str = "train",
        chunk_size: int = 1, ridge: float = 10.0, motion_frames: int = 16, pools: int = 4, words_weight: float = 1.0,
        words_window_s: float = 3.0, max_words_chars: int = 128, stride: int = 2,
    ) -> None:  # fmt: skip
        if ridge <= 0 or stride < 1:
            raise ValueError(f"ridge must be > 0 and stride >= 1, found {ridge}, {stride}")
        super().__init__(resolve_tokenizer(tokenizer, dataset), chunk_size=chunk_size)
        self.features = ContextFeatures(
            build_vocabulary(dataset, split),
            motion_frames=motion_frames,
            pools=pools,
            words_weight=words_weight,
        )
        pooled: list[np.ndarray] = []
        texts: list[str] = []
        targets: list[np.ndarray] = []
        for clip in dataset.split(split):
            frames, motion, words = self.features.clip_contexts(clip, stride, words_window_s, max_words_chars)
            pooled.append(motion)
            texts.extend(words)
            targets.append(np.asarray(clip.listener_motion, np.float64)[frames])
        x = self.features.fit(np.concatenate(pooled), texts).astype(np.float64)
        y = np.concatenate(targets)
        self.x_mean, self.y_mean = x.mean(0), y.mean(0)
        x, y = x - self.x_mean, y - self.y_mean
        self.weights = np.linalg.solve(x.T @ x + ridge * len(x) * np.eye(x.shape[1]), x.T @ y)

    def act_frames(self, observation: Observation) -> np.ndarray:
        frame = (self.features.query(observation) - self.x_mean) @ self.weights + self.y_mean
        return np.repeat(frame[None], self.chunk_size, axis=0)


class NearestNeighborAgent:
    """Retrieves the training listener response whose speaker context is closest to the current one.

    Every ``stride``-th training frame is a candidate context (:class:`ContextFeatures`). At a query the
    nearest candidate (squared Euclidean distance, a matrix product) is found and its listener's following
    frames are replayed for ``hold_frames`` frames, then the agent queries again: the retrieved response
    plays as a segment, as the paper's NN baseline retrieves segments, rather than flickering between
    neighbours every frame; the first ``blend_frames`` of a new segment cross-fade from the last frame played.
    Defaults (1 s segments, 6-frame blend, words weight 1) were picked on the synthetic ``small`` val split.

    Args:
        dataset: the training data (its ``split``), and the tokenizer (``tokenizer`` overrides it).
        words_window_s: must match the env's ``words_window_s`` so training and query words agree.
    """

    deterministic = True

    def __init__(
        self, dataset: DyadicDataset, *, split: str = "train", tokenizer: ActionTokenizer | None = None,
        chunk_size: int = 1, motion_frames: int = 16, pools: int = 4, words_weight: float = 1.0,
        words_window_s: float = 3.0, max_words_chars: int = 128, stride: int = 2, hold_frames: int = 25,
        blend_frames: int = 6,
    ) -> None:  # fmt: skip
        if stride < 1 or hold_frames < 1 or blend_frames < 0:
            raise ValueError(
                f"stride and hold_frames must be positive and blend_frames >= 0, found {stride}, {hold_frames}, "
                f"{blend_frames}"
            )
        self.chunk_size, self.hold_frames, self.blend_frames = chunk_size, hold_frames, blend_frames
        self.tokenizer = resolve_tokenizer(tokenizer, dataset)
        self.features = ContextFeatures(
            build_vocabulary(dataset, split),
            motion_frames=motion_frames,
            pools=pools,
            words_weight=words_weight,
        )
        self._playback = _Playback(dataset, split, self.tokenizer)
        self._index(dataset.split(split), stride, words_window_s, max_words_chars)
        # What it retrieves from: an evaluation warns when it scores these clips (the answer is in the database).
        self.database = (dataset.path.resolve(), frozenset(dataset.split(split).clip_ids))
        self.reset()

    def _index(self, clips: Any, stride: int, words_window_s: float, max_words_chars: int) -> None:
        pooled: list[np.ndarray] = []
        texts: list[str] = []
        rows: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        for c, clip in enumerate(clips):
            frames, motion, words = self.features.clip_contexts(clip, stride, words_window_s, max_words_chars)
            pooled.append(motion)
            texts.extend(words)
            rows.append(self._playback.starts[c] + frames)
            ends.append(np.full(len(frames), self._playback.ends[c]))
        self._matrix = self.features.fit(np.concatenate(pooled), texts)
        self._sq_norms = np.einsum("ij,ij->i", self._matrix, self._matrix)
        self._rows, self._ends = np.concatenate(rows), np.concatenate(ends)

    @property
    def num_candidates(self) -> int:
        return len(self._rows)

    def nearest(self, observation: Observation) -> int:
        """Index of the candidate context nearest to ``observation``'s speaker context."""
        query = self.features.query(observation)
        return int(np.argmin(self._sq_norms - 2.0 * (self._matrix @ query)))

    def reset(self, *, seed: int | None = None) -> None:
        self._pos, self._end, self._left = 0, 0, 0
        self._previous: np.ndarray | None = None  # last frame played, to blend from at a switch
        self._blend_from: np.ndarray | None = None
        self._blended = 0

    def act(self, observation: Observation) -> np.ndarray:
        if self._left <= 0:
            i = self.nearest(observation)
            self._pos, self._end, self._left = int(self._rows[i]), int(self._ends[i]), self.hold_frames
            self._blend_from, self._blended = self._previous, 0
        tokens = self._playback.frames(self._pos, self._end, self.chunk_size)
        self._pos += self.chunk_size
        self._left -= self.chunk_size
        if self._blend_from is not None and self._blended < self.blend_frames:
            tokens = self._crossfade(tokens)
        self._previous = tokens[-1]
        return tokens[0] if self.chunk_size == 1 else tokens

    def _crossfade(self, tokens: np.ndarray) -> np.ndarray:
        """Blend linearly from the frame before the switch into the new segment, so switches do not jump."""
        assert self._blend_from is not None
        steps = self._blended + 1 + np.arange(len(tokens))
        alpha = np.minimum(steps / (self.blend_frames + 1), 1.0)[:, None]
        start, target = self.tokenizer.decode(self._blend_from), self.tokenizer.decode(tokens)
        self._blended += len(tokens)
        return self.tokenizer.encode((1 - alpha) * start + alpha * target)

    def __repr__(self) -> str:
        return f"NearestNeighborAgent(candidates={self.num_candidates}, hold_frames={self.hold_frames})"


AgentFactory = Callable[..., Agent]


def _random(dataset: DyadicDataset, seed: int, tokenizer: ActionTokenizer, **kw: Any) -> Agent:
    return RandomAgent(num_bins=tokenizer.num_bins, seed=seed, **kw)


_REGISTRY: dict[str, AgentFactory] = {
    "random": _random,
    "random-train": lambda d, seed, tokenizer, **kw: RandomTrainAgent(
        d, tokenizer=tokenizer, seed=seed, **kw
    ),
    "nn": lambda d, seed, tokenizer, **kw: NearestNeighborAgent(d, tokenizer=tokenizer, **kw),
    "neutral": lambda d, seed, tokenizer, **kw: NeutralAgent(tokenizer, **kw),
    "mirror": lambda d, seed, tokenizer, **kw: MirrorAgent(tokenizer, **kw),
    "mean": lambda d, seed, tokenizer, **kw: MeanAgent(d, tokenizer, **kw),
    "linear": lambda d, seed, tokenizer, **kw: LinearReadoutAgent(d, tokenizer, **kw),
    # REACT's naive baselines by REACT's names (meanfr and mime are mean and mirror).
    "meanfr": lambda d, seed, tokenizer, **kw: MeanAgent(d, tokenizer, **kw),
    "meanseq": lambda d, seed, tokenizer, **kw: MeanSeqAgent(d, tokenizer, **kw),
    "mime": lambda d, seed, tokenizer, **kw: MirrorAgent(tokenizer, **kw),
}


def agent_names() -> list[str]:
    return list(_REGISTRY)


def register_agent(name: str, factory: AgentFactory, *, overwrite: bool = False) -> None:
    """Add ``factory(dataset, seed, tokenizer, **kwargs) -> Agent`` under ``name`` for :func:`make_agent`."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"an agent named {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory


def make_agent(
    name: str, dataset: DyadicDataset | str | os.PathLike, seed: int = 0, *,
    tokenizer: ActionTokenizer | None = None, **kwargs: Any,
) -> Agent:  # fmt: skip
    """Build a registered baseline by name (``random``, ``random-train``, ``nn``, ``neutral``, ``mirror``,
    ``mean``, and REACT's ``meanfr``, ``meanseq``, ``mime``).

    ``kwargs`` (e.g. ``chunk_size``) go to the agent's constructor.
    """
    if name not in _REGISTRY:
        raise ValueError(f"agent: expected one of {agent_names()}, found {name!r}")
    data = dataset if isinstance(dataset, DyadicDataset) else load_dataset(dataset)
    return _REGISTRY[name](data, seed, resolve_tokenizer(tokenizer, data), **kwargs)
