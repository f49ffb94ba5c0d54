"""`dyadic bench feedback --quick` runs against real servers on both stores and reports consistent figures."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_quick_bench_reports_both_stores_side_by_side(postgres_server):
    from experiments.bench.feedback import bench_feedback

    figures = bench_feedback(quick=True)
    assert figures["annotators"] == 10 and figures["stores"] == "sqlite,postgresql"
    keys = list(figures)
    for store in ("sqlite", "postgresql"):
        pages = figures[f"{store}_pages"]
        assert pages > 0 and figures[f"{store}_ratings"] == pages * figures["candidates_per_page"]
        assert figures[f"{store}_ratings_per_s"] == pytest.approx(
            figures[f"{store}_ratings"] / figures[f"{store}_seconds"], rel=0.01
        )
        assert 0 < figures[f"{store}_submit_p50_ms"] <= figures[f"{store}_submit_p99_ms"]
        assert 0 < figures[f"{store}_paced_submit_p50_ms"] <= figures[f"{store}_paced_submit_p99_ms"]
        # 100 groups x R = 3 pages at most, whoever rated them
        assert pages + figures[f"{store}_single_pages"] <= 300
    assert keys.index("postgresql_pages") == keys.index("sqlite_pages") + 1  # side by side
    assert figures["postgresql_vs_sqlite_ratings_per_s"] == pytest.approx(
        figures["postgresql_ratings_per_s"] / figures["sqlite_ratings_per_s"], abs=0.01
    )
