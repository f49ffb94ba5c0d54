"""The ablation summary: per-seed differences to SFT and their Student-t interval."""

from __future__ import annotations

import math

import pytest

from experiments.pipelines.ablations import AblationConfig, student_t_interval, summarize, summary_markdown


def test_student_t_interval_matches_the_textbook_case() -> None:
    mean, low, high = student_t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, n 3: half width t_{0.975, 2} * 1 / sqrt(3) = 4.3027 / 1.7321
    assert mean == 2.0
    assert high - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert mean - low == pytest.approx(high - mean)
    assert math.isnan(student_t_interval([1.0])[1])


def test_summary_is_paired_by_seed() -> None:
    def results(sft: float, dpo: float, rnd: float) -> dict:
        return {"rows": {"SFT": {"weighted": sft, "L2": 0.1, "FD": 1.0},
                         "SFT+DPO": {"weighted": dpo, "L2": 0.12, "FD": 1.1},
                         "Random-Prefer": {"weighted": rnd, "L2": 0.1, "FD": 1.0}}}  # fmt: skip

    per_seed = {0: results(2.0, 2.3, 2.1), 1: results(1.5, 1.75, 1.4), 2: results(2.5, 2.8, 2.5)}
    summary = summarize(per_seed, ["dpo", "random_prefer"])
    dpo = summary["variants"]["dpo"]["weighted"]
    assert dpo["diffs"] == pytest.approx([0.3, 0.25, 0.3])
    assert dpo["excludes_zero"] and dpo["ci_low"] > 0
    assert not summary["variants"]["random_prefer"]["weighted"]["excludes_zero"]
    assert "SFT+DPO" in summary_markdown(summary)


def test_config_names_unknown_variants_and_fields() -> None:
    with pytest.raises(ValueError, match="variants"):
        AblationConfig(variants=["dpo", "nope"])
    with pytest.raises(ValueError, match="unknown fields"):
        AblationConfig.from_dict({"seedz": [0]})
    with pytest.raises(ValueError, match="test"):
        AblationConfig(feedback={"split": "test"})
