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

The readings live in :mod:`dyadic_env.synthetic.perception`, the stepper in
:mod:`dyadic_env.synthetic.oracle_stepper`; both keep their old import path here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dyadic_env.criteria import CRITERIA
from dyadic_env.synthetic.emotions import RESPONSE_FIT
from dyadic_env.synthetic.oracle_stepper import OracleStepper
from dyadic_env.synthetic.perception import (
    RESPONSE_S,
    ListenerReading,
    SpeakerContext,
    aliveness,
    check_motion,
    copy_penalty,
    jitter_penalty,
    lagged,
    range_penalty,
    read_listener,
    response_signal,
    responses,
    speaker_context,
    stray_responses,
    talking_penalty,
)

DEFAULT_WEIGHTS: dict[str, float] = dict.fromkeys(CRITERIA, 0.25)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 1e-9 else 0.0


def _to_score(raw: float, low: float, high: float) -> float:
    return float(1.0 + 4.0 * np.clip((raw - low) / (high - low), 0.0, 1.0))


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
        speaker = check_motion("speaker_motion", speaker_motion)
        listener = check_motion("listener_motion", listener_motion, speaker.shape[0])
        context = speaker_context(speaker, speaker_words, self.fps)
        reading = read_listener(listener)
        jitter = jitter_penalty(listener)
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
            q = lagged(context.distribution, lag)
            fit = np.einsum("ts,sl,tl->t", q, RESPONSE_FIT, reading.distribution)
            weight = 0.25 + lagged(context.intensity, lag)
            best = max(best, float((weight * fit).sum() / weight.sum()))
        self._raw["appropriateness"] = best
        return _to_score(best, 0.3, 0.8)

    def _empathy(self, context: SpeakerContext, reading: ListenerReading) -> float:
        agreement, tracking = -np.inf, -np.inf
        variability = float(np.clip(context.intensity.std() / 0.15, 0.0, 1.0))
        level = 1.0 - np.clip(abs(reading.intensity.mean() - context.intensity.mean()) / 0.35, 0.0, 1.0)
        for lag in self.lags:
            v_s = lagged(context.valence, lag)
            weight = np.abs(v_s)
            agree = np.clip(reading.valence * np.sign(v_s) / 0.2, -1.0, 1.0)
            agreement = max(agreement, float((weight * agree).sum() / max(weight.sum(), 1e-9)))
            follow = max(0.0, _corr(reading.intensity, lagged(context.intensity, lag)))
            tracking = max(tracking, variability * follow + (1.0 - variability) * level)
        raw = 0.5 * max(0.0, agreement) + 0.5 * tracking * level**0.5
        self._raw["empathy"] = raw
        return _to_score(raw, 0.1, 0.75)

    def _engagement(self, context: SpeakerContext, listener: np.ndarray, jitter: float) -> float:
        signal = response_signal(listener, self.fps)
        at_ends = responses(signal, context.phrase_ends, self.fps)
        if at_ends.size == 0:  # the speaker never pauses: judge only that the face is alive
            return _to_score(0.3 * aliveness(listener) * (1 - jitter), 0.0, 0.5)
        baseline = stray_responses(signal, ~context.response_window, round(RESPONSE_S * self.fps))
        raw = 0.15 * float(at_ends.mean()) + 0.85 * max(0.0, float(at_ends.mean()) - baseline)
        return _to_score(raw * (1.0 - jitter), 0.05, 0.6)

    def _naturalness(self, speaker: np.ndarray, listener: np.ndarray, jitter: float) -> float:
        penalties = [
            jitter,
            range_penalty(listener),
            talking_penalty(listener),
            copy_penalty(speaker, listener),
        ]
        penalties.append(1.0 - aliveness(listener))
        kept = float(np.prod([1.0 - p for p in penalties]))
        return _to_score(kept, 0.0, 1.0)


__all__ = [
    "CRITERIA", "DEFAULT_WEIGHTS", "ListenerReading", "Oracle", "OracleStepper", "SpeakerContext",
    "read_listener", "speaker_context",
]  # fmt: skip
