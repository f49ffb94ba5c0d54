"""One speaker-listener segment, the unit every part of the toolkit consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from dyadic_env.expression_basis import FRAME_DIM


class Word(NamedTuple):
    """A word the speaker says, with its timing in seconds from the clip start."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Clip:
    """A speaker-listener segment.

    Motion arrays are ``(T, 56)`` float32 (possibly read-only memory maps); see
    :mod:`dyadic_env.expression_basis` for the frame layout.
    """

    clip_id: str
    fps: float
    speaker_motion: np.ndarray
    listener_motion: np.ndarray
    speaker_words: tuple[Word, ...] = ()
    speaker_features: np.ndarray | None = None
    speaker_affect: np.ndarray | None = None
    listener_affect: np.ndarray | None = None
    speaker_id: str = ""
    listener_id: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def num_frames(self) -> int:
        return int(self.speaker_motion.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def words_between(self, start_s: float, end_s: float) -> list[Word]:
        """Words that end within ``(start_s, end_s]``: what a listener has heard by ``end_s``."""
        return [w for w in self.speaker_words if start_s < w.end <= end_s]

    def words_until(self, frame: int, window_s: float | None = None) -> list[Word]:
        """Words heard by the end of ``frame`` (optionally only within the last ``window_s`` seconds)."""
        end_s = (frame + 1) / self.fps
        start_s = -1.0 if window_s is None else end_s - window_s
        return self.words_between(start_s, end_s)

    def with_listener(self, listener_motion: np.ndarray, listener_id: str = "") -> Clip:
        """The same speaker with another listener trajectory (affect of the old listener dropped)."""
        listener_motion = np.asarray(listener_motion, dtype=np.float32)
        if listener_motion.shape != (self.num_frames, FRAME_DIM):
            raise ValueError(
                f"listener_motion: expected shape ({self.num_frames}, {FRAME_DIM}) to match clip "
                f"{self.clip_id!r}, found {listener_motion.shape}"
            )
        return Clip(
            clip_id=self.clip_id, fps=self.fps, speaker_motion=self.speaker_motion,
            listener_motion=listener_motion, speaker_words=self.speaker_words,
            speaker_features=self.speaker_features, speaker_affect=self.speaker_affect,
            listener_affect=None, speaker_id=self.speaker_id, listener_id=listener_id or self.listener_id,
            source=self.source, meta=dict(self.meta),
        )  # fmt: skip
