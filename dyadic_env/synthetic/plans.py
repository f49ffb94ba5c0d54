"""The generator truth of a synthetic clip, drawn before any motion: speaker and listener styles, and the
speaker's plan (emotion segments, phrases and timed words: small JSON-able lists kept in ``Clip.meta``).

:mod:`dyadic_env.synthetic.motion` renders a plan into frames; :mod:`dyadic_env.synthetic.generator` draws
whole clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dyadic_env.data.clip import Clip, Word
from dyadic_env.synthetic.config import SyntheticConfig
from dyadic_env.synthetic.emotions import APPROPRIATE_RESPONSES, PROTOTYPES, SPEAKER_EMOTIONS
from dyadic_env.synthetic.lexicon import FILLERS, LEXICONS


@dataclass(frozen=True)
class SpeakerStyle:
    """How one synthetic speaker talks and emotes."""

    speaker_id: str
    expressivity: float
    head_scale: float
    jaw_scale: float
    word_pace: float
    blink_rate: float
    neck_offset: tuple[float, float, float]
    emotion_probs: tuple[float, ...]
    shape_scale: np.ndarray  # (7, 50) idiosyncratic prototype scaling


@dataclass(frozen=True)
class ListenerStyle:
    """How one synthetic listener persona reacts."""

    listener_id: str
    kind: str
    mode: str
    expressivity: float
    lag_s: float
    nod_rate: float
    nod_amplitude: float
    brow_rate: float
    head_scale: float
    blink_rate: float
    neck_offset: tuple[float, float, float]
    preferred: dict[str, str]
    shape_scale: np.ndarray

    def summary(self) -> dict:
        return {
            "expressivity": round(self.expressivity, 3), "lag_s": round(self.lag_s, 3),
            "nod_rate": round(self.nod_rate, 3), "brow_rate": round(self.brow_rate, 3),
        }  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """A stretch of one speaker emotion: what the face shows and how strongly the words carry it."""

    start: float
    end: float
    emotion: str
    face: float
    word_rate: float
    text_only: bool

    @property
    def felt(self) -> float:
        """Intensity the speaker conveys through face and words together (what a listener perceives)."""
        return 0.0 if self.emotion == "neutral" else max(self.face, min(1.0, 1.6 * self.word_rate))


@dataclass(frozen=True)
class SpeakerPlan:
    """The generator truth of one clip's speaker: emotion segments, phrases and words."""

    frames: int
    fps: float
    segments: tuple[Segment, ...]
    phrases: tuple[tuple[float, float], ...]
    words: tuple[Word, ...]

    def to_meta(self) -> dict:
        return {
            "speaker_emotions": [
                [
                    round(s.start, 3),
                    round(s.end, 3),
                    s.emotion,
                    round(s.face, 3),
                    round(s.word_rate, 3),
                    s.text_only,
                ]
                for s in self.segments
            ],
            "phrases": [[round(a, 3), round(b, 3)] for a, b in self.phrases],
        }

    @classmethod
    def from_clip(cls, clip: Clip) -> SpeakerPlan:
        """Rebuild the plan from a synthetic clip's ``meta`` (raises KeyError for other clips)."""
        if "speaker_emotions" not in clip.meta:
            raise KeyError(f"clip {clip.clip_id!r} has no synthetic generator truth in its meta")
        segments = tuple(Segment(float(a), float(b), str(e), float(f), float(w), bool(t))
                         for a, b, e, f, w, t in clip.meta["speaker_emotions"])  # fmt: skip
        phrases = tuple((float(a), float(b)) for a, b in clip.meta["phrases"])
        return cls(clip.num_frames, clip.fps, segments, phrases, tuple(clip.speaker_words))


# ----------------------------------------------------------------------------------------------- styles


def _shape_scale(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.8, 1.2, size=PROTOTYPES.shape)


def speaker_style(rng: np.random.Generator, speaker_id: str) -> SpeakerStyle:
    """Draw one speaker's style."""
    probs = rng.dirichlet(np.full(len(SPEAKER_EMOTIONS) - 1, 2.0))
    probs = np.concatenate([[0.18], 0.82 * (0.5 * probs + 0.5 / len(probs))])
    return SpeakerStyle(
        speaker_id=speaker_id, expressivity=rng.uniform(0.75, 1.1), head_scale=rng.uniform(0.7, 1.4),
        jaw_scale=rng.uniform(0.1, 0.17), word_pace=rng.uniform(0.85, 1.15), blink_rate=rng.uniform(0.2, 0.45),
        neck_offset=tuple(rng.normal(0, [0.04, 0.05, 0.02])), emotion_probs=tuple(probs),
        shape_scale=_shape_scale(rng),
    )  # fmt: skip


def listener_style(
    rng: np.random.Generator, listener_id: str, kind: str, config: SyntheticConfig
) -> ListenerStyle:
    """Draw one listener persona's style; ``kind`` is appropriate, generic_positive or inattentive."""
    preferred = {e: str(rng.choice(list(r), p=list(r.values()))) for e, r in APPROPRIATE_RESPONSES.items()}
    mode = str(rng.choice(["frozen", "drifting"])) if kind == "inattentive" else "responsive"
    return ListenerStyle(
        listener_id=listener_id, kind=kind, mode=mode, expressivity=rng.uniform(0.7, 1.1),
        lag_s=rng.uniform(*config.listener_lag_seconds), nod_rate=rng.uniform(*config.nod_rate),
        nod_amplitude=rng.uniform(0.045, 0.09), brow_rate=rng.uniform(0.2, 0.5), head_scale=rng.uniform(0.6, 1.2),
        blink_rate=rng.uniform(0.2, 0.4), neck_offset=tuple(rng.normal(0, [0.03, 0.04, 0.015])),
        preferred=preferred, shape_scale=_shape_scale(rng),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ plans


def plan_speaker(
    rng: np.random.Generator, style: SpeakerStyle, frames: int, config: SyntheticConfig
) -> SpeakerPlan:
    """Draw a clip's emotion segments, phrases and timed words."""
    duration = frames / config.fps
    segments = _plan_segments(rng, style, duration, config)
    phrases = _plan_phrases(rng, duration)
    words: list[Word] = []
    spoken: list[tuple[float, float]] = []
    for start, end in phrases:
        phrase_words = _plan_words(rng, style, segments, start, end)
        if phrase_words:
            words.extend(phrase_words)
            spoken.append((phrase_words[0].start, phrase_words[-1].end))
    return SpeakerPlan(frames, config.fps, tuple(segments), tuple(spoken), tuple(words))


def _plan_segments(
    rng: np.random.Generator, style: SpeakerStyle, duration: float, config: SyntheticConfig
) -> list[Segment]:
    segments: list[Segment] = []
    t, previous = 0.0, None
    probs = np.array(style.emotion_probs)
    while t < duration - 1e-6:
        length = rng.uniform(*config.segment_seconds)
        if duration - (t + length) < 1.0:
            length = duration - t
        p = probs.copy()
        if previous is not None:
            p[SPEAKER_EMOTIONS.index(previous)] = 0.0
        emotion = str(rng.choice(SPEAKER_EMOTIONS, p=p / p.sum()))
        text_only = emotion != "neutral" and rng.random() < config.text_only_fraction
        if emotion == "neutral":
            face, word_rate = 0.0, 0.0
        elif text_only:
            face, word_rate = (
                rng.uniform(0.1, 0.22),
                min(1.0, config.emotional_word_rate[1] + rng.uniform(0.15, 0.3)),
            )
        else:
            face, word_rate = (
                min(1.0, rng.uniform(0.55, 1.0) * style.expressivity),
                rng.uniform(*config.emotional_word_rate),
            )
        segments.append(Segment(t, t + length, emotion, face, word_rate, text_only))
        t, previous = t + length, emotion
    return segments


def _plan_phrases(rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    phrases = []
    t = rng.uniform(0.0, 0.3)
    while t < duration - 0.6:
        end = min(t + rng.uniform(0.9, 2.6), duration - rng.uniform(0.0, 0.2))
        phrases.append((t, end))
        # Mostly short pauses between phrases, sometimes a longer turn-end pause.
        t = end + (rng.uniform(1.0, 1.6) if rng.random() < 0.15 else rng.uniform(0.3, 0.8))
    return phrases


def _plan_words(
    rng: np.random.Generator, style: SpeakerStyle, segments: list[Segment], start: float, end: float
) -> list[Word]:
    words: list[Word] = []
    t = start
    while True:
        segment = next((s for s in segments if s.start <= t < s.end), segments[-1])
        emotional = segment.emotion != "neutral" and rng.random() < segment.word_rate
        text = str(rng.choice(LEXICONS[segment.emotion] if emotional else FILLERS))
        length = style.word_pace * (0.1 + 0.045 * len(text)) + rng.uniform(-0.02, 0.05)
        if t + length > end:
            return words
        words.append(Word(round(t, 3), round(t + length, 3), text))
        t += length + rng.uniform(0.02, 0.08)
