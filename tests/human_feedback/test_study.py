"""Mean opinion scores with confidence intervals (paper Table III)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from human_feedback.study import format_mos_table, mos_table

from .test_preferences import row


def _rows():
    rng = np.random.default_rng(0)
    rows = []
    for clip in range(8):
        for annotator in "abc":
            good = np.clip(rng.integers(3, 6, 4), 1, 5)
            bad = np.clip(rng.integers(1, 4, 4), 1, 5)
            rows.append(row(f"g{clip}", f"good{clip}", annotator, tuple(int(v) for v in good)))
            rows[-1] = dataclasses.replace(rows[-1], policy_name="RL")
            rows.append(row(f"g{clip}", f"bad{clip}", annotator, tuple(int(v) for v in bad)))
            rows[-1] = dataclasses.replace(rows[-1], policy_name="SFT")
    return rows


def test_means_match_and_intervals_bracket_them():
    rows = _rows()
    table = {r["method"]: r for r in mos_table(rows, num_samples=500)}
    for method in ("RL", "SFT"):
        for key in ("empathy", "appropriateness", "engagement", "naturalness"):
            values = [getattr(r, key) for r in rows if r.policy_name == method]
            cell = table[method][key]
            assert cell["mean"] == pytest.approx(np.mean(values))
            assert cell["low"] < cell["mean"] < cell["high"]
    assert table["RL"]["appropriateness"]["mean"] > table["SFT"]["appropriateness"]["mean"]
    assert table["RL"]["ratings"] == 24 and table["RL"]["clips"] == 8


def test_t_interval_is_the_student_t_formula():
    rows = _rows()
    cell = {r["method"]: r for r in mos_table(rows, ci="t")}["RL"]["empathy"]
    values = np.array([r.empathy for r in rows if r.policy_name == "RL"], float)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    assert cell["low"] == pytest.approx(values.mean() - half) and cell["high"] == pytest.approx(
        values.mean() + half
    )


def test_bootstrap_is_seeded():
    rows = _rows()
    assert mos_table(rows, seed=4, num_samples=200) == mos_table(rows, seed=4, num_samples=200)


def test_table_is_shaped_like_table_iii():
    text = format_mos_table(mos_table(_rows(), num_samples=200))
    header, _rule, *body = text.splitlines()
    assert header == "| Method | App. | Emp. | Eng. | Nat. | n |"
    assert [line.split("|")[1].strip() for line in body] == ["RL", "SFT"]
    assert body[0].count("**") == 8  # RL is best on all four criteria


def test_options_are_checked():
    with pytest.raises(ValueError, match="ci must be"):
        mos_table([], ci="normal")


def test_methods_follow_the_given_order():
    rows = _rows()
    assert [r["method"] for r in mos_table(rows, num_samples=50)] == ["RL", "SFT"]
    assert [r["method"] for r in mos_table(rows, num_samples=50, order=["SFT", "RL"])] == ["SFT", "RL"]
