"""Markdown tables shaped like the paper's Tables I and II (plus the oracle's criteria on synthetic data)."""

from __future__ import annotations

from collections.abc import Mapping

# (column title, result key, scale); lower is better for the first four and L2 Affect.
COLUMNS = (
    ("L2 ↓", "L2", 1.0), ("FD ↓", "FD", 1.0), ("Variation", "Variation", 1.0),
    ("Diversity", "Diversity", 1.0), ("P-FD ↓", "P-FD", 1.0), ("L2 Affect(10^2) ↓", "L2 Affect", 100.0),
    ("Emp. ↑", "empathy", 1.0), ("App. ↑", "appropriateness", 1.0), ("Eng. ↑", "engagement", 1.0),
    ("Nat. ↑", "naturalness", 1.0), ("Oracle ↑", "weighted", 1.0),
)  # fmt: skip


def metrics_table(rows: Mapping[str, Mapping[str, float]], digits: int = 4) -> str:
    """Render ``{method: results}`` as a Markdown table; columns no row has are left out, gaps are blank."""
    columns = [c for c in COLUMNS if any(c[1] in r for r in rows.values())]
    lines = ["| Method | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, result in rows.items():
        cells = [f"{result[key] * scale:.{digits}f}" if key in result else "" for _, key, scale in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
