"""Krippendorff's alpha (the maintained ``krippendorff`` package) with a bootstrap interval over units.

Ratings come grouped by unit (here: a candidate, rated by any number of annotators, with gaps). Units
with fewer than two ratings carry no pair to compare and are dropped, as the method prescribes; alpha is
NaN where it is undefined (no pairable ratings, or a single value throughout). Ratings 1-5 are ordinal;
interval is the common approximation. The interval resamples units with replacement (seeded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import krippendorff
import numpy as np

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")


def value_counts(units: Iterable[Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """How often each value was given in each unit, ``(U, V)``, and the value domain ``(V,)``; units with
    fewer than two ratings are dropped, None and NaN are missing ratings."""
    cleaned = []
    for unit in units:
        values = np.asarray([v for v in unit if v is not None], dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size >= 2:
            cleaned.append(values)
    domain = np.unique(np.concatenate(cleaned)) if cleaned else np.zeros(0)
    counts = np.zeros((len(cleaned), domain.size))
    for u, values in enumerate(cleaned):
        counts[u] = np.bincount(np.searchsorted(domain, values), minlength=domain.size)
    return counts, domain


def _alpha(counts: np.ndarray, domain: np.ndarray, level: Level) -> float:
    if counts.shape[0] == 0 or domain.size < 2:
        return float("nan")  # nothing to pair, or one value throughout: agreement is undefined
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level))


def _check_level(level: object) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, found {level!r}")


def krippendorff_alpha(units: Iterable[Sequence[float | None]], level: Level = "interval") -> float:
    """Krippendorff's alpha of ratings grouped by unit.

    Args:
        units: one sequence of ratings per unit (any number of raters, None/NaN for missing).
        level: level of measurement: nominal, ordinal, interval or ratio.

    Returns:
        alpha in (-inf, 1]; NaN when it is undefined.
    """
    _check_level(level)
    return _alpha(*value_counts(units), level)


def reliability_matrix_to_units(matrix: Sequence[Sequence[float | None]]) -> list[list[float]]:
    """Turn a raters x units matrix (None/NaN missing) into per-unit lists."""
    array = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=np.float64)
    return [list(array[:, u][~np.isnan(array[:, u])]) for u in range(array.shape[1])]


def alpha_bootstrap(
    units: Iterable[Sequence[float | None]],
    level: Level = "interval",
    *,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """alpha and a percentile bootstrap interval over units: ``(alpha, low, high)``.

    Units are resampled with replacement (seeded); the interval is NaN when alpha is undefined.
    """
    _check_level(level)
    counts, domain = value_counts(units)
    alpha = _alpha(counts, domain, level)
    if counts.shape[0] == 0:
        return alpha, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # How often each unit is drawn in each resample; the domain stays that of the full data, so ordinal
    # distances are comparable across resamples.
    draws = rng.multinomial(counts.shape[0], np.full(counts.shape[0], 1.0 / counts.shape[0]), num_samples)
    samples = np.array([_alpha(np.repeat(counts, w, axis=0), domain, level) for w in draws])
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return alpha, float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return alpha, float(low), float(high)
