"""Krippendorff's alpha: agreement among any number of raters, with missing ratings.

Follows Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": build the coincidence matrix
``o[c, k]`` from every unit rated by at least two raters (each ordered pair of values in a unit adds
``1 / (m_u - 1)``, with ``m_u`` the unit's number of values), then

    alpha = 1 - (n - 1) * sum_ck o[c, k] * d2(c, k) / sum_ck n_c * n_k * d2(c, k)

where ``n_c`` are the marginals of ``o`` and ``n`` their sum. The squared difference ``d2`` depends on the
level of measurement: nominal (0/1), ordinal (ranks of the observed values' marginals), interval
((c - k)^2) and ratio (((c - k) / (c + k))^2). Ratings 1-5 are ordinal; interval is the common
approximation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")


def _units_values(units: Iterable[Sequence[float]]) -> tuple[list[np.ndarray], np.ndarray]:
    cleaned = []
    for unit in units:
        values = np.asarray([v for v in unit if v is not None], dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size >= 2:  # a unit with one value has no pair to compare
            cleaned.append(values)
    domain = np.unique(np.concatenate(cleaned)) if cleaned else np.zeros(0)
    return cleaned, domain


def unit_coincidences(units: Iterable[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit coincidence matrices ``(U, V, V)`` and the value domain ``(V,)``.

    ``units`` is one sequence of ratings per unit (None or NaN for missing); units with fewer than two
    ratings are dropped, as the method prescribes.
    """
    cleaned, domain = _units_values(units)
    per_unit = np.zeros((len(cleaned), domain.size, domain.size))
    for u, values in enumerate(cleaned):
        idx = np.searchsorted(domain, values)
        counts = np.bincount(idx, minlength=domain.size).astype(np.float64)
        # Ordered pairs of different raters: outer(counts) minus each value paired with itself.
        per_unit[u] = (np.outer(counts, counts) - np.diag(counts)) / (values.size - 1)
    return per_unit, domain


def distance_matrix(domain: np.ndarray, marginals: np.ndarray, level: Level) -> np.ndarray:
    """Squared differences ``d2(c, k)`` between the values in ``domain`` for a level of measurement."""
    c, k = domain[:, None], domain[None, :]
    if level == "nominal":
        return (c != k).astype(np.float64)
    if level == "interval":
        return (c - k) ** 2
    if level == "ratio":
        total = c + k
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(total == 0, 0.0, (c - k) / np.where(total == 0, 1.0, total))
        return d**2
    if level == "ordinal":
        cumulative = np.cumsum(marginals)
        i, j = np.meshgrid(np.arange(domain.size), np.arange(domain.size), indexing="ij")
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        # sum of marginals from the lower value to the higher one, minus half of both ends
        between = cumulative[hi] - np.where(lo > 0, cumulative[np.maximum(lo - 1, 0)], 0.0)
        return (between - (marginals[i] + marginals[j]) / 2.0) ** 2
    raise ValueError(f"level must be one of {LEVELS}, found {level!r}")


def _alpha_from(coincidence: np.ndarray, domain: np.ndarray, level: Level) -> float:
    marginals = coincidence.sum(axis=1)
    n = marginals.sum()
    if n <= 1:
        return float("nan")
    d2 = distance_matrix(domain, marginals, level)
    expected = (marginals[:, None] * marginals[None, :] * d2).sum()
    if expected == 0:
        return float("nan")  # every pairable rating is the same value: agreement is undefined
    return float(1.0 - (n - 1) * (coincidence * d2).sum() / expected)


def krippendorff_alpha(units: Iterable[Sequence[float]], level: Level = "interval") -> float:
    """Krippendorff's alpha of ratings grouped by unit.

    Args:
        units: one sequence of ratings per unit (any number of raters, None/NaN for missing).
        level: level of measurement: nominal, ordinal, interval or ratio.

    Returns:
        alpha in (-inf, 1]; NaN when it is undefined (fewer than two pairable ratings, or no variation).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, found {level!r}")
    per_unit, domain = unit_coincidences(units)
    if per_unit.shape[0] == 0:
        return float("nan")
    return _alpha_from(per_unit.sum(axis=0), domain, level)


def reliability_matrix_to_units(matrix: Sequence[Sequence[float | None]]) -> list[list[float]]:
    """Turn a raters x units matrix (None/NaN missing) into per-unit lists."""
    array = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=np.float64)
    return [list(array[:, u][~np.isnan(array[:, u])]) for u in range(array.shape[1])]


def alpha_bootstrap(
    units: Iterable[Sequence[float]],
    level: Level = "interval",
    *,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """alpha and a percentile bootstrap interval over units: ``(alpha, low, high)``.

    Units are resampled with replacement (seeded); the interval is NaN when alpha is undefined.
    """
    per_unit, domain = unit_coincidences(units)
    if per_unit.shape[0] == 0:
        return float("nan"), float("nan"), float("nan")
    alpha = _alpha_from(per_unit.sum(axis=0), domain, level)
    rng = np.random.default_rng(seed)
    # Drawing units with replacement = weighting each unit's coincidences by how often it was drawn.
    weights = rng.multinomial(
        per_unit.shape[0], np.full(per_unit.shape[0], 1.0 / per_unit.shape[0]), num_samples
    )
    samples = np.array([_alpha_from(np.tensordot(w, per_unit, axes=1), domain, level) for w in weights])
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return alpha, float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return alpha, float(low), float(high)
