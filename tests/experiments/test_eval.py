"""`dyadic eval` and evaluate_agents: closed-loop metrics tables with a ground-truth reference row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents import make_agent
from dyadic_env.data import load_dataset
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.metrics import evaluate
from experiments.cli import main
from experiments.evaluation import EvalConfig, clip_seed, default_run_dir, evaluate_agents


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_random_walk_dataset(
        tmp_path_factory.mktemp("rw") / "d", affect=True, splits={"train": 6, "test": 3}
    )


def baselines(path, names=("random", "nn", "neutral", "mirror"), **kwargs):
    return {name: make_agent(name, path, seed=0, **kwargs) for name in names}


def test_evaluate_agents_rows(data_path):
    results = evaluate_agents(baselines(data_path), data_path, "test", seed=0)
    rows = results["rows"]
    assert list(rows) == ["GT", "random", "nn", "neutral", "mirror"]
    assert set(rows["GT"]) == {"Variation", "Diversity"}
    assert set(rows["nn"]) == {"L2", "FD", "P-FD", "Variation", "Diversity", "L2 Affect"}
    assert rows["neutral"]["Variation"] == 0.0 and rows["neutral"]["Diversity"] == 0.0
    assert rows["nn"]["L2"] < rows["random"]["L2"]
    assert results["num_clips"] == 3 and not results["synthetic"] and results["per_clip"]["GT"] is None
    assert "| GT |" in results["table"] and "L2 Affect" in results["table"]
    # The GT row is the metrics of the real listeners themselves.
    dataset = load_dataset(data_path)
    gts = [c.listener_motion for c in dataset.split("test")]
    assert rows["GT"]["Variation"] == pytest.approx(evaluate(gts, gts, gts)["Variation"])
    again = evaluate_agents(baselines(data_path), data_path, "test", seed=0)
    assert again["rows"] == rows  # seeded: identical


def test_evaluate_agents_with_chunked_agents_and_max_clips(data_path):
    results = evaluate_agents(baselines(data_path, ("nn",), chunk_size=4), data_path, "test", 1, max_clips=2)
    assert results["num_clips"] == 2 and results["per_clip"]["clip_ids"] == ["test-000", "test-001"]
    assert np.isfinite(results["rows"]["nn"]["L2"])


@pytest.mark.slow
def test_oracle_criteria_on_synthetic_data():
    results = evaluate_agents(
        baselines("synthetic:tiny", ("random", "nn")), "synthetic:tiny", "test", 0, max_clips=3
    )
    rows = results["rows"]
    for row in rows.values():
        assert {"empathy", "appropriateness", "engagement", "naturalness", "weighted"} <= set(row)
    assert rows["GT"]["weighted"] > rows["random"]["weighted"]
    assert len(results["per_clip"]["nn"]) == 3 and results["synthetic"]


def test_cli_eval_writes_results(data_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["eval", "--agent", "random,neutral", "--dataset", str(data_path), "--run-dir", str(run_dir)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| random |" in out and "| neutral |" in out
    results = json.loads((run_dir / "results.json").read_text())
    assert results["split"] == "test" and set(results["rows"]) == {"GT", "random", "neutral"}
    assert results["table"] in (run_dir / "results.md").read_text()
    assert json.loads((run_dir / "config.json").read_text())["agents"] == ["random", "neutral"]
    assert list(run_dir.glob("events.out.tfevents.*"))


def test_cli_eval_from_yaml_config(data_path, tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(f"dataset: {data_path}\nagents: [mirror]\nmax_clips: 1\nseed: 3\n")
    assert main(["eval", "--config", str(config), "--run-dir", str(tmp_path / "r")]) == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["num_clips"] == 1 and results["seed"] == 3 and "mirror" in results["rows"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "bogus"], "--agent: unknown ['bogus']"),
        (["--agent", "nn", "--split", "val"], "--split 'val'"),
        (["--policy", "/no/such/ckpt"], "--policy /no/such/ckpt: no such checkpoint"),
        ([], "give at least one agent"),
        (["--agent", "nn", "--decode", "expected"], "policy_mode (--decode): expected one of"),
    ],
)
def test_cli_eval_user_errors(data_path, tmp_path, capsys, argv, message):
    assert main(["eval", "--dataset", str(data_path), "--run-dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_eval_requires_a_dataset(capsys):
    assert main(["eval", "--agent", "nn"]) == 2
    assert "--dataset is required" in capsys.readouterr().err


def test_config_and_run_names():
    config = EvalConfig(dataset="synthetic:small", agents="random,nn", seed=4)  # type: ignore[arg-type]
    assert config.agents == ["random", "nn"]
    name = default_run_dir(config).name
    assert (
        name.startswith("synthetic-small__random-nn__4__") and default_run_dir(config).parent.name == "eval"
    )
    with pytest.raises(ValueError, match="each name once"):
        EvalConfig(dataset="d", agents=["nn", "nn"])
    assert clip_seed(0, 1) != clip_seed(1, 0)


@pytest.mark.slow
def test_cli_eval_policy_checkpoint(data_path, tmp_path):
    """--policy loads agents.vla's VLAAgent from a checkpoint directory (a tiny untrained model here)."""
    factory = pytest.importorskip("agents.vla.factory")
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 2}  # fmt: skip
    model = factory.model_for_dataset(
        load_dataset(data_path), backbone=tiny, head_hidden=16, projector_hidden=16
    )
    model.save_pretrained(tmp_path / "ckpt")
    run_dir = tmp_path / "run"
    argv = ["eval", "--policy", str(tmp_path / "ckpt"), "--agent", "neutral", "--dataset", str(data_path),
            "--max-clips", "1", "--run-dir", str(run_dir), "--decode", "mean_expression"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    assert list(rows) == ["GT", "neutral", "vla"] and np.isfinite(rows["vla"]["L2"])
    from experiments.commands.eval import load_policy

    assert load_policy(str(tmp_path / "ckpt"), "mean_expression").sampler.mode == "mean_expression"
    assert load_policy(str(tmp_path / "ckpt")).sampler.mode == model.config.decode_mode


def test_shipped_eval_config_parses():
    from pathlib import Path

    import yaml

    import experiments

    path = Path(experiments.__file__).parent / "configs" / "eval.yaml"
    config = EvalConfig(**yaml.safe_load(path.read_text()))
    assert config.dataset == "synthetic:small" and config.agents == [
        "random",
        "random-train",
        "nn",
        "neutral",
        "mirror",
        "mean",
    ]
