"""`dyadic eval --seeds N`: every row as a mean and 95 % CI over N seeds; plug-in agents take part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dyadic_env.envs.testing import write_random_walk_dataset
from experiments.cli import main
from experiments.evaluation import summarize_seeds


def test_summarize_seeds_gives_student_t_intervals():
    rows = [{"a": {"L2": v, "FD": 1.0}} for v in (1.0, 2.0, 3.0)]
    summary = summarize_seeds(rows)
    assert summary["a"]["L2"]["mean"] == 2.0 and summary["a"]["L2"]["n"] == 3
    assert summary["a"]["L2"]["ci"] == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-5)  # t(0.975, 2)
    assert summary["a"]["FD"]["ci"] == 0.0


def test_eval_seeds_reports_every_row_with_a_ci(tmp_path, capsys):
    data = write_random_walk_dataset(tmp_path / "d", splits={"train": 4, "test": 2})
    run = tmp_path / "run"
    code = main(["eval", "--dataset", str(data), "--agent", "random,mean,tests.experiments.plugin_agent:make",
                 "--seeds", "3", "--run-dir", str(run)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "Mean ± 95 % CI over seeds [0, 1, 2]" in out
    results = json.loads((run / "results.json").read_text())
    assert results["seeds"] == [0, 1, 2] and len(results["rows_per_seed"]) == 3
    rows = results["seed_rows"]
    assert set(rows) == {"GT", "random", "mean", "tests.experiments.plugin_agent:make"}
    assert rows["random"]["L2"]["ci"] > 0  # random draws differ between seeds
    assert rows["mean"]["L2"]["ci"] == 0  # the mean listener does not depend on the seed
    assert "| random | " in results["seeds_table"] and " ± " in results["seeds_table"]
    assert "--seeds 3" in (run / "results.md").read_text()
