"""The README's main job: the quickstart pipeline on the bundled synthetic benchmark.

Stages (each resumable, skipped when its output exists, see :mod:`experiments.pipelines.stages`):

1. ``data``: the ``small`` synthetic benchmark (with its fitted action tokenizer);
2. ``baselines``: closed-loop evaluation of the baselines on the test split (metrics and oracle criteria);
3. ``report``: a Markdown report of the results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINES = ("random", "nn", "neutral", "mirror")


@dataclass
class QuickstartConfig:
    """Arguments of ``dyadic quickstart``."""

    out: Path = Path("runs/quickstart")
    """Run directory; every stage's output lives under it."""
    preset: str = "small"
    """Synthetic benchmark preset."""
    seed: int = 0
    """Seeds every stage."""
    max_eval_clips: int | None = None
    """Evaluate on the first N test clips only (None: all)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        from dyadic_env.synthetic import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, found {self.preset!r}")


def run_quickstart(config: QuickstartConfig, log: Any = print) -> Path:
    """Run every stage; returns the path of the report."""
    from experiments.pipelines.stages import run_stage

    config.out.mkdir(parents=True, exist_ok=True)
    data_dir = run_stage("data", config.out / "data", lambda tmp: _synthesize(config, tmp), log=log)
    results_file = run_stage(
        "baselines", config.out / "eval_baselines.json", lambda tmp: _evaluate(config, data_dir, tmp), log=log
    )
    report = config.out / "report.md"
    results = json.loads(results_file.read_text())
    report.write_text(_report(config, results))
    log(f"\n{results['table']}\n")
    log(f"[report] {report}")
    return report


def _synthesize(config: QuickstartConfig, tmp: Path) -> None:
    from dyadic_env.synthetic import write_preset

    write_preset(config.preset, tmp, seed=config.seed)


def _evaluate(config: QuickstartConfig, data_dir: Path, tmp: Path) -> None:
    from agents.baselines import make_agent
    from dyadic_env.data import load_dataset
    from experiments.evaluation import evaluate_agents

    data = load_dataset(data_dir)
    agents = {name: make_agent(name, data, seed=config.seed) for name in BASELINES}
    results = evaluate_agents(agents, data, "test", seed=config.seed, max_clips=config.max_eval_clips)
    tmp.write_text(json.dumps(results, indent=2))


def _report(config: QuickstartConfig, results: dict[str, Any]) -> str:
    return "\n".join([
        "# Quickstart report",
        "",
        f"Synthetic benchmark `{config.preset}` (seed {config.seed}), test split, {results['num_clips']} clips, "
        "closed-loop rollouts through `dyadic_env/Listener-v0`. Oracle columns are the hidden oracle's "
        "criteria (1-5) and its weighted score (paper eq. 10).",
        "",
        results["table"],
        "",
    ])  # fmt: skip
