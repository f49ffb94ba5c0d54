"""The learned baselines through the CLI: `dyadic train lm-listener|mmlhg`, `dyadic eval`, `dyadic feedback
study` and `dyadic baselines report` on a tiny config and dataset."""

from __future__ import annotations

import json

import pytest

from dyadic_env.envs.testing import write_random_walk_dataset
from experiments.cli import main

TINY = (
    "model:\n"
    "  backbone: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, "
    "num_key_value_heads: 2}\n"
    "  vq_width: 16\n  codebook_size: 16\n  code_dim: 8\n"
    "vq: {steps: 4, batch_size: 4, crop_frames: 32}\n"
    "lm: {steps: 4, batch_size: 2, crop_units: 6}\n"
    "log_every: 2\neval_every: 0\nsave_every: 0\nnum_threads: 1\n"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A random-walk dataset with appropriate sets, and a tiny trained run of each baseline through the CLI."""
    root = tmp_path_factory.mktemp("baselines")
    data = write_random_walk_dataset(root / "data", affect=True, splits={"train": 4, "val": 1, "test": 2})
    (root / "tiny.yaml").write_text(TINY)
    for variant in ("lm-listener", "mmlhg"):
        argv = ["train", variant, "--config", str(root / "tiny.yaml"), f"dataset={data}",
                f"output_dir={root / variant}", "--no-progress"]  # fmt: skip
        assert main(argv) == 0
    return root, data


def test_train_writes_a_policy_with_its_record(runs, capsys):
    root, _ = runs
    for variant in ("lm-listener", "mmlhg"):
        record = json.loads((root / variant / "final" / "training.json").read_text())
        assert record["variant"] == variant and record["steps"] == 8 and record["seconds"] > 0
        assert (root / variant / "final" / "action_tokenizer.json").exists()
        assert json.loads((root / variant / "train_config.json").read_text())["variant"] == variant


def test_eval_runs_a_baseline_by_name_and_several_as_named_rows(runs, tmp_path):
    root, data = runs
    argv = ["eval", "--agent", "lm-listener", "--policy", str(root / "lm-listener"), "--dataset", str(data),
            "--run-dir", str(tmp_path / "one")]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((tmp_path / "one" / "results.json").read_text())["rows"]
    assert list(rows) == ["GT", "lm-listener"] and rows["lm-listener"]["L2"] > 0
    named = f"LM={root / 'lm-listener' / 'final'},MM={root / 'mmlhg'}"
    argv = ["eval", "--agent", "random", "--policy", named, "--dataset", str(data), "--samples", "2",
            "--run-dir", str(tmp_path / "named")]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((tmp_path / "named" / "results.json").read_text())["rows"]
    assert {"random", "LM", "MM"} <= set(rows)
    from experiments.commands.eval import load_policy

    assert load_policy(str(root / "mmlhg"), None, 0.5).temperature == 0.5  # --temperature reaches the agent
    argv = ["eval", "--agent", "mmlhg", "--policy", str(root / "mmlhg"), "--dataset", str(data), "--temperature",
            "0.5", "--run-dir", str(tmp_path / "cold")]  # fmt: skip
    assert main(argv) == 0
    assert "--temperature 0.5" in (tmp_path / "cold" / "results.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "mmlhg"], "run a trained checkpoint: name one of them and pass its directory"),
        (["--agent", "lm-listener,mmlhg", "--policy", "{root}/mmlhg"], "name one of them"),
        (
            ["--agent", "mmlhg", "--policy", "{root}/lm-listener"],
            "is a lm-listener checkpoint, not a mmlhg one",
        ),
        (["--policy", "X={root}/nothing"], "nothing: no such checkpoint directory"),
        (["--policy", "MM={root}/mmlhg", "--tell-listener", "M"], "['M'] name no --policy row"),
        (["--policy", "LM={root}/lm-listener", "--tell-listener", "LM"], "'told' needs an MMLHG checkpoint"),
        (["--policy", "MM={root}/mmlhg", "--tell-listener", "MM"], "are not among the checkpoint's training"),
    ],
)
def test_eval_errors_name_the_fix(runs, tmp_path, capsys, argv, message):
    root, data = runs
    argv = [a.format(root=root) for a in argv]
    assert main(["eval", *argv, "--dataset", str(data), "--run-dir", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_eval_tells_a_row_who_listens(runs, tmp_path):
    """--tell-listener: the named MMLHG row answers as each clip's listener; the other row as the average."""
    root, data = runs
    argv = ["eval", "--policy", f"MMLHG={root / 'mmlhg'},MMLHG (told)={root / 'mmlhg'}", "--tell-listener",
            "MMLHG (told)", "--split", "train", "--dataset", str(data), "--run-dir", str(tmp_path / "told")]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((tmp_path / "told" / "results.json").read_text())["rows"]
    assert rows["MMLHG (told)"]["L2"] != rows["MMLHG"]["L2"]


def test_train_errors_name_the_fix(runs, tmp_path, capsys):
    root, data = runs
    config = root / "tiny.yaml"
    assert main(["train", "mmlhg", "--config", str(config), f"dataset={data}", "model.fps=30"]) == 2
    assert "model.fps is set by the dataset" in capsys.readouterr().err
    (tmp_path / "lm.yaml").write_text("variant: lm-listener\n")
    assert main(["train", "mmlhg", "--config", str(tmp_path / "lm.yaml")]) == 2
    assert "the file is for variant 'lm-listener'" in capsys.readouterr().err


def test_feedback_study_rates_the_baselines_beside_others(runs, tmp_path):
    root, data = runs
    policies = f"lm={root / 'lm-listener' / 'final'},mmlhg={root / 'mmlhg' / 'final'},nn"
    argv = ["feedback", "study", "--db", str(tmp_path / "fb.db"), "--campaign", "study", "--dataset", str(data),
            "--policies", policies, "--clips", "1", "--no-render"]  # fmt: skip
    assert main(argv) == 0
    from sqlalchemy import select

    from human_feedback.store import Candidate, Store

    store = Store(tmp_path / "fb.db")
    with store.read() as session:
        names = set(session.scalars(select(Candidate.policy_name)))
    assert {"lm", "mmlhg", "nn"} <= names


def test_report_summarises_the_seeds(runs, tmp_path):
    root, data = runs
    for seed in (0, 1):
        argv = ["eval", "--agent", "random,nn,mean", "--policy",
                f"LM-listener={root / 'lm-listener'},MMLHG={root / 'mmlhg'}", "--dataset", str(data),
                "--seed", str(seed), "--samples", "2", "--run-dir", str(root / f"eval-seed{seed}")]  # fmt: skip
        assert main(argv) == 0
    out = tmp_path / "baselines.md"
    assert main(["baselines", "report", str(root), "--out", str(out), "--command", "bash make.sh"]) == 0
    page = out.read_text()
    assert "Generated by `bash make.sh`" in page and "evaluation seeds [0, 1]" in page
    assert "| LM-listener |" in page and "| MMLHG |" in page and " ± " in page
    assert "## The VQ-VAEs on held-out listeners" in page and "| mmlhg | 0 |" in page
    assert "## Against Random" in page and "- LM-listener: " in page
    assert "Mean FD from highest to lowest:" in page
    assert main(["baselines", "report", str(tmp_path)]) == 2
    # Evaluations in one folder, the trained runs in another, under a heading of the caller's.
    (tmp_path / "evals" / "eval-seed0").mkdir(parents=True)
    (tmp_path / "evals" / "eval-seed0" / "results.json").write_text(
        (root / "eval-seed0" / "results.json").read_text()
    )
    argv = ["baselines", "report", str(tmp_path / "evals"), "--trained", str(root), "--title", "Told", "--out",
            str(tmp_path / "told.md")]  # fmt: skip
    assert main(argv) == 0
    told = (tmp_path / "told.md").read_text()
    assert told.startswith("# Told\n") and "| mmlhg | 0 |" in told and "evaluation seeds [0]" in told
