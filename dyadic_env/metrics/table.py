"""Markdown tables shaped like the paper's Tables I and II (plus the oracle's criteria on synthetic data),
and REACT's table of appropriate-reaction metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Column = tuple[str, str, float]
# (column title, result key, scale); lower is better for the first four and L2 Affect.
COLUMNS: tuple[Column, ...] = (
    ("L2 ↓", "L2", 1.0), ("FD ↓", "FD", 1.0), ("Variation", "Variation", 1.0),
    ("Diversity", "Diversity", 1.0), ("P-FD ↓", "P-FD", 1.0), ("L2 Affect(10^2) ↓", "L2 Affect", 100.0),
    ("Emp. ↑", "empathy", 1.0), ("App. ↑", "appropriateness", 1.0), ("Eng. ↑", "engagement", 1.0),
    ("Nat. ↑", "naturalness", 1.0), ("Oracle ↑", "weighted", 1.0),
)  # fmt: skip
# REACT's figures (dyadic_env.metrics.react): FRCorr and FRDist summed over the K predictions as REACT
# reports them, then per prediction; FRDiv, FRDvs, FRVar describe the spread of the predictions.
REACT_COLUMNS: tuple[Column, ...] = (
    ("FRCorr ↑", "FRCorr", 1.0), ("FRCorr/pred ↑", "FRCorr/pred", 1.0), ("FRDist ↓", "FRDist", 1.0),
    ("FRDist/pred ↓", "FRDist/pred", 1.0), ("FRDiv", "FRDiv", 1.0), ("FRDvs", "FRDvs", 1.0),
    ("FRVar", "FRVar", 1.0), ("FRSyn ↓", "FRSyn", 1.0), ("Oracle ↑", "weighted", 1.0),
)  # fmt: skip


def metrics_table(
    rows: Mapping[str, Mapping[str, float]], digits: int = 4, columns: Sequence[Column] = COLUMNS
) -> str:
    """Render ``{method: results}`` as a Markdown table; columns no row has are left out, gaps are blank."""
    shown = [c for c in columns if any(c[1] in r for r in rows.values())]
    lines = ["| Method | " + " | ".join(c[0] for c in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for method, result in rows.items():
        cells = [f"{result[key] * scale:.{digits}f}" if key in result else "" for _, key, scale in shown]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def react_table(rows: Mapping[str, Mapping[str, float]], digits: int = 4) -> str:
    """REACT's table (:data:`REACT_COLUMNS`) of ``{method: react_metrics(...) (+ oracle)}``."""
    return metrics_table(rows, digits, REACT_COLUMNS)
