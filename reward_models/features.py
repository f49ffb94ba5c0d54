"""Per-step inputs of a learned reward r(observation, action).

A step's input is built from what the listener sees when it acts, read from the environment's observation:
the most recent speaker frames, the speaker's recent words as a hashed bag of words, and the listener's own
previous frames; plus the action, the decoded listener frame placed at this step. The same features are
built offline from a clip and a listener trajectory (for training on preference pairs) and online from the
env's observation dict (for :class:`~reward_models.wrappers.LearnedRewardWrapper`); a test checks that both
paths agree.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

FRAME_DIM = 56


def _env_default(name: str) -> Any:
    """The listener env's default for one of its arguments (the features must see what the env shows)."""
    import inspect

    from dyadic_env.envs.listener import ListenerEnv

    return inspect.signature(ListenerEnv.__init__).parameters[name].default


@dataclass(frozen=True)
class StepFeatureConfig:
    """What one step's input holds.

    Attributes:
        speaker_frames: how many recent speaker frames (ending at the current frame) enter, newest last.
        speaker_stride: take every ``speaker_stride``-th of those frames, so a short input spans a longer time.
        listener_history: how many of the listener's own previous frames enter (as differences to the action,
            which carry smoothness and responsiveness).
        word_buckets: size of the hashed bag of words (0 turns words off).
        words_window_s: seconds of speech the words cover; must match the env's ``words_window_s``.
        max_words_chars: length cap of the words string; must match the env's ``max_words_chars``.
    """

    speaker_frames: int = 16
    speaker_stride: int = 4
    listener_history: int = 2
    word_buckets: int = 64
    words_window_s: float = field(default_factory=lambda: _env_default("words_window_s"))
    max_words_chars: int = field(default_factory=lambda: _env_default("max_words_chars"))

    def __post_init__(self) -> None:
        if self.speaker_frames < 1 or self.speaker_stride < 1:
            raise ValueError(
                f"speaker_frames and speaker_stride must be >= 1, found {self.speaker_frames} and "
                f"{self.speaker_stride}"
            )
        if self.listener_history < 0 or self.word_buckets < 0:
            raise ValueError("listener_history and word_buckets must be >= 0")
        if self.words_window_s <= 0:
            raise ValueError(f"words_window_s must be > 0, found {self.words_window_s}")

    @property
    def speaker_offsets(self) -> np.ndarray:
        """Offsets (0 = current frame) of the speaker frames used, oldest first."""
        return np.arange(0, self.speaker_frames, self.speaker_stride)[::-1].copy()

    @property
    def dim(self) -> int:
        """Length of one step's feature vector."""
        return FRAME_DIM * (len(self.speaker_offsets) + 1 + self.listener_history) + self.word_buckets

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hash_words(text: str, buckets: int) -> np.ndarray:
    """A bag of words over ``buckets`` hashed buckets (crc32, stable across runs), L2-normalised."""
    vector = np.zeros(buckets, np.float32)
    if buckets == 0:
        return vector
    for word in text.lower().split():
        vector[zlib.crc32(word.encode("utf-8")) % buckets] += 1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _assemble(
    cfg: StepFeatureConfig,
    speaker: np.ndarray,
    listener_past: np.ndarray,
    action: np.ndarray,
    words: np.ndarray,
) -> np.ndarray:
    """Concatenate N steps: speaker (N,S*56), listener_past (N,H,56) newest last, action (N,56), words."""
    n = action.shape[0]
    parts = [speaker.reshape(n, -1), action]
    if cfg.listener_history:
        # Differences to the previous frames: the motion itself, which is what smoothness is judged on.
        parts.append((action[:, None, :] - listener_past).reshape(n, -1))
    parts.append(words)
    return np.concatenate(parts, axis=1).astype(np.float32)


@dataclass(frozen=True)
class EpisodeContext:
    """The speaker side of every step of one episode, computed once and shared by all its candidates.

    Attributes:
        speaker: ``(T, S*56)`` the speaker frames each step sees, flattened.
        words: ``(T, word_buckets)`` the hashed words each step sees.
    """

    speaker: np.ndarray
    words: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.speaker.shape[0])


def episode_context(
    cfg: StepFeatureConfig, speaker_motion: np.ndarray, words_per_frame: Sequence[str]
) -> EpisodeContext:
    """The speaker part of the features of every step of an episode (see :func:`trajectory_features`)."""
    speaker_motion = np.asarray(speaker_motion, np.float32)
    t = speaker_motion.shape[0]
    if speaker_motion.ndim != 2 or speaker_motion.shape[1] != FRAME_DIM:
        raise ValueError(
            f"episode_context: speaker_motion must be (T, {FRAME_DIM}), found {speaker_motion.shape}"
        )
    if len(words_per_frame) != t:
        raise ValueError(f"episode_context: expected {t} word strings, found {len(words_per_frame)}")
    offsets = cfg.speaker_offsets
    pad = int(offsets.max())
    padded = np.concatenate([np.zeros((pad, FRAME_DIM), np.float32), speaker_motion])
    speaker = padded[np.arange(t)[:, None] + pad - offsets[None, :]].reshape(t, -1)
    words = np.stack([hash_words(w, cfg.word_buckets) for w in words_per_frame]) if t else np.zeros((0, 0))
    return EpisodeContext(speaker=speaker, words=words.reshape(t, cfg.word_buckets).astype(np.float32))


def clip_context(cfg: StepFeatureConfig, clip: Any) -> EpisodeContext:
    """The speaker part of the features of every step of ``clip``, with the words as the env shows them."""
    return episode_context(cfg, np.asarray(clip.speaker_motion), words_per_frame(clip, cfg))


def listener_features(
    cfg: StepFeatureConfig, context: EpisodeContext, listener_frames: np.ndarray
) -> np.ndarray:
    """Features ``(T, dim)`` of one candidate: its episode's context with its decoded frames ``(T, 56)``."""
    listener_frames = np.asarray(listener_frames, np.float32)
    t = context.num_frames
    if listener_frames.shape != (t, FRAME_DIM):
        raise ValueError(
            f"listener_features: listener frames must be ({t}, {FRAME_DIM}) to match the episode, found "
            f"{listener_frames.shape}"
        )
    h = cfg.listener_history
    padded = np.concatenate([np.zeros((h, FRAME_DIM), np.float32), listener_frames])
    # Row i holds frames i-h .. i-1, zeros before the episode starts (as the env's observation does).
    past = padded[np.arange(t)[:, None] + np.arange(h)[None, :]]
    return _assemble(cfg, context.speaker, past, listener_frames, context.words)


def trajectory_features(
    cfg: StepFeatureConfig,
    speaker_motion: np.ndarray,
    listener_frames: np.ndarray,
    words_per_frame: Sequence[str],
) -> np.ndarray:
    """Features ``(T, dim)`` of every step of one episode, as the env would have shown it.

    Args:
        cfg: the feature layout.
        speaker_motion: ``(T, 56)`` the speaker's frames.
        listener_frames: ``(T, 56)`` the decoded listener actions, one per frame.
        words_per_frame: ``T`` strings, the env's ``"words"`` observation at each frame.
    """
    return listener_features(cfg, episode_context(cfg, speaker_motion, words_per_frame), listener_frames)


def observation_features(
    cfg: StepFeatureConfig, observations: Sequence[Mapping[str, Any]], actions: np.ndarray
) -> np.ndarray:
    """Features ``(N, dim)`` of N steps from env observation dicts and decoded actions ``(N, 56)``.

    Reads ``speaker_motion`` (K,56) whose last row is the current frame, ``listener_motion`` (K,56) whose last
    row is the previous frame, and ``words``. Raises when the window K is shorter than the features need.
    """
    actions = np.asarray(actions, np.float32).reshape(len(observations), FRAME_DIM)
    offsets = cfg.speaker_offsets
    speaker, listener_past, words = [], [], []
    for obs in observations:
        s = np.asarray(obs["speaker_motion"], np.float32)
        lm = np.asarray(obs["listener_motion"], np.float32)
        if s.shape[0] <= int(offsets.max()) or lm.shape[0] < cfg.listener_history:
            raise ValueError(
                f"observation_features: the reward model needs {int(offsets.max()) + 1} speaker frames and "
                f"{cfg.listener_history} listener frames of context, the env gives {s.shape[0]} and "
                f"{lm.shape[0]}; raise the env's context_frames"
            )
        speaker.append(s[s.shape[0] - 1 - offsets].reshape(-1))
        listener_past.append(lm[lm.shape[0] - cfg.listener_history :] if cfg.listener_history else lm[:0])
        text = obs.get("words", "")
        words.append(hash_words(text if isinstance(text, str) else "", cfg.word_buckets))
    return _assemble(cfg, np.stack(speaker), np.stack(listener_past), actions, np.stack(words))


def words_per_frame(clip: Any, cfg: StepFeatureConfig) -> list[str]:
    """The env's ``"words"`` observation at every frame of ``clip`` (the env's own function)."""
    from dyadic_env.envs.listener import words_per_frame as env_words_per_frame

    return env_words_per_frame(clip, cfg.words_window_s, cfg.max_words_chars)[: clip.num_frames]
