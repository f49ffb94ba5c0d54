"""User study: mean opinion scores per method and criterion with 95 % confidence intervals (paper Table III).

A study campaign puts several policies' outputs on the same clips into one group per clip (see
:func:`human_feedback.candidates.collect`); annotators rate them blind like any other campaign. The table
below is computed from the regular pages; broken candidates and repeated pages are left out.

Intervals: ``bootstrap`` (default) resamples clips with replacement, since ratings of one clip are not
independent; ``t`` is the Student-t interval over individual ratings (narrower, assumes independence).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from human_feedback.criteria import CRITERIA
from human_feedback.ratings import RatingRow, scoring_rows

# Paper Table III order and headers.
TABLE_ORDER = ("appropriateness", "empathy", "engagement", "naturalness")
TABLE_HEADERS = {"appropriateness": "App.", "empathy": "Emp.", "engagement": "Eng.", "naturalness": "Nat."}


def method_name(row: RatingRow) -> str:
    return "Ground truth" if row.source == "ground_truth" else row.policy_name


def mos_table(
    rows: Sequence[RatingRow],
    *,
    ci: str = "bootstrap",
    confidence: float = 0.95,
    num_samples: int = 2000,
    seed: int = 0,
    order: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One row per method: ``{"method", "ratings", "clips", criterion: {"mean", "low", "high"}}``.

    Methods named in ``order`` come first, in that order (e.g. the policies as given to the study), then
    the others by first appearance; the ground truth is called ``Ground truth``.
    """
    if ci not in ("bootstrap", "t"):
        raise ValueError(f"ci must be 'bootstrap' or 't', found {ci!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), found {confidence}")
    rows = scoring_rows(rows)
    methods: dict[str, list[RatingRow]] = defaultdict(list)
    for r in rows:
        methods[method_name(r)].append(r)
    rank = {name: i for i, name in enumerate(order)}
    methods = dict(sorted(methods.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    clips = sorted({r.clip_id for r in rows})
    clip_index = {c: i for i, c in enumerate(clips)}
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(clips), np.full(len(clips), 1 / len(clips)), num_samples) if clips else None
    table = []
    for method, rs in methods.items():
        entry: dict[str, Any] = {"method": method, "ratings": len(rs), "clips": len({r.clip_id for r in rs})}
        for c in CRITERIA:
            values = np.array([getattr(r, c.key) for r in rs], dtype=np.float64)
            mean = float(values.mean())
            if ci == "t":
                low, high = _t_interval(values, confidence)
            else:
                sums, counts = np.zeros(len(clips)), np.zeros(len(clips))
                np.add.at(sums, [clip_index[r.clip_id] for r in rs], values)
                np.add.at(counts, [clip_index[r.clip_id] for r in rs], 1.0)
                low, high = _bootstrap(sums, counts, weights, confidence)
            entry[c.key] = {"mean": mean, "low": low, "high": high}
        table.append(entry)
    return table


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy import stats

    if values.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean() - half), float(values.mean() + half)


def _bootstrap(sums: np.ndarray, counts: np.ndarray, weights: Any, confidence: float) -> tuple[float, float]:
    if weights is None or (counts > 0).sum() < 2:
        return float("nan"), float("nan")
    totals, numbers = weights @ sums, weights @ counts
    means = totals[numbers > 0] / numbers[numbers > 0]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def format_mos_table(table: Sequence[dict[str, Any]], *, digits: int = 2, markdown: bool = True) -> str:
    """The table shaped like paper Table III: ``mean [low, high]`` per criterion, best mean in bold."""
    best = {k: max((row[k]["mean"] for row in table), default=float("nan")) for k in TABLE_ORDER}

    def cell(row: dict[str, Any], key: str) -> str:
        v = row[key]
        text = f"{v['mean']:.{digits}f}"
        if np.isfinite(v["low"]):
            text += f" [{v['low']:.{digits}f}, {v['high']:.{digits}f}]"
        return f"**{text}**" if markdown and abs(v["mean"] - best[key]) < 1e-12 and len(table) > 1 else text

    headers = ["Method", *(TABLE_HEADERS[k] for k in TABLE_ORDER), "n"]
    body = [[row["method"], *(cell(row, k) for k in TABLE_ORDER), str(row["ratings"])] for row in table]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [headers, *body])
