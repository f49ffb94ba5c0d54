"""Rendering a speaker plan into motion: the speaker's frames and the frames of a listener of each kind.

Vectorized signal builders (one numpy pass per clip, no per-frame loops); every random draw comes from the
``rng`` passed in, in a fixed order, so a clip's stream gives the same frames every time.
"""

from __future__ import annotations

import numpy as np

from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, JAW_POSE, NECK_POSE, ict_index
from dyadic_env.synthetic import signals
from dyadic_env.synthetic.emotions import (
    APPROPRIATE_RESPONSES,
    DISPLAY_EMOTIONS,
    LISTENER_EMOTIONS,
    PROTOTYPES,
    neck_and_jaw,
)
from dyadic_env.synthetic.plans import ListenerStyle, SpeakerPlan, SpeakerStyle

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


def timeline(
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
    shown = timeline(frames, fps, [(s.start, s.end, s.emotion, s.face) for s in plan.segments], 0.2)
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
    distribution = timeline(frames, fps, spans, ramp)
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
