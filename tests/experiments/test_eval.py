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
from experiments.evaluation import (
    EvalConfig,
    clip_seed,
    default_run_dir,
    evaluate_agents,
    evaluate_predictions,
    sample_seed,
    save_results,
)


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
        (["--agent", "nn", "--temperature", "0"], "policy_temperature (--temperature): expected a positive"),
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
    assert load_policy(str(tmp_path / "ckpt"), "sample", 0.3).sampler.temperature == 0.3
    assert "--temperature 0.3" in EvalConfig(dataset="d", policy="x", policy_temperature=0.3).command()


def test_shipped_eval_config_parses():
    from pathlib import Path

    import yaml

    import experiments

    path = Path(experiments.__file__).parent / "configs" / "eval.yaml"
    config = EvalConfig(**yaml.safe_load(path.read_text()))
    assert config.dataset == "synthetic:small" and config.agents == [
        "random", "random-train", "nn", "neutral", "mime", "meanfr", "meanseq"
    ]  # fmt: skip
    assert config.samples == 10 and config.validity


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    from dyadic_env.synthetic import write_preset

    return write_preset("tiny", tmp_path_factory.mktemp("tiny") / "d", appropriate=3)


class CountingMean:
    """The mean-frame agent, counting its episodes (it says it is deterministic)."""

    deterministic = True

    def __init__(self, agent):
        self.agent, self.episodes = agent, 0

    def reset(self, *, seed=None):
        self.episodes += 1
        self.agent.reset(seed=seed)

    def act(self, observation):
        return self.agent.act(observation)


def test_several_predictions_per_clip_give_the_react_table_and_validity(tiny_sets, tmp_path):
    counting = CountingMean(make_agent("meanfr", tiny_sets))
    agents = {**baselines(tiny_sets, ("random", "nn", "mime", "meanseq")), "meanfr": counting}
    results = evaluate_agents(agents, tiny_sets, "test", seed=0, samples=3, validity=True)
    clips = results["num_clips"]
    assert counting.episodes == clips  # a deterministic agent is rolled out once per clip, not K times
    react = results["react_rows"]
    assert list(react) == ["GT", "Appropriate (held-out)", "random", "nn", "mime", "meanseq", "meanfr"]
    assert react["GT"]["FRDiv"] == 0.0 and react["random"]["FRDiv"] > 0 and react["meanfr"]["FRCorr"] == 0.0
    assert react["random"]["FRCorr"] == pytest.approx(3 * react["random"]["FRCorr/pred"])
    assert react["Appropriate (held-out)"]["FRCorr"] > max(react[a]["FRCorr"] for a in agents)
    assert set(results["rows"]["random"]) >= {"L2", "FD", "weighted"} and results["samples"] == 3
    assert len(results["metrics_per_clip"]["nn"]["FRCorr"]) == clips
    validity = results["validity"]
    assert {"L2", "FD", "FRCorr", "FRDist", "FRDvs"} <= set(validity) and validity["L2"]["agents"] == 5
    assert "GT" not in results["metrics_per_clip"]  # reference rows stay out of the ranking
    run_dir = save_results(results, tmp_path / "run")
    report = (run_dir / "results.md").read_text()
    assert (
        "## REACT's metrics" in report and "## Metric validity" in report and "| FRCorr | higher |" in report
    )


def test_predictions_scored_elsewhere_take_one_or_k_trajectories_per_clip(tiny_sets):
    clips = list(load_dataset(tiny_sets).split("test"))
    one = {"copy": [np.asarray(c.speaker_motion) for c in clips]}
    nested = {"copy": [[np.asarray(c.speaker_motion)] for c in clips]}
    first, second = evaluate_predictions(one, tiny_sets), evaluate_predictions(nested, tiny_sets)
    assert first["rows"] == second["rows"] and first["react_rows"] == second["react_rows"]
    with pytest.raises(ValueError, match="same number of trajectories"):
        evaluate_predictions({"a": [[c.speaker_motion] * 2 for c in clips], "b": one["copy"]}, tiny_sets)
    assert sample_seed(3, 2, 0) == clip_seed(3, 2) and sample_seed(3, 2, 1) != clip_seed(3, 2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "nn", "--samples", "0"], "samples (--samples): expected a positive number"),
        (
            ["--agent", "nn,random,mime", "--validity"],
            "--validity ranks metrics against the synthetic oracle",
        ),
    ],
)
def test_cli_eval_sample_and_validity_errors(data_path, tmp_path, capsys, argv, message):
    assert main(["eval", "--dataset", str(data_path), "--run-dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_eval_with_samples(tiny_sets, data_path, tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                "--dataset",
                str(tiny_sets),
                "--agent",
                "nn,mime",
                "--validity",
                "--run-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "give at least 3" in capsys.readouterr().err
    argv = ["eval", "--dataset", str(tiny_sets), "--agent", "random,meanfr,mime", "--samples", "2", "--max-clips",
            "2", "--validity", "--frdist-groups", "react", "--run-dir", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "REACT (K = 2 predictions per clip)" in out and "| meanfr | 0.0000 | 0.0000 |" in out
    assert "Metric validity" in out
    assert json.loads((tmp_path / "r" / "results.json").read_text())["frdist_groups"] == "react"
    assert (
        main(
            [
                "eval",
                "--dataset",
                str(data_path),
                "--agent",
                "nn",
                "--samples",
                "2",
                "--run-dir",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert "has no appropriate sets, so no REACT table" in capsys.readouterr().out


def plugin_factory(dataset, seed, tokenizer):
    """A plug-in agent for `--agent tests.experiments.test_eval:plugin_factory` (the neutral face)."""
    from agents import NeutralAgent

    return NeutralAgent(tokenizer)


def test_cli_eval_plugin_agents_named_policies_and_the_report(data_path, tmp_path, capsys):
    report = tmp_path / "docs" / "report.md"
    spec = f"{__name__}:plugin_factory"
    argv = ["eval", "--dataset", str(data_path), "--agent", f"random,{spec}", "--report", str(report),
            "--run-dir", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    assert f"| {spec} | " in capsys.readouterr().out
    text = report.read_text()
    assert (
        f"Generated by `dyadic eval --dataset {data_path} --split test --seed 0 --agent random,{spec} --samples 1`"
        in text
    )
    assert (
        main(["eval", "--dataset", str(data_path), "--agent", "nope.module:x", "--run-dir", str(tmp_path)])
        == 2
    )
    assert "cannot load the plug-in factory" in capsys.readouterr().err
    config = EvalConfig(dataset="d", agents=["nn"], policy="SFT=/a,DPO=/b")
    assert config.policies() == {"SFT": "/a", "DPO": "/b"} and "SFT-DPO" in str(default_run_dir(config))
    for bad in ("SFT=", "nn=/a", "A=/x,A=/y"):
        with pytest.raises(ValueError, match="policy"):
            EvalConfig(dataset="d", agents=["nn"], policy=bad)
