"""The hidden oracle: scores a listener trajectory on the paper's four criteria, like a person would.

It sees only what a person sees: the speaker's motion, the listener's motion and the speaker's words;
never generator internals. Every criterion is on a 1-5 scale; ``weighted`` is paper eq. 10.

- **appropriateness**: the emotion the listener's face shows (read through the emotion prototypes)
  against the fitting response (:data:`~dyadic_env.synthetic.emotions.RESPONSE_FIT`) to what the speaker
  shows *and says* (emotion words from the lexicons), with the best plausible lag (0.2-0.8 s); frames
  where the speaker is emotional count more. A smile at disgust, sadness or anger has a negative fit.
- **empathy**: the listener's valence agrees with the speaker's (sympathetic sign), and the listener's
  affect intensity follows the speaker's with a lag (correlation where the speaker's intensity varies,
  level match where it does not).
- **engagement**: responses (nods, brow raises, expression changes) right after the speaker's phrase
  ends, compared with mid-phrase moments (so nodding all the time does not count), on a face that is not
  chaotic.
- **naturalness**: no jitter, values in the ranges of real faces, a mouth that does not talk along, not a
  (time-shifted) copy of the speaker, not frozen (blinks and head motion).

The stepper gives a causal per-frame shaping reward built from the same readings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import lfilter

from dyadic_env.criteria import CRITERIA
from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, JAW_POSE, NECK_POSE, ict_index
from dyadic_env.synthetic import signals
from dyadic_env.synthetic.emotions import (
    RESPONSE_FIT,
    SPEAKER_EMOTIONS,
    VA,
    display_distribution,
    read_emotions,
)
from dyadic_env.synthetic.lexicon import word_emotion

DEFAULT_WEIGHTS: dict[str, float] = dict.fromkeys(CRITERIA, 0.25)

_SPEAKER_SHOWN = SPEAKER_EMOTIONS[1:]
_DEADZONE = 0.05  # read intensities below this are tracker noise
_WORD_DECAY_S = 1.5
_WORD_GAIN = 1.5
_PHRASE_GAP_S = 0.25
_LISTENER_FULL = 0.6
_RESPONSE_S = 1.2  # a response to a phrase end comes within this many seconds
_BLINKS = [ict_index("eyeBlink_L"), ict_index("eyeBlink_R")]
_BROWS_UP = [ict_index(n) for n in ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R")]
_NON_BLINK = np.setdiff1d(np.arange(50), _BLINKS)
PITCH = NECK_POSE.start
JAW_OPEN = JAW_POSE.start


def _as_words(words: Iterable[Any]) -> list[tuple[float, float, str]]:
    """Accept ``Word`` tuples, ``(start, end, text)`` triples or dicts with those keys."""
    out = []
    for w in words:
        if isinstance(w, Mapping):
            out.append((float(w.get("start", w["end"])), float(w["end"]), str(w["text"])))
        else:
            start, end, text = w
            out.append((float(start), float(end), str(text)))
    return out


def _check_motion(name: str, motion: np.ndarray, frames: int | None = None) -> np.ndarray:
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 2 or motion.shape[1] != FRAME_DIM or (frames is not None and motion.shape[0] != frames):
        expected = f"({frames if frames is not None else 'T'}, {FRAME_DIM})"
        raise ValueError(f"{name}: expected shape {expected}, found {motion.shape}")
    if motion.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 frames to score, found {motion.shape[0]}")
    if not np.isfinite(motion).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return motion


def _read(motion: np.ndarray, emotions: tuple[str, ...] | None = None) -> np.ndarray:
    raw = read_emotions(motion) if emotions is None else read_emotions(motion, emotions)
    return np.clip(raw - _DEADZONE, 0.0, None) / (1.0 - _DEADZONE)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 1e-9 else 0.0


def _lagged(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` delayed by ``lag`` frames (the first frames repeat ``x[0]``)."""
    if lag <= 0:
        return x
    return np.concatenate([np.repeat(x[:1], lag, axis=0), x[:-lag]], axis=0)


def _to_score(raw: float, low: float, high: float) -> float:
    return float(1.0 + 4.0 * np.clip((raw - low) / (high - low), 0.0, 1.0))


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
    face = _read(speaker_motion, _SPEAKER_SHOWN)
    words = _as_words(speaker_words)
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
        window[end + 1 : end + round(_RESPONSE_S * fps)] = True
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
    distribution = display_distribution(_read(listener_motion), _LISTENER_FULL)
    return ListenerReading(distribution, 1.0 - distribution[:, 0], distribution @ VA[:, 0])


class Oracle:
    """Scores listener trajectories on empathy, appropriateness, engagement and naturalness (1-5).

    Args:
        fps: frames per second of the motion it scores.
        weights: the alpha of paper eq. 10 per criterion (non-negative, summing to 1); default 0.25 each.
    """

    def __init__(self, fps: float = 25.0, weights: Mapping[str, float] | None = None) -> None:
        if not 0 < fps <= 1000:
            raise ValueError(f"Oracle: fps must be in (0, 1000], found {fps}")
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        if set(weights) != set(CRITERIA):
            raise ValueError(
                f"Oracle: weights must have exactly the keys {CRITERIA}, found {sorted(weights)}"
            )
        if any(w < 0 or w > 1 for w in weights.values()) or abs(sum(weights.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"Oracle: weights must be in [0, 1] and sum to 1 (paper eq. 10), found {weights}"
            )
        self.fps = float(fps)
        self.weights = weights
        self._raw: dict[str, float] = {}
        self.lags = np.array([round(s * self.fps) for s in (0.2, 0.35, 0.5, 0.65, 0.8)])

    def score(
        self, speaker_motion: np.ndarray, listener_motion: np.ndarray, speaker_words: Sequence[Any] = ()
    ) -> dict[str, float]:
        """Scores of one trajectory: the four criteria in [1, 5] and ``weighted`` (paper eq. 10)."""
        speaker = _check_motion("speaker_motion", speaker_motion)
        listener = _check_motion("listener_motion", listener_motion, speaker.shape[0])
        context = speaker_context(speaker, speaker_words, self.fps)
        reading = read_listener(listener)
        jitter = _jitter_penalty(listener)
        scores = {
            "empathy": self._empathy(context, reading),
            "appropriateness": self._appropriateness(context, reading),
            "engagement": self._engagement(context, listener, jitter),
            "naturalness": self._naturalness(speaker, listener, jitter),
        }
        scores["weighted"] = self.weighted(scores)
        return scores

    def weighted(self, scores: Mapping[str, float]) -> float:
        """Paper eq. 10: the alpha-weighted sum of the four criteria."""
        return float(sum(self.weights[k] * scores[k] for k in CRITERIA))

    def stepper(self, speaker_motion: np.ndarray, speaker_words: Sequence[Any] = ()) -> OracleStepper:
        """A causal per-frame shaping reward for one episode (see :class:`OracleStepper`)."""
        return OracleStepper(self, speaker_motion, speaker_words)

    # --------------------------------------------------------------------------------------- criteria

    def _appropriateness(self, context: SpeakerContext, reading: ListenerReading) -> float:
        best = -np.inf
        for lag in self.lags:
            q = _lagged(context.distribution, lag)
            fit = np.einsum("ts,sl,tl->t", q, RESPONSE_FIT, reading.distribution)
            weight = 0.25 + _lagged(context.intensity, lag)
            best = max(best, float((weight * fit).sum() / weight.sum()))
        self._raw["appropriateness"] = best
        return _to_score(best, 0.3, 0.8)

    def _empathy(self, context: SpeakerContext, reading: ListenerReading) -> float:
        agreement, tracking = -np.inf, -np.inf
        variability = float(np.clip(context.intensity.std() / 0.15, 0.0, 1.0))
        level = 1.0 - np.clip(abs(reading.intensity.mean() - context.intensity.mean()) / 0.35, 0.0, 1.0)
        for lag in self.lags:
            v_s = _lagged(context.valence, lag)
            weight = np.abs(v_s)
            agree = np.clip(reading.valence * np.sign(v_s) / 0.2, -1.0, 1.0)
            agreement = max(agreement, float((weight * agree).sum() / max(weight.sum(), 1e-9)))
            follow = max(0.0, _corr(reading.intensity, _lagged(context.intensity, lag)))
            tracking = max(tracking, variability * follow + (1.0 - variability) * level)
        raw = 0.5 * max(0.0, agreement) + 0.5 * tracking * level**0.5
        self._raw["empathy"] = raw
        return _to_score(raw, 0.1, 0.75)

    def _engagement(self, context: SpeakerContext, listener: np.ndarray, jitter: float) -> float:
        signal = _response_signal(listener, self.fps)
        at_ends = _responses(signal, context.phrase_ends, self.fps)
        if at_ends.size == 0:  # the speaker never pauses: judge only that the face is alive
            return _to_score(0.3 * _aliveness(listener) * (1 - jitter), 0.0, 0.5)
        baseline = _stray_responses(signal, ~context.response_window, round(_RESPONSE_S * self.fps))
        raw = 0.15 * float(at_ends.mean()) + 0.85 * max(0.0, float(at_ends.mean()) - baseline)
        return _to_score(raw * (1.0 - jitter), 0.05, 0.6)

    def _naturalness(self, speaker: np.ndarray, listener: np.ndarray, jitter: float) -> float:
        penalties = [
            jitter,
            _range_penalty(listener),
            _talking_penalty(listener),
            _copy_penalty(speaker, listener),
        ]
        penalties.append(1.0 - _aliveness(listener))
        kept = float(np.prod([1.0 - p for p in penalties]))
        return _to_score(kept, 0.0, 1.0)


# ------------------------------------------------------------------------------------------- readings


def _bump(x: np.ndarray, half_width: int) -> np.ndarray:
    """How far each value rises above both neighbours ``half_width`` frames away (a bump, not a step)."""
    padded = np.concatenate([np.repeat(x[:1], half_width), x, np.repeat(x[-1:], half_width)])
    return x - np.maximum(padded[: x.shape[0]], padded[2 * half_width :])


def _response_signal(listener: np.ndarray, fps: float) -> np.ndarray:
    """``(T, 2)`` nod and brow-flash evidence in about [0, 1] per frame.

    A nod (head pitch down and back) or a brow flash is a bump of about half a second; a step (an
    expression change, a head that sinks and stays) or slow drift is not.
    """
    half = round(0.32 * fps)  # keep in step with OracleStepper._half
    nod = _bump(listener[:, PITCH], half) / 0.04
    brow = _bump(listener[:, _BROWS_UP].mean(axis=1), half) / 0.12
    return np.stack([nod, brow], axis=1)


def _responses(signal: np.ndarray, frames: np.ndarray, fps: float) -> np.ndarray:
    """Response strength in [0, 1] in the 1.3 s after each of ``frames``."""
    after = round(_RESPONSE_S * fps)
    out = [np.clip(signal[f + 1 : f + after].max(), 0.0, 1.0) for f in frames if f + 2 < signal.shape[0]]
    return np.array(out, dtype=np.float64)


def _stray_responses(signal: np.ndarray, elsewhere: np.ndarray, window: int) -> float:
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


def _jitter_penalty(listener: np.ndarray) -> float:
    expression = np.median(np.diff(listener[:, _NON_BLINK], 2, axis=0).std(axis=0))
    pose = np.diff(listener[:, NECK_POSE], 2, axis=0).std(axis=0).mean()
    return float(np.clip(max((expression - 0.04) / 0.08, (pose - 0.012) / 0.02), 0.0, 1.0))


def _range_penalty(listener: np.ndarray) -> float:
    expression = listener[:, EXPRESSION]
    bad = (
        (expression < -0.1).any(axis=1) | (expression > 1.1).any(axis=1) | (expression.sum(axis=1) > 7.5)
        | (np.abs(listener[:, NECK_POSE]) > 0.6).any(axis=1)
        | (listener[:, JAW_OPEN] < -0.1) | (listener[:, JAW_OPEN] > 0.45)
    )  # fmt: skip
    return float(np.clip(bad.mean() / 0.2, 0.0, 1.0))


def _talking_penalty(listener: np.ndarray) -> float:
    """A listener's jaw that moves at syllable rate talks along with the speaker."""
    jaw = listener[:, JAW_OPEN]
    return float(np.clip((np.std(jaw - signals.smooth(jaw, 2.0)) - 0.005) / 0.01, 0.0, 1.0))


def _copy_penalty(speaker: np.ndarray, listener: np.ndarray, max_lag: int = 40) -> float:
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


def _aliveness(listener: np.ndarray) -> float:
    """1 for a face that moves its head and blinks; 0 for a frozen one."""
    head = np.clip(listener[:, NECK_POSE.start : NECK_POSE.start + 2].std(axis=0).mean() / 0.012, 0.0, 1.0)
    blinks = float(listener[:, _BLINKS].max() > 0.5)
    return float(0.6 * head + 0.4 * max(blinks, head))


# ------------------------------------------------------------------------------------------- stepper


class OracleStepper:
    """Causal per-frame shaping reward for one episode; ``step`` costs O(window) time.

    ``step(frame)`` places the listener frame for the next time step and returns a reward built from
    what has happened up to that frame, each term weighted by the oracle's alphas: the fit of the
    displayed emotion to the speaker context 0.4 s earlier (appropriateness) and agreement of valence and
    intensity (empathy), each in about [-1, 1] per frame; a one-off bonus when the response window after
    a phrase end closes (up to about +0.65 x fps for a clear nod or brow flash, down to -0.35 x fps for
    none) and a penalty for nods and brow flashes elsewhere (engagement); penalties for jitter,
    out-of-range values, a talking jaw, copying the speaker and a frozen face (naturalness, in
    [-1, 0.5]). ``episode_scores()`` returns the full :meth:`Oracle.score` of the frames placed so far.
    """

    window = 50

    def __init__(self, oracle: Oracle, speaker_motion: np.ndarray, speaker_words: Sequence[Any] = ()) -> None:
        self.oracle = oracle
        self.speaker = _check_motion("speaker_motion", speaker_motion)
        self.words = list(speaker_words)
        # Built from the whole speaker track once, but each frame's value uses only data up to that frame
        # (words count from their end time; emotion reading is per frame), so the reward stays causal.
        self.context = speaker_context(self.speaker, self.words, oracle.fps)
        self.frames = np.zeros_like(self.speaker)
        self.t = 0
        lag = round(0.4 * oracle.fps)
        self._q = _lagged(self.context.distribution, lag)
        self._i = _lagged(self.context.intensity, lag)
        self._v = _lagged(self.context.valence, lag)
        close = self.context.phrase_ends + round(_RESPONSE_S * oracle.fps) - 1
        self._closing = {int(c): int(f) for f, c in zip(self.context.phrase_ends, close)}
        self._half = round(0.32 * oracle.fps)
        self.total = 0.0

    @property
    def num_frames(self) -> int:
        return int(self.speaker.shape[0])

    def step(self, listener_frame: np.ndarray) -> float:
        """Place the listener frame of the current time step; return its shaping reward."""
        if self.t >= self.num_frames:
            raise IndexError(f"OracleStepper: the episode has {self.num_frames} frames; no step left")
        frame = np.asarray(listener_frame, dtype=np.float64).reshape(-1)
        if frame.shape != (FRAME_DIM,) or not np.isfinite(frame).all():
            raise ValueError(
                f"OracleStepper.step: expected a finite frame of shape ({FRAME_DIM},), found {frame.shape}"
            )
        t = self.t
        self.frames[t] = frame
        self.t += 1
        w = self.oracle.weights
        distribution = display_distribution(_read(frame[None]), _LISTENER_FULL)[0]
        reward = (
            w["appropriateness"] * self._appropriateness(t, distribution)
            + w["empathy"] * self._empathy(t, distribution)
            + w["engagement"] * self._engagement(t) + w["naturalness"] * self._naturalness(t)
        )  # fmt: skip
        self.total += reward
        return float(reward)

    def episode_scores(self) -> dict[str, float]:
        """The oracle's scores of the frames placed so far (the whole episode when it is over).

        Fewer than 2 frames show no behaviour to judge: every criterion then gets the lowest score, 1.
        """
        if self.t < 2:
            scores = dict.fromkeys(CRITERIA, 1.0)
            return scores | {"weighted": self.oracle.weighted(scores)}
        words = [w for w in _as_words(self.words) if w[1] <= self.t / self.oracle.fps]
        return self.oracle.score(self.speaker[: self.t], self.frames[: self.t], words)

    def _appropriateness(self, t: int, distribution: np.ndarray) -> float:
        fit = float(self._q[t] @ RESPONSE_FIT @ distribution)
        return (0.5 + self._i[t]) * (fit - 0.45) / 0.55

    def _empathy(self, t: int, distribution: np.ndarray) -> float:
        intensity, valence = 1.0 - distribution[0], float(distribution @ VA[:, 0])
        agree = float(np.clip(valence * np.sign(self._v[t]) / 0.2, -1, 1)) * min(1.0, abs(self._v[t]) / 0.3)
        match = 1.0 - min(1.0, abs(intensity - self._i[t]) / 0.35) * 2.0
        return 0.5 * agree + 0.5 * match

    def _engagement(self, t: int) -> float:
        if t not in self._closing:
            return self._stray_response_penalty(t)
        f = self._closing[t]
        start = max(0, f - round(0.5 * self.oracle.fps))
        signal = _response_signal(self.frames[start : t + 1], self.oracle.fps)
        strength = float(_responses(signal, np.array([f - start]), self.oracle.fps).max(initial=0.0))
        # One bonus per phrase end, scaled so it weighs like about a second of per-frame terms.
        return (strength - 0.35) * self.oracle.fps

    def _stray_response_penalty(self, t: int) -> float:
        """Minus the nod or brow flash that peaks ``half`` frames ago outside any response window.

        Judged with a delay of ``half`` frames (a bump needs frames on both sides); by then whether that
        frame followed a phrase end is certain, so the penalty stays causal.
        """
        u = t - self._half
        if u - self._half < 0 or self.context.response_window[u]:
            return 0.0
        rows = self.frames[[u - self._half, u, t]]
        pitch = rows[1, PITCH] - max(rows[0, PITCH], rows[2, PITCH])
        brows = rows[:, _BROWS_UP].mean(axis=1)
        brow = brows[1] - max(brows[0], brows[2])
        return -2.0 * _ramp(max(pitch / 0.04, brow / 0.12), 0.0, 1.0)

    def _naturalness(self, t: int) -> float:
        """Penalties of the last ``window`` frames, in scalar arithmetic where possible (it runs every step)."""
        start = max(0, t - self.window + 1)
        recent = self.frames[start : t + 1]
        frame, n = recent[-1], recent.shape[0]
        penalty = 0.0
        if n >= 3:
            second = np.abs(frame - 2 * recent[-2] + recent[-3])
            penalty += _ramp(float(np.median(second[_NON_BLINK])), 0.03, 0.06)
            penalty += _ramp(float(second[NECK_POSE].mean()), 0.01, 0.02)
        expression = frame[EXPRESSION]
        if (
            expression.min() < -0.1 or expression.max() > 1.1 or expression.sum() > 7.5
            or np.abs(frame[NECK_POSE]).max() > 0.6 or not -0.1 <= frame[JAW_OPEN] <= 0.45
        ):  # fmt: skip
            penalty += 0.2
        if n >= 10:
            jaw = recent[-10:, JAW_OPEN]
            penalty += _ramp(float(np.std(jaw[1:-1] - (jaw[:-2] + jaw[1:-1] + jaw[2:]) / 3.0)), 0.005, 0.01)
            penalty += _copy_penalty(self.speaker[start : t + 1], recent, max_lag=0)
        if n >= 25:
            penalty += 1.0 - _aliveness(recent)
        return 0.5 - min(penalty, 1.5)


def _ramp(value: float, start: float, width: float) -> float:
    return min(1.0, max(0.0, (value - start) / width))
