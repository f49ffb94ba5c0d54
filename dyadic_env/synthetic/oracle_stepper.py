"""The oracle's causal per-frame shaping reward for one episode (what ``reward="oracle"`` pays each step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dyadic_env.criteria import CRITERIA
from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, NECK_POSE
from dyadic_env.synthetic.emotions import RESPONSE_FIT, VA, display_distribution
from dyadic_env.synthetic.perception import (
    BROWS_UP,
    JAW_OPEN,
    LISTENER_FULL,
    NON_BLINK,
    PITCH,
    RESPONSE_S,
    aliveness,
    as_words,
    check_motion,
    copy_penalty,
    lagged,
    read_intensities,
    response_signal,
    responses,
    speaker_context,
)

if TYPE_CHECKING:
    from dyadic_env.synthetic.oracle import Oracle


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
        self.speaker = check_motion("speaker_motion", speaker_motion)
        self.words = list(speaker_words)
        # Built from the whole speaker track once, but each frame's value uses only data up to that frame
        # (words count from their end time; emotion reading is per frame), so the reward stays causal.
        self.context = speaker_context(self.speaker, self.words, oracle.fps)
        self.frames = np.zeros_like(self.speaker)
        self.t = 0
        lag = round(0.4 * oracle.fps)
        self._q = lagged(self.context.distribution, lag)
        self._i = lagged(self.context.intensity, lag)
        self._v = lagged(self.context.valence, lag)
        close = self.context.phrase_ends + round(RESPONSE_S * oracle.fps) - 1
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
        distribution = display_distribution(read_intensities(frame[None]), LISTENER_FULL)[0]
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
        words = [w for w in as_words(self.words) if w[1] <= self.t / self.oracle.fps]
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
        signal = response_signal(self.frames[start : t + 1], self.oracle.fps)
        strength = float(responses(signal, np.array([f - start]), self.oracle.fps).max(initial=0.0))
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
        brows = rows[:, BROWS_UP].mean(axis=1)
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
            penalty += _ramp(float(np.median(second[NON_BLINK])), 0.03, 0.06)
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
            penalty += copy_penalty(self.speaker[start : t + 1], recent, max_lag=0)
        if n >= 25:
            penalty += 1.0 - aliveness(recent)
        return 0.5 - min(penalty, 1.5)


def _ramp(value: float, start: float, width: float) -> float:
    return min(1.0, max(0.0, (value - start) / width))
