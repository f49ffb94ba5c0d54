"""Metric validity: does a metric rank listeners the way preference (here the synthetic oracle) does?

For every metric, the Spearman rank correlation with the oracle's weighted score, computed two ways over
the evaluated agents (reference rows such as the ground truth are left out by the caller):

- **per agent**: each agent's metric and oracle score averaged over the clips, ranked across agents. This
  is the question a results table answers: does the metric order the methods as people would?
- **per clip**: within each clip, the agents' metric and oracle score ranked across agents, the
  correlation averaged over clips (clips where either is constant across agents are left out). This asks
  whether the metric tells a better answer to the same speaker from a worse one.

Both get percentile bootstrap 95 % intervals over clips (resampled with replacement; seeded). A metric
where lower is better (L2, FD, FRDist, ...) agrees with the oracle when its correlation is negative, so the
reported ``agreement`` flips its sign: higher agreement is better for every metric with a direction. Metrics
without one (Variation, Diversity, FRDiv, FRDvs, FRVar: more is not better) are reported as the raw correlation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

# +1: higher is better, -1: lower is better, 0: no direction (the raw correlation is reported).
DIRECTIONS: dict[str, int] = {
    "L2": -1, "FD": -1, "P-FD": -1, "L2 Affect": -1, "Variation": 0, "Diversity": 0,
    "FRCorr": 1, "FRDist": -1, "FRDiv": 0, "FRDvs": 0, "FRVar": 0, "FRSyn": -1,
}  # fmt: skip
BOOTSTRAP = 1000


def metric_validity(
    metrics: Mapping[str, Mapping[str, np.ndarray]],
    oracle: Mapping[str, np.ndarray],
    *,
    pairwise: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> dict[str, dict[str, float | int | None]]:
    """Rank correlation of every metric with the oracle, per agent and per clip, with bootstrap intervals.

    Args:
        metrics: ``{agent: {metric: (N,) per-clip values}}`` over the same N clips (NaN: not defined there).
        oracle: ``{agent: (N,) per-clip weighted oracle scores}``.
        pairwise: ``{agent: {metric: (N, N)}}`` for metrics defined on pairs of clips (FRDvs): the per-agent
            value is the mean over pairs of different clips; such a metric has no per-clip correlation.
        bootstrap: resamples of the clips; seed: seeds them.

    Returns ``{metric: {direction, agreement, low, high (per agent), clip_agreement, clip_low, clip_high,
    clips (used per clip), agents}}``.
    """
    agents = list(oracle)
    if len(agents) < 3:
        raise ValueError(
            f"metric validity ranks agents: expected at least 3 agents, found {len(agents)} ({agents})"
        )
    scores = np.stack([np.asarray(oracle[a], np.float64) for a in agents])
    n = scores.shape[1]
    counts = _resample_counts(n, bootstrap, seed)
    names = [m for m in DIRECTIONS if all(m in metrics[a] for a in agents)]
    names += [
        m for m in DIRECTIONS if pairwise and m not in names and all(m in pairwise.get(a, {}) for a in agents)
    ]
    out = {}
    for name in names:
        sign = DIRECTIONS[name] or 1
        row: dict[str, float | int | None] = {"direction": DIRECTIONS[name], "agents": len(agents)}
        if name in metrics[agents[0]]:
            values = np.stack([np.asarray(metrics[a][name], np.float64) for a in agents])
            point, boot = _per_agent(values, scores, counts)
            per_clip = _per_clip(values, scores)
            used = np.isfinite(per_clip)
            row["clips"] = int(used.sum())
            if used.any():
                clip_boot = (counts[:, used] @ per_clip[used]) / np.maximum(counts[:, used].sum(axis=1), 1)
                row.update(_summary("clip_", sign * np.nanmean(per_clip), sign * clip_boot))
        else:
            matrices = np.stack([np.asarray(pairwise[a][name], np.float64) for a in agents])  # type: ignore[index]
            point, boot = _per_agent_pairwise(matrices, scores, counts)
        row.update(_summary("", sign * point, sign * boot))
        out[name] = row
    return out


def _resample_counts(n: int, bootstrap: int, seed: int) -> np.ndarray:
    """``(B, N)``: how often each clip is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(bootstrap, n))
    return np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair of ``(B, A)`` arrays (NaN where a row is constant)."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    norm = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (rx * ry).sum(axis=1) / norm, np.nan)


def _weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(B, A)``: per resample, each agent's mean over its finite clips."""
    finite = np.isfinite(values)
    total = weights @ np.where(finite, values, 0.0).T
    return total / np.maximum(weights @ finite.T.astype(np.float64), 1e-12)


def _per_agent(values: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> tuple[float, np.ndarray]:
    ones = np.ones((1, values.shape[1]))
    point = _spearman_rows(_weighted_means(values, ones), _weighted_means(scores, ones))[0]
    return float(point), _spearman_rows(_weighted_means(values, counts), _weighted_means(scores, counts))


def _per_agent_pairwise(
    matrices: np.ndarray, scores: np.ndarray, counts: np.ndarray
) -> tuple[float, np.ndarray]:
    """Per-agent correlation of a pair metric: pairs of different clips weighted by how often both are drawn."""
    matrices = matrices * (1.0 - np.eye(matrices.shape[1]))  # a clip paired with itself is no pair

    def means(weights: np.ndarray) -> np.ndarray:
        # sum over pairs i != j of w_i w_j M_ij, over sum of w_i w_j: (sum w)^2 - sum w^2
        total = np.einsum("baj,bj->ba", np.einsum("bi,aij->baj", weights, matrices), weights)
        pairs = weights.sum(axis=1) ** 2 - (weights**2).sum(axis=1)
        return total / np.maximum(pairs, 1e-12)[:, None]

    ones = np.ones((1, matrices.shape[1]))
    point = _spearman_rows(means(ones), _weighted_means(scores, ones))[0]
    return float(point), _spearman_rows(means(counts), _weighted_means(scores, counts))


def _per_clip(values: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(N,)``: per clip, the Spearman correlation across agents (NaN where either side is constant)."""
    usable = np.isfinite(values).all(axis=0)
    out = np.full(values.shape[1], np.nan)
    if usable.any():
        out[usable] = _spearman_rows(values[:, usable].T, scores[:, usable].T)
    return out


def _summary(prefix: str, point: float, boot: np.ndarray) -> dict[str, float | None]:
    boot = boot[np.isfinite(boot)]
    low, high = np.percentile(boot, [2.5, 97.5]) if len(boot) else (np.nan, np.nan)
    return {f"{prefix}agreement": _num(point), f"{prefix}low": _num(low), f"{prefix}high": _num(high)}


def _num(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def validity_table(
    validity: Mapping[str, Mapping[str, float | int | None]], order: Sequence[str] | None = None
) -> str:
    """Markdown: per metric, its agreement with the oracle per agent and per clip, with 95 % intervals."""
    lines = [
        "| Metric | better | agreement per agent [95% CI] | agreement per clip [95% CI] |",
        "|---|---|---|---|",
    ]
    for name in order or list(validity):
        if name not in validity:
            continue
        row = validity[name]
        better = {1: "higher", -1: "lower", 0: "- (raw ρ)"}[int(row["direction"] or 0)]
        lines.append(f"| {name} | {better} | {_cell(row, '')} | {_cell(row, 'clip_')} |")
    return "\n".join(lines)


def _cell(row: Mapping[str, float | int | None], prefix: str) -> str:
    point = row.get(f"{prefix}agreement")
    if point is None:
        return "-"
    return f"{point:+.2f} [{row[f'{prefix}low']:+.2f}, {row[f'{prefix}high']:+.2f}]"
