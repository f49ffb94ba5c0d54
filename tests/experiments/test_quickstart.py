"""`dyadic quickstart` end to end on the tiny preset with tiny settings: every stage, report, resumability."""

from __future__ import annotations

import json

import pytest

from experiments.cli import main

TINY_SFT = {
    "model": {"backbone": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "num_key_value_heads": 2},
              "head_hidden": 32, "projector_hidden": 32},  # sft_small's other model settings stay
    "max_steps": 6, "save_every": 6, "batch_size": 4, "max_frames": 32, "warmup_steps": 2, "eval_every": 0,
}  # fmt: skip


@pytest.mark.slow
def test_quickstart_runs_every_stage_and_resumes(tmp_path, capsys, monkeypatch) -> None:
    config = {
        "preset": "tiny", "max_eval_clips": 2, "render": False, "sft_overrides": TINY_SFT,
        "feedback": {"clips": 4, "samples": 2, "annotators": 2, "ratings_per_group": 2, "render_groups": 1},
        "aligners": {
            "SFT+DPO": {"algorithm": "dpo", "settings": {"num_epochs": 1, "batch_size": 2, "nod_decisions": True,
                                                         "action_frames": 8}},
            "Random-Prefer": {"algorithm": "random_prefer", "settings": {"num_epochs": 1, "batch_size": 2}},
            "SFT-Preferred": {"algorithm": "sft_preferred", "settings": {"num_epochs": 1, "batch_size": 2}},
            "SFT+PPO": {"algorithm": "ppo_rm", "settings": {
                "rm": {"epochs": 2, "ensemble_size": 2, "hidden_sizes": [16], "val_fraction": 0.0},
                "ppo": {"total_timesteps": 32, "n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1}}},
        },
        "eval_mode": "mean_expression", "eval_samples": 2,
    }  # fmt: skip
    path = tmp_path / "quickstart.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    # A relative output path, as the README's command gives: the rendered group's videos must still be served
    # to the simulated annotators (they fetch every video before rating).
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["quickstart", "--config", str(path), "--out", "run"]) == 0
    report = (out / "report.md").read_text()
    for heading in (
        "Table II",
        "Table IV",
        "oracle's criteria",
        "same preference labels",
        "SFT+DPO against SFT",
        "REACT's metrics",
    ):
        assert heading in report
    results = json.loads((out / "eval.json").read_text())
    for row in ("GT", "random", "nn", "mean", "SFT", "SFT+DPO", "Random-Prefer", "SFT-Preferred", "SFT+PPO"):
        assert row in results["rows"], row
    assert 1.0 <= results["rows"]["SFT+DPO"]["weighted"] <= 5.0
    # REACT's table: every row over its 2 samples, beside the reference rows.
    assert results["react_samples"] == 2 and set(results["rows"]) | {"Appropriate (held-out)"} == set(
        results["react_rows"]
    )
    react_table = report.split("REACT's metrics")[1].split("\n\n")[2]
    assert [line.split(" | ")[0] for line in react_table.splitlines()[2:]] == [
        "| GT", "| Appropriate (held-out)", "| Random", "| NN", "| Mean", "| SFT", "| SFT+DPO", "| Random-Prefer",
        "| SFT-Preferred", "| SFT+PPO",
    ]  # fmt: skip
    assert results["mode"] == "mean_expression" and "decode (mean_expression) at temperature 0.7" in report
    assert results["samples"] == 2 and "2 samples a clip" in report
    summary = json.loads((out / "feedback" / "summary.json").read_text())
    assert summary["groups"] == 4 and summary["pairs"] >= 1
    for stage in ("sft_dpo", "random_prefer", "sft_preferred", "sft_ppo"):
        assert (out / stage).is_dir() and not (out / f"{stage}.partial").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "sft_dpo" / "tb").iterdir())
    # The pairs carry each trajectory's mean rating per criterion, so the reward model's criteria head trains.
    rm_figures = json.loads((out / "sft_ppo.work" / "rm" / "training.json").read_text())["figures"]
    assert 0.0 <= rm_figures["train_criteria_mae"] < 4.0
    capsys.readouterr()

    # A second run skips every stage.
    assert main(["quickstart", "--config", str(path), "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "done already" in log and "running" not in log


@pytest.mark.parametrize(
    "line, field",
    [
        ("aligners: {SFT+DPO: {algorithm: dpo, settings: {beta: -1}}}", "beta"),
        ("eval_mode: expected", "eval_mode"),
        ("eval_samples: 0", "eval_samples"),
    ],
)
def test_quickstart_rejects_bad_config(tmp_path, capsys, line, field) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(line + "\n")
    assert main(["quickstart", "--config", str(path), "--out", str(tmp_path / "x")]) == 2
    assert field in capsys.readouterr().err
