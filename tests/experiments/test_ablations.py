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
    with pytest.raises(ValueError, match=r"eval_mode: expected one of .*mean_expression"):
        AblationConfig(eval_mode="expected")


@pytest.mark.slow
def test_ablations_run_end_to_end_with_iterated_dpo(tmp_path) -> None:
    """One seed on a tiny synthetic set: feedback, DPO, iterated DPO (2 rounds), evaluation, summary."""
    import torch

    from agents.vla.factory import model_for_dataset
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import write_preset
    from experiments.pipelines.ablations import run_ablations

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = write_preset("tiny", tmp_path / "data")
        tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 2}  # fmt: skip
        model = model_for_dataset(load_dataset(data), backbone=tiny, head_hidden=32, projector_hidden=32)
        model.save_pretrained(tmp_path / "sft")
        config = AblationConfig(
            out=tmp_path / "run", dataset=str(data), sft=str(tmp_path / "sft"), seeds=[0],
            variants=["dpo", "iterated_dpo"], iterated_rounds=2, eval_samples=1, max_eval_clips=2,
            feedback={"clips": 4, "samples": 2, "annotators": 2, "ratings_per_group": 2},
            dpo={"num_epochs": 1, "batch_size": 2},
        )  # fmt: skip
        summary = run_ablations(config, log=lambda _msg: None)
        # A rerun with one more variant trains only that variant and evaluates the seed again.
        messages: list[str] = []
        config.variants = ["dpo", "iterated_dpo", "random_prefer"]
        again = run_ablations(config, log=messages.append)
    finally:
        torch.set_num_threads(threads)
    assert set(summary["variants"]) == {"dpo", "iterated_dpo"}
    assert len(summary["variants"]["iterated_dpo"]["weighted"]["diffs"]) == 1
    for k in range(2):
        assert (tmp_path / "run" / "seed0" / "iterated_dpo" / f"round{k}" / "policy" / "config.json").exists()
    assert (tmp_path / "run" / "summary.md").read_text().startswith("## Ablations over 1 seeds")
    assert set(again["variants"]) == {"dpo", "iterated_dpo", "random_prefer"}
    assert any("seed 0: dpo] done already" in m for m in messages)
    assert any("evaluating again" in m for m in messages)
