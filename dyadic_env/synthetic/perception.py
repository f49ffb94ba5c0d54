"""What the hidden oracle perceives: the speaker's context and the listener's readings and behaviour.

It sees only what a person sees: the speaker's motion, the listener's motion and the speaker's words;
never generator internals. :class:`~dyadic_env.synthetic.oracle.Oracle` scores whole trajectories from these
readings and :class:`~dyadic_env.synthetic.oracle_stepper.OracleStepper` shapes per-frame rewards from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import lfilter

from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, JAW_POSE, NECK_POSE, ict_index
from dyadic_env.synthetic import signals
from dyadic_env.synthetic.emotions import SPEAKER_EMOTIONS, VA, display_distribution, read_emotions
from dyadic_env.synthetic.lexicon import word_emotion

_SPEAKER_SHOWN = SPEAKER_EMOTIONS[1:]
_DEADZONE = 0.05  # read intensities below this are tracker noise
_WORD_DECAY_S = 1.5
_WORD_GAIN = 1.5
_PHRASE_GAP_S = 0.25
LISTENER_FULL = 0.6
RESPONSE_S = 1.2  # a response to a phrase end comes within this many seconds
BLINKS = [ict_index("eyeBlink_L"), ict_index("eyeBlink_R")]
BROWS_UP = [ict_index(n) for n in ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R")]
NON_BLINK = np.setdiff1d(np.arange(50), BLINKS)
PITCH = NECK_POSE.start
JAW_OPEN = JAW_POSE.start


def as_words(words: Iterable[Any]) -> list[tuple[float, float, str]]:
    """Accept ``Word`` tuples, ``(start, end, text)`` triples or dicts with those keys."""
    out = []
    for w in words:
        if isinstance(w, Mapping):
            out.append((float(w.get("start", w["end"])), float(w["end"]), str(w["text"])))
        else:
            start, end, text = w
            out.append((float(start), float(end), str(text)))
    return out


def check_motion(name: str, motion: np.ndarray, frames: int | None = None) -> np.ndarray:
    """``motion`` as float64 ``(T, 56)`` with ``T >= 2`` finite frames (``frames`` of them if given)."""
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 2 or motion.shape[1] != FRAME_DIM or (frames is not None and motion.shape[0] != frames):
        expected = f"({frames if frames is not None else 'T'}, {FRAME_DIM})"
        raise ValueError(f"{name}: expected shape {expected}, found {motion.shape}")
    if motion.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 frames to score, found {motion.shape[0]}")
    if not np.isfinite(motion).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return motion


def read_intensities(motion: np.ndarray, emotions: tuple[str, ...] | None = None) -> np.ndarray:
    """Emotion intensities read from a face, with readings below the tracker-noise dead zone set to 0."""
    raw = read_emotions(motion) if emotions is None else read_emotions(motion, emotions)
    return np.clip(raw - _DEADZONE, 0.0, None) / (1.0 - _DEADZONE)


def lagged(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` delayed by ``lag`` frames (the first frames repeat ``x[0]``)."""
    if lag <= 0:
        return x
    return np.concatenate([np.repeat(x[:1], lag, axis=0), x[:-lag]], axis=0)


@dataclass(frozen=True)
class SpeakerContext:
    """What a listener can perceive of the speaker, frame by frame (causal: frame t uses data up to t)."""

    distribution: np.ndarray  # (T, 6) neutral + shown-or-said emotions over SPEAKER_EMOTIONS
    intensity: np.ndarray  # (T,) emotional intensity in [0, 1]
    valence: np.ndarray  # (T,)
    phrase_ends: np.ndarray  # frames where the speaker's phrases end (a pause follows)
    response_window: np.ndarray  # (T,) bool: within the response time after a phrase end


def speaker_context(speaker_motion: np.ndarray, speaker_words: Iterable[Any], fps: float) -> SpeakerContext:
    """Read the speaker's face and words into a perceived emotion context."""
    frames = speaker_motion.shape[0]
    face = read_intensities(speaker_motion, _SPEAKER_SHOWN)
    words = as_words(speaker_words)
    said = _word_context(words, frames, fps)
    # Words of an emotion the face plainly contradicts weigh less (a smiling "disgusting" is a joke).
    other_face = np.stack([np.delete(face, k, axis=1).max(axis=1) for k in range(face.shape[1])], axis=1)
    context = np.maximum(face, said * (1.0 - 0.7 * np.clip(other_face, 0, 1)))
    distribution = display_distribution(context)
    intensity = 1.0 - distribution[:, 0]
    valence = distribution @ VA[: len(SPEAKER_EMOTIONS), 0]
    ends = _phrase_ends(words, speaker_motion, frames, fps)
    window = np.zeros(frames, dtype=bool)
    for end in ends:
        window[end + 1 : end + round(RESPONSE_S * fps)] = True
    return SpeakerContext(distribution, intensity, valence, ends, window)


def _word_context(words: list[tuple[float, float, str]], frames: int, fps: float) -> np.ndarray:
    """``(T, 5)`` emotion carried by the words heard so far: impulses at word ends with causal decay."""
    impulses = np.zeros((frames, len(_SPEAKER_SHOWN)))
    for _, end, text in words:
        emotion = word_emotion(text)
        frame = int(np.ceil(end * fps - 1e-6)) - 1  # the frame by whose end the word has been heard
        if emotion is not None and 0 <= frame < frames:
            impulses[max(frame, 0), _SPEAKER_SHOWN.index(emotion)] += 1.0
    decay = np.exp(-1.0 / (_WORD_DECAY_S * fps))
    accumulated = lfilter([1.0], [1.0, -decay], impulses, axis=0)
    return 1.0 - np.exp(-_WORD_GAIN * accumulated)


def _phrase_ends(
    words: list[tuple[float, float, str]], speaker_motion: np.ndarray, frames: int, fps: float
) -> np.ndarray:
    """Frames where the speaker's phrases end (a pause of at least 0.25 s follows)."""
    if words:
        spans = _spans_from_words(sorted(words), frames / fps)
    else:
        spans = _spans_from_jaw(speaker_motion, fps)
    return np.array([round(b * fps) for _, b in spans if b < frames / fps - _PHRASE_GAP_S], dtype=np.int64)


def _spans_from_words(words: list[tuple[float, float, str]], duration: float) -> list[tuple[float, float]]:
    spans: list[list[float]] = []
    for start, end, _ in words:
        if spans and start - spans[-1][1] < _PHRASE_GAP_S:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return [(a, b) for a, b in spans]


def _spans_from_jaw(speaker_motion: np.ndarray, fps: float) -> list[tuple[float, float]]:
    """Without words, find talking from syllable-rate jaw motion (for real data with no transcript)."""
    jaw = speaker_motion[:, JAW_OPEN]
    energy = signals.smooth(np.abs(jaw - signals.smooth(jaw, 2.0)), 0.2 * fps)
    talking = energy > max(0.006, 0.5 * np.median(energy))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], talking.astype(int), [0]])))
    return [(a / fps, b / fps) for a, b in zip(edges[::2], edges[1::2]) if b - a >= 0.3 * fps]


@dataclass(frozen=True)
class ListenerReading:
    """The oracle's per-frame reading of a listener face."""

    distribution: np.ndarray  # (T, 8) over LISTENER_EMOTIONS
    intensity: np.ndarray  # (T,)
    valence: np.ndarray  # (T,)


def read_listener(listener_motion: np.ndarray) -> ListenerReading:
    """Read a listener face; a moderate expression (total intensity 0.6) already counts as a full response."""
    distribution = display_distribution(read_intensities(listener_motion), LISTENER_FULL)
    return ListenerReading(distribution, 1.0 - distribution[:, 0], distribution @ VA[:, 0])


# ------------------------------------------------------------------------------------------- readings


def _bump(x: np.ndarray, half_width: int) -> np.ndarray:
    """How far each value rises above both neighbours ``half_width`` frames away (a bump, not a step)."""
    padded = np.concatenate([np.repeat(x[:1], half_width), x, np.repeat(x[-1:], half_width)])
    return x - np.maximum(padded[: x.shape[0]], padded[2 * half_width :])


def response_signal(listener: np.ndarray, fps: float) -> np.ndarray:
    """``(T, 2)`` nod and brow-flash evidence in about [0, 1] per frame.

    A nod (head pitch down and back) or a brow flash is a bump of about half a second; a step (an
    expression change, a head that sinks and stays) or slow drift is not.
    """
    half = round(0.32 * fps)  # keep in step with OracleStepper._half
    nod = _bump(listener[:, PITCH], half) / 0.04
    brow = _bump(listener[:, BROWS_UP].mean(axis=1), half) / 0.12
    return np.stack([nod, brow], axis=1)


def responses(signal: np.ndarray, frames: np.ndarray, fps: float) -> np.ndarray:
    """Response strength in [0, 1] in the 1.3 s after each of ``frames``."""
    after = round(RESPONSE_S * fps)
    out = [np.clip(signal[f + 1 : f + after].max(), 0.0, 1.0) for f in frames if f + 2 < signal.shape[0]]
    return np.array(out, dtype=np.float64)


def stray_responses(signal: np.ndarray, elsewhere: np.ndarray, window: int) -> float:
    """The response strength a listener shows in windows that follow no phrase end (its base rate).

    The mean maximum, over windows at least half of whose frames follow no phrase end, of the response
    strength on those frames: nodding all the time scores as high here as after phrase ends.
    """
    if elsewhere.sum() < window // 2 or signal.shape[0] <= window:
        return 0.3
    strength = np.clip(signal.max(axis=1), 0.0, 1.0) * elsewhere
    clear = np.lib.stride_tricks.sliding_window_view(elsewhere, window).mean(axis=1) >= 0.5
    if not clear.any():
        return 0.3
    return float(np.lib.stride_tricks.sliding_window_view(strength, window)[clear].max(axis=1).mean())


def jitter_penalty(listener: np.ndarray) -> float:
    expression = np.median(np.diff(listener[:, NON_BLINK], 2, axis=0).std(axis=0))
    pose = np.diff(listener[:, NECK_POSE], 2, axis=0).std(axis=0).mean()
    return float(np.clip(max((expression - 0.04) / 0.08, (pose - 0.012) / 0.02), 0.0, 1.0))


def range_penalty(listener: np.ndarray) -> float:
    expression = listener[:, EXPRESSION]
    bad = (
        (expression < -0.1).any(axis=1) | (expression > 1.1).any(axis=1) | (expression.sum(axis=1) > 7.5)
        | (np.abs(listener[:, NECK_POSE]) > 0.6).any(axis=1)
        | (listener[:, JAW_OPEN] < -0.1) | (listener[:, JAW_OPEN] > 0.45)
    )  # fmt: skip
    return float(np.clip(bad.mean() / 0.2, 0.0, 1.0))


def talking_penalty(listener: np.ndarray) -> float:
    """A listener's jaw that moves at syllable rate talks along with the speaker."""
    jaw = listener[:, JAW_OPEN]
    return float(np.clip((np.std(jaw - signals.smooth(jaw, 2.0)) - 0.005) / 0.01, 0.0, 1.0))


def copy_penalty(speaker: np.ndarray, listener: np.ndarray, max_lag: int = 40) -> float:
    """Near-identical to the speaker at zero lag, or at any lag up to ``max_lag`` frames."""
    s = speaker - speaker.mean(axis=0)
    best = 0.0
    for lag in range(0, min(max_lag, speaker.shape[0] // 2) + 1):
        a = listener[lag:] - listener[lag:].mean(axis=0)
        b = s[: s.shape[0] - lag]
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        if denom > 1e-9:
            best = max(best, float((a * b).sum() / denom) * (1.0 if lag == 0 else 0.9))
    return float(np.clip((best - 0.85) / 0.1, 0.0, 1.0))


def aliveness(listener: np.ndarray) -> float:
    """1 for a face that moves its head and blinks; 0 for a frozen one."""
    head = np.clip(listener[:, NECK_POSE.start : NECK_POSE.start + 2].std(axis=0).mean() / 0.012, 0.0, 1.0)
    blinks = float(listener[:, BLINKS].max() > 0.5)
    return float(0.6 * head + 0.4 * max(blinks, head))
