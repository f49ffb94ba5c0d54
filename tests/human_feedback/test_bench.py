"""`dyadic bench feedback --quick` runs against a real server and reports consistent figures."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_quick_bench_reports_latency_and_throughput():
    from experiments.bench.feedback import bench_feedback

    figures = bench_feedback(quick=True)
    assert figures["annotators"] == 10 and figures["pages"] > 0
    assert figures["ratings"] == figures["pages"] * figures["candidates_per_page"]
    assert figures["ratings_per_s"] == pytest.approx(figures["ratings"] / figures["seconds"], rel=0.01)
    assert 0 < figures["submit_p50_ms"] <= figures["submit_p99_ms"]
    assert 0 < figures["paced_submit_p50_ms"] <= figures["paced_submit_p99_ms"]
    # 200 groups x R = 3 pages at most, whoever rated them
    assert figures["pages"] + figures["single_pages"] <= 600
