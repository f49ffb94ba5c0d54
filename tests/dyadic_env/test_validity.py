"""Metric validity: rank correlation of metrics with the oracle over agents, per agent and per clip."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic_env.metrics.validity import metric_validity, validity_table


@pytest.fixture
def scores() -> dict[str, np.ndarray]:
    """Five agents over 12 clips; agent i scores about i on every clip."""
    rng = np.random.default_rng(0)
    return {f"a{i}": i + 0.1 * rng.normal(size=12) for i in range(5)}


def test_a_metric_that_orders_like_the_oracle_agrees_fully(scores):
    noise = np.random.default_rng(1)
    metrics = {
        name: {"FRCorr": s.copy(), "L2": -2 * s, "FD": noise.normal(size=12)} for name, s in scores.items()
    }
    table = metric_validity(metrics, scores, bootstrap=200, seed=0)
    # FRCorr is the oracle itself (higher is better); L2 its negative (lower is better): both agree fully.
    for name in ("FRCorr", "L2"):
        assert table[name]["agreement"] == pytest.approx(1.0)
        assert table[name]["clip_agreement"] == pytest.approx(1.0)
        assert table[name]["low"] == pytest.approx(1.0) and table[name]["high"] == pytest.approx(1.0)
    assert table["L2"]["direction"] == -1 and table["FRCorr"]["direction"] == 1
    # Noise unrelated to the agents: per-clip agreement near 0, with an interval that holds 0.
    assert abs(table["FD"]["clip_agreement"]) < 0.4 and table["FD"]["clip_low"] < 0 < table["FD"]["clip_high"]
    assert table["FD"]["clips"] == 12 and table["FD"]["agents"] == 5
    again = metric_validity(metrics, scores, bootstrap=200, seed=0)
    assert again == table  # seeded


def test_reversed_metric_and_metrics_without_a_direction(scores):
    metrics = {name: {"FRDist": s.copy(), "Variation": s.copy()} for name, s in scores.items()}
    table = metric_validity(metrics, scores, bootstrap=100)
    assert table["FRDist"]["agreement"] == pytest.approx(-1.0)  # lower FRDist for worse agents: disagrees
    assert table["Variation"]["direction"] == 0 and table["Variation"]["agreement"] == pytest.approx(1.0)
    text = validity_table(table)
    assert "| FRDist | lower | -1.00 [-1.00, -1.00] |" in text and "- (raw ρ)" in text


def test_pairwise_metric_and_undefined_clips(scores):
    n = 12
    metrics = {name: {"FRCorr": np.where(np.arange(n) < 2, np.nan, s)} for name, s in scores.items()}
    pairwise = {name: {"FRDvs": np.full((n, n), i, float)} for i, name in enumerate(scores)}
    table = metric_validity(metrics, scores, pairwise=pairwise, bootstrap=100)
    assert table["FRCorr"]["clips"] == n - 2 and table["FRCorr"]["agreement"] == pytest.approx(1.0)
    assert table["FRDvs"]["agreement"] == pytest.approx(1.0) and "clip_agreement" not in table["FRDvs"]


def test_needs_three_agents(scores):
    two = dict(list(scores.items())[:2])
    with pytest.raises(ValueError, match="at least 3 agents"):
        metric_validity({name: {"L2": s} for name, s in two.items()}, two)
