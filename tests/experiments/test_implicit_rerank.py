"""scripts/implicit_rerank.py: best-of-N picked by a learned reward against the oracle's own pick."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.errors import UserError
from tests.experiments.scripts import load_script


def _script():
    return load_script("implicit_rerank")


def test_gains_are_over_each_clips_mean_for_the_rewards_pick_and_the_oracles() -> None:
    oracle = np.array([[1.0, 2.0, 3.0, 6.0], [4.0, 4.0, 0.0, 0.0]])  # clip means 3.0 and 2.0
    reward = np.array([[0.1, 0.9, 0.2, 0.3], [-1.0, -2.0, 5.0, 0.0]])  # picks 2.0 and 0.0
    gains = _script().rerank_gains(oracle, reward)
    assert gains["mean"] == pytest.approx(2.5)
    assert gains["by_oracle"] == pytest.approx(((6 - 3) + (4 - 2)) / 2)
    assert gains["by_reward"] == pytest.approx(((2 - 3) + (0 - 2)) / 2)
    assert gains["within_clip_correlation"] < 0
    perfect = _script().rerank_gains(oracle, oracle * 2 + 1)
    assert perfect["by_reward"] == pytest.approx(perfect["by_oracle"])
    assert perfect["within_clip_correlation"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same"):
        _script().rerank_gains(oracle, reward[:, :3])


def test_a_tiny_benchmarks_dpo_cell_is_reranked_and_a_missing_cell_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from experiments.benchmark.runner import run_benchmark
    from tests.experiments.test_benchmark_alignment import _config, _tiny

    data, sft = _tiny(tmp_path)
    config = _config(
        tmp_path, data, sft, algorithms=["dpo"], budgets=[2], eval={"samples": 3, "max_clips": 2}
    )
    run_benchmark(config, log=lambda _msg: None)
    page = tmp_path / "page.md"
    args = ["--out", str(config.out), "--cell", "dpo:2", "--seeds", "0", "--report-to", str(page)]
    with pytest.raises(UserError, match=r"SFT checkpoint .* not found: pass the cells' SFT with --sft"):
        _script().main([*args[:2], "--sft", str(tmp_path / "nowhere"), *args[2:]])
    _script().main(args)  # the benchmark's own SFT
    found = json.loads(page.with_suffix(".json").read_text())
    assert found["n"] == 3 and found["cell"] == "dpo:2"
    for kind in ("sft", "policy"):
        seed0 = found[kind]["per_seed"][0]
        assert seed0["by_oracle"] >= seed0["by_reward"] and seed0["by_oracle"] >= 0
    assert "| the DPO policy |" in page.read_text() and "--cell dpo:2 --seeds 0" in page.read_text()
    with pytest.raises(SystemExit):  # argparse names the malformed cell
        _script().main([*args[:3], "dpo", *args[4:]])
    assert "--cell 'dpo': expected ALGO:BUDGET" in capsys.readouterr().err
    with pytest.raises(UserError, match="dpo/b2-s1/policy not found: run the dpo:2 cell of seed 1 first"):
        _script().main([*args[:5], "1", *args[6:]])
