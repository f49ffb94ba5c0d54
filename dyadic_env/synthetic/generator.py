"""The synthetic dyadic generator: speakers with emotion trajectories, timed words, and listeners.

A clip is planned first (emotion segments, phrases, words: small JSON-able lists kept in ``Clip.meta``),
then rendered into motion with vectorized signal builders (one numpy pass per clip, no per-frame loops).

Speaker: segments of emotions (neutral, happiness, sadness, surprise, disgust, anger) with smooth
transitions; some segments are *text-only*: the face is only mildly emotional but the words are strongly
so. Talking moves the jaw at a syllable rate, the talking mouth shapes and the head; pauses separate
phrases; words (about 2.5-3.3 a second, only while talking) come from the segment's emotion lexicon or are
neutral fillers.

Listeners (``meta["listener_kind"]``):

- ``appropriate``: answers each segment, after a per-listener lag, with a fitting emotion (sadness ->
  concern or sadness, disgust -> disgust, joy -> smile, anger -> concern or a serious face, surprise ->
  surprise or interest) at an intensity that follows what the speaker shows and says; nods and flashes
  the brows at phrase ends; blinks; per-listener style (expressivity, lag, nod rate).
- ``generic_positive``: smiles regardless (also at disgust and sadness), nods at random times.
- ``inattentive``: nearly frozen (``meta["listener_mode"] == "frozen"``) or drifting through random
  expressions and head turns unrelated to the speaker (``"drifting"``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dyadic_env.data.clip import Clip, Word
from dyadic_env.data.splits import assign_splits
from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, JAW_POSE, NECK_POSE, ict_index
from dyadic_env.synthetic import signals
from dyadic_env.synthetic.config import POOR_KINDS, SyntheticConfig
from dyadic_env.synthetic.emotions import (
    APPROPRIATE_RESPONSES,
    DISPLAY_EMOTIONS,
    LISTENER_EMOTIONS,
    PROTOTYPES,
    SPEAKER_EMOTIONS,
    affect_of,
    neck_and_jaw,
)
from dyadic_env.synthetic.lexicon import FILLERS, LEXICONS

GENERATOR_VERSION = 1
SOURCE = "synthetic"

_E = len(LISTENER_EMOTIONS)
_IDX = {e: i for i, e in enumerate(LISTENER_EMOTIONS)}
_BLINK = [ict_index("eyeBlink_L"), ict_index("eyeBlink_R")]
_BROW_FLASH = [ict_index(n) for n in ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R")]
_TALK = {  # blendshape -> (weight on the open phase, weight on the smooth lip-shape noise)
    "mouthLowerDown_L": (0.3, 0.0), "mouthLowerDown_R": (0.3, 0.0), "mouthFunnel": (0.0, 0.18),
    "mouthPucker": (0.0, 0.15), "mouthClose": (-0.15, 0.0), "mouthRollLower": (0.0, 0.08),
    "mouthStretch_L": (0.08, 0.0), "mouthStretch_R": (0.08, 0.0),
}  # fmt: skip
_TALK_IDX = np.array([ict_index(n) for n in _TALK])
_TALK_OPEN = np.array([v[0] for v in _TALK.values()])
_TALK_SHAPE = np.array([v[1] for v in _TALK.values()])
# Gaze: (right, left, up, down) -> eyeLookOut_L/In_R, eyeLookIn_L/Out_R, eyeLookUp_*, eyeLookDown_*.
_GAZE = [
    [ict_index("eyeLookOut_L"), ict_index("eyeLookIn_R")], [ict_index("eyeLookIn_L"), ict_index("eyeLookOut_R")],
    [ict_index("eyeLookUp_L"), ict_index("eyeLookUp_R")], [ict_index("eyeLookDown_L"), ict_index("eyeLookDown_R")],
]  # fmt: skip


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


# ----------------------------------------------------------------------------------------------- motion


def _timeline(
    frames: int, fps: float, spans: list[tuple[float, float, str, float]], ramp_s: float
) -> np.ndarray:
    """``(frames, 8)`` smooth distribution over LISTENER_EMOTIONS from ``(start, end, emotion, level)``."""
    track = signals.box_track(frames, fps, [(a, b, _IDX[e], k) for a, b, e, k in spans if e != "neutral"], _E)
    track = np.clip(signals.smooth(track, ramp_s * fps), 0.0, 1.0)
    track[:, 0] = np.clip(1.0 - track[:, 1:].sum(axis=1), 0.0, 1.0)
    return track


def _speech_envelope(plan: SpeakerPlan) -> np.ndarray:
    mask = signals.box_track(plan.frames, plan.fps, [(a, b, 0, 1.0) for a, b in plan.phrases], 1)[:, 0]
    return np.clip(signals.smooth(mask, 1.5), 0.0, 1.0)


def _face(
    rng: np.random.Generator, distribution: np.ndarray, shape_scale: np.ndarray, blink_rate: float, fps: float
) -> np.ndarray:
    frames = distribution.shape[0]
    expression = distribution[:, 1:] @ (PROTOTYPES * shape_scale)
    blink = signals.blink_track(rng, frames, fps, blink_rate)
    expression[:, _BLINK] = np.maximum(expression[:, _BLINK], blink[:, None])
    gaze = np.clip(0.12 * signals.lowpass_noise(rng, frames, 2, 12.0), -0.3, 0.3)
    for axis, (pos, neg) in enumerate(((0, 1), (2, 3))):
        expression[:, _GAZE[pos]] += np.clip(gaze[:, axis], 0, None)[:, None]
        expression[:, _GAZE[neg]] += np.clip(-gaze[:, axis], 0, None)[:, None]
    return expression


def _assemble(
    expression: np.ndarray, neck: np.ndarray, jaw_open: np.ndarray, rng, noise: float
) -> np.ndarray:
    frames = expression.shape[0]
    motion = np.zeros((frames, FRAME_DIM))
    motion[:, EXPRESSION] = np.clip(expression + rng.normal(0, noise, expression.shape), 0.0, 1.0)
    motion[:, NECK_POSE] = neck + rng.normal(0, 0.2 * noise, (frames, 3))
    motion[:, JAW_POSE] = rng.normal(0, 0.2 * noise, (frames, 3))
    motion[:, JAW_POSE.start] += jaw_open
    return motion.astype(np.float32)


def speaker_motion(
    rng: np.random.Generator, plan: SpeakerPlan, style: SpeakerStyle, noise: float
) -> np.ndarray:
    """``(T, 56)`` speaker frames: shown emotion, talking mouth and jaw, head motion, blinks, gaze."""
    frames, fps = plan.frames, plan.fps
    shown = _timeline(frames, fps, [(s.start, s.end, s.emotion, s.face) for s in plan.segments], 0.2)
    expression = _face(rng, shown, style.shape_scale, style.blink_rate, fps)
    speaking = _speech_envelope(plan)
    syllable = signals.syllable_jaw(rng, frames, fps)
    lips = np.clip(signals.lowpass_noise(rng, frames, len(_TALK), 2.0), 0, None)
    expression[:, _TALK_IDX] += speaking[:, None] * (syllable[:, None] * _TALK_OPEN + lips * _TALK_SHAPE)
    expression[:, _TALK_IDX] = np.clip(expression[:, _TALK_IDX], 0.0, None)
    neck_tendency, jaw_tendency = neck_and_jaw(shown)
    # The head moves more while talking; 0.06 rad base std puts it inside the real 0.03-0.12 range.
    drift = signals.lowpass_noise(rng, frames, 3, 6.0) * np.array([0.06, 0.065, 0.04]) * style.head_scale
    neck = np.array(style.neck_offset) + drift * (0.45 + 0.55 * speaking[:, None]) + neck_tendency
    jaw = style.jaw_scale * speaking * syllable + jaw_tendency + 0.01
    motion = _assemble(expression, neck, jaw, rng, noise)
    # Chewing-like sideways jaw motion while talking (real jaw y/z std is about 0.01-0.025 rad).
    side = 0.012 * signals.lowpass_noise(rng, frames, 2, 3.0) * speaking[:, None]
    motion[:, JAW_POSE.start + 1 :] += side.astype(np.float32)
    return motion


def listener_motion(
    rng: np.random.Generator, plan: SpeakerPlan, style: ListenerStyle, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(T, 56)`` frames of a listener of ``style.kind`` to ``plan``, and its emotion distribution ``(T, 8)``."""
    frames, fps = plan.frames, plan.fps
    if style.kind == "appropriate":
        spans, ramp = _appropriate_spans(rng, plan, style), 0.25
        nods_at = _phrase_ends(plan)
    elif style.kind == "generic_positive":
        spans, ramp = [(0.0, frames / fps, "happiness", style.expressivity * rng.uniform(0.5, 0.75))], 0.3
        nods_at = _random_times(rng, frames / fps, 0.35)
    elif style.mode == "drifting":
        spans, ramp = _random_spans(rng, frames / fps), 0.35
        nods_at = _random_times(rng, frames / fps, 0.15)
    else:
        spans, ramp = [(0.0, frames / fps, str(rng.choice(DISPLAY_EMOTIONS)), rng.uniform(0.0, 0.12))], 0.0
        nods_at = np.zeros(0)
    distribution = _timeline(frames, fps, spans, ramp)
    if style.kind == "generic_positive":
        wobble = 0.08 * signals.lowpass_noise(rng, frames, 1, 20.0)[:, 0]
        distribution[:, _IDX["happiness"]] = np.clip(distribution[:, _IDX["happiness"]] + wobble, 0.2, 1.0)
        distribution[:, 0] = 1.0 - distribution[:, 1:].sum(axis=1)
    frozen = style.mode == "frozen"
    expression = _face(rng, distribution, style.shape_scale, 0.08 if frozen else style.blink_rate, fps)
    nod, brow = _nods_and_flashes(rng, nods_at, style, frames, fps, responsive=style.kind == "appropriate")
    expression[:, _BROW_FLASH] += brow[:, None]
    neck_tendency, jaw_tendency = neck_and_jaw(distribution)
    scale = 0.12 if frozen else (2.0 if style.mode == "drifting" else 1.0)
    drift = (
        signals.lowpass_noise(rng, frames, 3, 12.0)
        * np.array([0.035, 0.04, 0.025])
        * style.head_scale
        * scale
    )
    neck = np.array(style.neck_offset) + drift + neck_tendency
    neck[:, 0] += nod
    jaw = 0.012 + jaw_tendency + 0.004 * signals.lowpass_noise(rng, frames, 1, 10.0)[:, 0]
    return _assemble(expression, neck, jaw, rng, noise * (0.5 if frozen else 1.0)), distribution


def _appropriate_spans(
    rng: np.random.Generator, plan: SpeakerPlan, style: ListenerStyle
) -> list[tuple[float, float, str, float]]:
    spans = []
    for i, segment in enumerate(plan.segments):
        options = APPROPRIATE_RESPONSES[segment.emotion]
        response = style.preferred[segment.emotion]
        if rng.random() < 0.2:  # sometimes another fitting response than the usual one
            response = str(rng.choice(list(options), p=list(options.values())))
        if segment.emotion == "neutral":
            level = rng.uniform(0.25, 0.45)
        else:
            level = min(1.0, style.expressivity * segment.felt * rng.uniform(0.75, 1.0))
        # Words need a moment to add up, so a text-only segment is answered a little later.
        onset = segment.start + style.lag_s + (0.4 if segment.text_only else 0.0)
        end = plan.frames / plan.fps + 1.0 if i == len(plan.segments) - 1 else segment.end + style.lag_s
        spans.append((onset if i else 0.0, end, response, level))
    return spans


def _random_spans(rng: np.random.Generator, duration: float) -> list[tuple[float, float, str, float]]:
    spans, t = [], 0.0
    while t < duration:
        length = rng.uniform(1.0, 3.5)
        spans.append((t, t + length, str(rng.choice(LISTENER_EMOTIONS)), rng.uniform(0.2, 0.6)))
        t += length
    return spans


def _phrase_ends(plan: SpeakerPlan) -> np.ndarray:
    duration = plan.frames / plan.fps
    return np.array([end for _, end in plan.phrases if end < duration - 0.3])


def _random_times(rng: np.random.Generator, duration: float, rate_hz: float) -> np.ndarray:
    return np.sort(rng.uniform(0, duration, size=rng.poisson(rate_hz * duration)))


def _nods_and_flashes(
    rng: np.random.Generator,
    times: np.ndarray,
    style: ListenerStyle,
    frames: int,
    fps: float,
    responsive: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Head-pitch nods ``(T,)`` (positive = down) and brow flashes ``(T,)`` at (or near) ``times``."""
    nod_p = style.nod_rate if responsive else 0.8
    nods = times[rng.random(len(times)) < nod_p]
    starts = nods + rng.uniform(0.05, 0.35, size=len(nods))
    durations = rng.uniform(0.45, 0.7, size=len(nods))
    amplitudes = style.nod_amplitude * rng.uniform(0.8, 1.2, size=len(nods))
    double = rng.random(len(nods)) < 0.3  # a double nod: a second, smaller bump right after the first
    starts = np.concatenate([starts, starts[double] + 0.85 * durations[double]])
    amplitudes = np.concatenate([amplitudes, 0.7 * amplitudes[double]])
    durations = np.concatenate([durations, durations[double]])
    nod = signals.bumps(frames, fps, starts, durations, amplitudes)
    flashes = times[rng.random(len(times)) < (style.brow_rate if responsive else 0.3)]
    brow = signals.bumps(
        frames, fps, flashes + rng.uniform(0.0, 0.3, size=len(flashes)), np.full(len(flashes), 0.6),
        rng.uniform(0.2, 0.35, size=len(flashes)) * style.expressivity,
    )  # fmt: skip
    return nod, brow


# ------------------------------------------------------------------------------------------------ clips


def _listener_kinds(config: SyntheticConfig, rng: np.random.Generator) -> list[str]:
    n = config.num_listeners
    n_poor = round(config.poor_listener_fraction * n)
    weights = np.array([config.poor_kind_weights.get(k, 0.0) for k in POOR_KINDS])
    counts = np.floor(n_poor * weights / weights.sum()).astype(int)
    for i in np.argsort(-(n_poor * weights / weights.sum() - counts))[: n_poor - counts.sum()]:
        counts[i] += 1
    kinds = ["appropriate"] * (n - n_poor) + [k for k, c in zip(POOR_KINDS, counts) for _ in range(c)]
    return [kinds[i] for i in rng.permutation(n)]


def generate_clips(config: SyntheticConfig, seed: int | None = None) -> list[tuple[str, Clip]]:
    """Generate ``(split, Clip)`` pairs for ``config`` (seeded by ``seed``, default ``config.seed``)."""
    return list(iter_clips(config, seed))


def iter_clips(config: SyntheticConfig, seed: int | None = None) -> Iterator[tuple[str, Clip]]:
    """Yield the ``(split, Clip)`` pairs of :func:`generate_clips` one at a time, grouped by split.

    Each clip has its own random stream (spawned from the seed by clip index), so the order of
    generation does not change any clip, and a large preset streams to disk without being held in memory.
    """
    seed = config.seed if seed is None else int(seed)
    root = np.random.SeedSequence([seed, GENERATOR_VERSION])
    style_seq, clip_seq = root.spawn(2)
    style_rng = np.random.default_rng(style_seq)
    speakers = [speaker_style(style_rng, f"spk{i:04d}") for i in range(config.num_speakers)]
    kinds = _listener_kinds(config, style_rng)
    listeners = [
        listener_style(style_rng, f"lis{i:04d}", kinds[i], config) for i in range(config.num_listeners)
    ]
    speaker_of = style_rng.permutation(np.arange(config.num_clips) % config.num_speakers)
    listener_of = style_rng.permutation(np.arange(config.num_clips) % config.num_listeners)
    lengths = style_rng.uniform(*config.clip_seconds, size=config.num_clips)
    splits = assign_splits([speakers[s].speaker_id for s in speaker_of], config.split_fractions, seed=seed)
    clip_seeds = clip_seq.spawn(config.num_clips)
    rank = {name: k for k, name in enumerate(config.split_fractions)}
    for i in sorted(range(config.num_clips), key=lambda i: (rank[splits[i]], i)):
        rng = np.random.default_rng(clip_seeds[i])
        frames = max(2, round(lengths[i] * config.fps))
        clip = make_clip(
            rng, f"syn{i:05d}", speakers[speaker_of[i]], listeners[listener_of[i]], frames, config
        )
        yield splits[i], clip


def make_clip(
    rng: np.random.Generator, clip_id: str, speaker: SpeakerStyle, listener: ListenerStyle, frames: int,
    config: SyntheticConfig,
) -> Clip:  # fmt: skip
    """One clip: a planned speaker, its motion, a listener of ``listener.kind`` and both affects."""
    plan = plan_speaker(rng, speaker, frames, config)
    speaker_frames = speaker_motion(rng, plan, speaker, config.tracker_noise)
    listener_frames, listener_distribution = listener_motion(rng, plan, listener, config.tracker_noise)
    felt = _timeline(frames, config.fps, [(s.start, s.end, s.emotion, s.felt) for s in plan.segments], 0.2)
    meta = {
        "generator": "dyadic-synthetic", "generator_version": GENERATOR_VERSION,
        "listener_kind": listener.kind, "listener_mode": listener.mode, "listener_style": listener.summary(),
        **plan.to_meta(),
    }  # fmt: skip
    return Clip(
        clip_id=clip_id, fps=config.fps, speaker_motion=speaker_frames, listener_motion=listener_frames,
        speaker_words=plan.words, speaker_affect=affect_of(felt).astype(np.float32),
        listener_affect=affect_of(listener_distribution).astype(np.float32), speaker_id=speaker.speaker_id,
        listener_id=listener.listener_id, source=SOURCE, meta=meta,
    )  # fmt: skip


def synthesize_listener(
    clip: Clip, kind: str, *, seed: int = 0, mode: str | None = None, config: SyntheticConfig | None = None
) -> np.ndarray:
    """A new ``(T, 56)`` listener of ``kind`` for a synthetic clip's speaker (from its ``meta`` truth).

    For reports and tests: it lets every listener kind answer the very same speaker. ``mode`` picks
    ``"frozen"`` or ``"drifting"`` for inattentive listeners.
    """
    if kind not in ("appropriate", *POOR_KINDS):
        raise ValueError(f"kind: expected one of appropriate, {', '.join(POOR_KINDS)}; found {kind!r}")
    config = config or SyntheticConfig()
    plan = SpeakerPlan.from_clip(clip)
    rng = np.random.default_rng([seed, zlib.crc32(clip.clip_id.encode()), zlib.crc32(kind.encode())])
    style = listener_style(rng, "variant", kind, config)
    if mode is not None:
        if kind != "inattentive" or mode not in ("frozen", "drifting"):
            raise ValueError(f"mode: only inattentive listeners take 'frozen' or 'drifting', found {mode!r}")
        style = ListenerStyle(**{**style.__dict__, "mode": mode})
    return listener_motion(rng, plan, style, config.tracker_noise)[0]


__all__ = [
    "GENERATOR_VERSION", "ListenerStyle", "SpeakerPlan", "SpeakerStyle",
    "generate_clips", "iter_clips", "make_clip", "synthesize_listener",
]  # fmt: skip
