"""Simulated annotators: people who rate through the hidden oracle, with bias, noise and carelessness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dyadic_env.synthetic.oracle import CRITERIA, Oracle

CARELESS_MODES: tuple[str, ...] = ("random", "constant")


@dataclass
class SimulatedAnnotator:
    """One simulated rater.

    A careful rater reports ``round(oracle score + bias + noise)`` clipped to 1-5 per criterion; a
    careless one ignores the video: ``"random"`` rates uniformly at random, ``"constant"`` always gives
    ``constant_rating``.
    """

    annotator_id: str
    bias: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CRITERIA, 0.0))
    noise: float = 0.4
    careless: str | None = None
    constant_rating: int = 4
    oracle: Oracle = field(default_factory=Oracle, repr=False)

    def __post_init__(self) -> None:
        if set(self.bias) != set(CRITERIA):
            raise ValueError(f"SimulatedAnnotator.bias: expected keys {CRITERIA}, found {sorted(self.bias)}")
        if self.noise < 0:
            raise ValueError(f"SimulatedAnnotator.noise: expected >= 0, found {self.noise}")
        if self.careless is not None and self.careless not in CARELESS_MODES:
            raise ValueError(
                f"SimulatedAnnotator.careless: expected None or one of {CARELESS_MODES}, found {self.careless!r}"
            )
        if not 1 <= self.constant_rating <= 5:
            raise ValueError(
                f"SimulatedAnnotator.constant_rating: expected 1-5, found {self.constant_rating}"
            )

    def rate(
        self,
        speaker_motion: np.ndarray,
        listener_motion: np.ndarray,
        speaker_words: Sequence[Any],
        rng: np.random.Generator,
    ) -> dict[str, int]:
        """Integer 1-5 ratings of the four criteria for one rendered trajectory."""
        if self.careless == "random":
            return {k: int(rng.integers(1, 6)) for k in CRITERIA}
        if self.careless == "constant":
            return dict.fromkeys(CRITERIA, self.constant_rating)
        scores = self.oracle.score(speaker_motion, listener_motion, speaker_words)
        return self.from_scores(scores, rng)

    def from_scores(self, scores: Mapping[str, float], rng: np.random.Generator) -> dict[str, int]:
        """Ratings from oracle scores already computed (to rate one video by many simulated people)."""
        noisy = {k: scores[k] + self.bias[k] + rng.normal(0.0, self.noise) for k in CRITERIA}
        return {k: int(np.clip(np.rint(v), 1, 5)) for k, v in noisy.items()}


def make_annotators(
    n: int, *, seed: int, careless_fraction: float = 0.1, oracle: Oracle | None = None
) -> list[SimulatedAnnotator]:
    """``n`` simulated annotators with per-person bias (std 0.35 per criterion) and noise (0.25-0.6).

    ``round(careless_fraction * n)`` of them are careless (alternately random and constant raters).
    """
    if n < 1:
        raise ValueError(f"make_annotators: n must be positive, found {n}")
    if not 0.0 <= careless_fraction <= 1.0:
        raise ValueError(f"make_annotators: careless_fraction must be in [0, 1], found {careless_fraction}")
    rng = np.random.default_rng([seed, 7919])
    oracle = oracle or Oracle()
    careless_ids = set(rng.permutation(n)[: round(careless_fraction * n)].tolist())
    annotators = []
    for i in range(n):
        careless = CARELESS_MODES[len([j for j in careless_ids if j < i]) % 2] if i in careless_ids else None
        annotators.append(
            SimulatedAnnotator(
                annotator_id=f"sim-{seed}-{i:03d}",
                bias={k: float(rng.normal(0.0, 0.35)) for k in CRITERIA},
                noise=float(rng.uniform(0.25, 0.6)),
                careless=careless,
                constant_rating=int(rng.integers(3, 6)),
                oracle=oracle,
            )
        )
    return annotators
