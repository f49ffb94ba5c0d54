"""The README's headline claims that take minutes to check, each run the way the README tells a user to.

Marked ``expensive`` (deselected by default): ``bash scripts/test.sh -m expensive tests/experiments``.
The quick claims are in ``test_readme_claims.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments.cli import main

pytestmark = pytest.mark.expensive


def test_the_quickstart_finishes_with_the_report_it_promises(tmp_path: Path, capsys) -> None:
    """`dyadic quickstart` (the shipped quickstart_small.yaml) writes every stage and a report shaped as promised."""
    from experiments.configs import read_config

    out = tmp_path / "quickstart"
    assert main(["quickstart", "--out", str(out)]) == 0
    config = read_config("quickstart_small.yaml")
    report = (out / "report.md").read_text()
    # It leads with the headline aligner's paired gain over SFT on the oracle, with a 95 % interval over clips.
    lead = report.split("## ")[0]
    assert re.search(r"\*\*SFT\+DPO against SFT on the hidden oracle .*: [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]",
                     lead) and "95 % bootstrap" in lead  # fmt: skip
    for heading in ("shaped like paper Table II", "shaped like paper Table IV", "The oracle's criteria", "## Plots",
                    "## Sample"):  # fmt: skip
        assert heading in report, heading
    results = json.loads((out / "eval.json").read_text())
    assert results["split"] == "test"
    assert {"random", "nn", "mean", "SFT", *config["aligners"]} <= set(results["rows"])
    for row in results["rows"].values():
        assert 1.0 <= row["weighted"] <= 5.0
    feedback = json.loads((out / "feedback" / "summary.json").read_text())
    assert feedback["groups"] == config["feedback"]["clips"] and feedback["candidates_per_group"] == 8
    assert (out / "feedback" / "feedback.db").is_file()  # rated through the annotation store
    assert list((out / "plots").glob("*.png")) and (out / "sample.mp4").stat().st_size > 0
    assert list(out.rglob("events.out.tfevents*"))  # TensorBoard logs
    capsys.readouterr()
    assert main(["quickstart", "--out", str(out)]) == 0  # every stage is resumable: a re-run skips them all
    log = capsys.readouterr().out
    assert "done already" in log and "] running" not in log


def test_the_eval_table_mean_beats_nn_on_l2_fd_pfd_and_the_oracle_ranks_it_near_random(
    tmp_path: Path,
) -> None:
    """README, Agents: `dyadic eval --agent random,nn,neutral,mirror,mean --dataset synthetic:small --split test`;
    "Mean beats NN on them [L2, FD, P-FD] while the oracle ranks it near Random"."""
    argv = ["eval", "--agent", "random,nn,neutral,mirror,mean", "--dataset", "synthetic:small", "--split", "test",
            "--run-dir", str(tmp_path / "eval")]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert {"random", "nn", "neutral", "mirror", "mean"} <= set(rows)
    mean, nn, random = rows["mean"], rows["nn"], rows["random"]
    for metric in ("L2", "FD", "P-FD"):
        assert mean[metric] < nn[metric], metric
    assert abs(mean["weighted"] - random["weighted"]) < abs(nn["weighted"] - mean["weighted"])


def test_the_batched_env_steps_several_times_faster_than_one_env() -> None:
    """README, The environment: the batched env runs at "several times one env's steps/s (`dyadic bench env`)"."""
    from experiments.bench.env import bench_env

    figures = bench_env(quick=True)
    assert figures["native64_vs_one_env"] >= 2.0
