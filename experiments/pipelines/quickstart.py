"""The README's main job: the whole paper loop on the bundled synthetic benchmark, in minutes on a CPU.

Stages (each resumable: it writes ``X.partial`` and renames it to ``X`` on success; a re-run skips every
stage whose output exists, see :mod:`experiments.pipelines.stages`):

1. ``data``: the synthetic benchmark (its action tokenizer is fitted on the train split);
2. ``sft``: supervised fine-tuning of the VLA (``experiments/configs/sft_small.yaml``; resumes from its own
   checkpoints after a kill);
3. ``feedback``: SFT candidates (N = 8 per train clip) rated by simulated annotators through the feedback store
   and annotation API, ranked and paired best vs worst (paper eq. 10);
4. one stage per *aligner* (``aligners`` in the config): the same algorithms the alignment benchmark runs
   (:mod:`experiments.pipelines.aligners`) on the same rated groups: SFT+DPO as the paper scores it, SFT+DPO on
   the exact trajectory log-probability (nod decisions included), the ablations of paper Table IV and, when
   listed, PPO on a reward model;
5. ``eval``: closed-loop evaluation on the test split of Random, NN, Mean, SFT and every aligned policy;
6. ``report``: ``report.md`` (tables shaped like the paper's II and IV, the oracle's criteria, each aligner's
   paired gain over SFT with a 95 % interval), plots and a rendered sample video.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.pipelines.alignment import FeedbackConfig, Log
from experiments.pipelines.evaluation import check_eval_decoding
from experiments.pipelines.stages import run_stage, train_sft_stage

BASELINES = ("random", "nn", "mean")


@dataclass
class QuickstartConfig:
    """Arguments of ``dyadic quickstart`` (``experiments/configs/quickstart_small.yaml``)."""

    out: Path = Path("runs/quickstart")
    """Run directory; every stage's output lives under it."""
    preset: str = "small"
    """Synthetic benchmark preset."""
    seed: int = 0
    """Seeds every stage."""
    max_eval_clips: int | None = None
    """Evaluate on the first N test clips only (None: all)."""
    sft_config: str = "sft_small.yaml"
    """SFT config (a file in experiments/configs/ or a path)."""
    sft_overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of the SFT config to override (e.g. ``max_steps``)."""
    feedback: dict[str, Any] = field(default_factory=dict)
    """:class:`~experiments.pipelines.alignment.FeedbackConfig` fields."""
    aligners: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Row name -> ``{algorithm: NAME or module:Name, settings: {...}}`` (:mod:`experiments.pipelines.aligners`)."""
    headline: str = ""
    """The aligner whose gain over SFT the report leads with (default: the first)."""
    eval_temperature: float = 0.7
    """Sampling temperature of the VLA policies at evaluation (``sft_small`` decodes at 0.7 when deployed)."""
    eval_mode: str = "sample"
    """Decoding of the VLA policies at evaluation (:data:`agents.vla.decoding.DECODE_MODES`)."""
    eval_samples: int = 4
    """Closed-loop samples of each VLA policy per test clip: the paper's metrics use the first, the oracle's
    criteria average over all (one sample a clip leaves sampling noise as large as an aligner's effect)."""
    skip_ppo: bool = False
    """Leave out aligners that use PPO (``ppo_rm``)."""
    render: bool = True
    """Render a sample video (needs the offscreen renderer)."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    def __post_init__(self) -> None:
        from experiments.pipelines.aligners import load_algorithm

        self.out = Path(self.out)
        from dyadic_env.synthetic import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, found {self.preset!r}")
        if self.max_eval_clips is not None and self.max_eval_clips < 1:
            raise ValueError(f"max_eval_clips must be >= 1 or None, found {self.max_eval_clips}")
        if self.eval_samples < 1:
            raise ValueError(f"eval_samples must be >= 1, found {self.eval_samples}")
        check_eval_decoding(self.eval_mode, self.eval_temperature)
        self.feedback_config()  # validate every stage's settings now, not twenty minutes in
        for name, spec in self.aligners.items():
            unknown = sorted(set(spec) - {"algorithm", "settings"})
            if unknown or "algorithm" not in spec:
                raise ValueError(
                    f"aligners.{name}: expected keys algorithm and settings, found {sorted(spec)}"
                )
            load_algorithm(spec["algorithm"], spec.get("settings", {}))
        if self.headline and self.headline not in self.aligners:
            raise ValueError(f"headline: {self.headline!r} is not one of the aligners {list(self.aligners)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> QuickstartConfig:
        from dyadic_env.config import config_from_dict

        return config_from_dict(cls, values, "quickstart config")

    def feedback_config(self) -> FeedbackConfig:
        return FeedbackConfig(**{"seed": self.seed, **self.feedback})

    def active_aligners(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.aligners.items() if not (self.skip_ppo and v["algorithm"] == "ppo_rm")}


def stage_dir(row: str) -> str:
    """The run folder of an aligner's row (``SFT+DPO (nods)`` -> ``sft_dpo_nods``)."""
    return re.sub(r"[^a-z0-9]+", "_", row.lower()).strip("_")


def run_quickstart(config: QuickstartConfig, log: Log = print) -> Path:
    """Run every stage; returns the path of the report."""
    import torch

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "quickstart_config.json").write_text(json.dumps(asdict(config), indent=1, default=str))
    timings: dict[str, float] = {}

    def stage(name: str, output: Path, build: Any) -> Path:
        started = time.perf_counter()
        path = run_stage(name, output, build, log=log)
        timings[name] = time.perf_counter() - started
        return path

    data_dir = stage("data", out / "data", lambda tmp: _synthesize(config, tmp))
    started = time.perf_counter()
    sft = train_sft_stage(
        config.sft_config, str(data_dir), out / "sft", seed=config.seed, overrides=config.sft_overrides,
        num_threads=config.num_threads, log=log,
    )  # fmt: skip
    timings["sft"] = time.perf_counter() - started
    feedback = stage("feedback", out / "feedback", lambda tmp: _feedback(config, sft, data_dir, tmp, log))
    policies = {"SFT": sft}
    for row, spec in config.active_aligners().items():
        name = stage_dir(row)
        policies[row] = stage(
            name, out / name, lambda tmp, s=spec: _align(config, s, sft, feedback, data_dir, tmp, log)
        )
    results_file = stage(
        "eval", out / "eval.json", lambda tmp: _evaluate(config, data_dir, policies, tmp, log)
    )
    results = json.loads(results_file.read_text())
    from experiments.pipelines.report import write_quickstart_report

    report = write_quickstart_report(config, results, out, timings, log=log)
    log(f"\n{results['table']}\n")
    log(f"[report] {report}")
    return report


# --- stages ---------------------------------------------------------------------------------------------------
def _synthesize(config: QuickstartConfig, tmp: Path) -> None:
    from dyadic_env.synthetic import write_preset

    write_preset(config.preset, tmp, seed=config.seed)


def _feedback(config: QuickstartConfig, sft: Path, data_dir: Path, tmp: Path, log: Log) -> None:
    from experiments.pipelines.alignment import collect_preferences

    collect_preferences(sft, str(data_dir), tmp, config.feedback_config(), log=log)


def _align(
    config: QuickstartConfig,
    spec: dict[str, Any],
    sft: Path,
    feedback: Path,
    data_dir: Path,
    tmp: Path,
    log: Log,
) -> None:
    """One aligner on the quickstart's rated groups; its checkpoint becomes ``tmp`` (its work folder stays)."""
    from dyadic_env.data import load_dataset
    from experiments.pipelines.aligners import AlignmentTask, BudgetLedger, load_algorithm
    from experiments.pipelines.alignment import load_pairs, load_rated_groups

    work = tmp.with_name(tmp.name.removesuffix(".partial") + ".work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _, pairs = load_pairs(feedback / "preferences")
    groups = load_rated_groups(feedback)
    ledger = BudgetLedger(len(groups), spent=len(groups))  # the quickstart rates once: no on-policy rounds

    def collect(policy: Path, count: int, tag: str) -> tuple[list[Any], list[Any]]:
        ledger.charge(count, tag)  # always refuses, naming the budget
        raise RuntimeError("unreachable")

    task = AlignmentTask(
        sft=sft, pairs=pairs, groups=groups, dataset=load_dataset(data_dir), budget=len(groups), seed=config.seed,
        out=work, collect=collect, log=log, num_threads=config.num_threads,
    )  # fmt: skip
    policy = load_algorithm(spec["algorithm"], spec.get("settings", {}))(task)
    shutil.copytree(policy, tmp)


def _evaluate(
    config: QuickstartConfig, data_dir: Path, policies: dict[str, Path], tmp: Path, log: Log
) -> None:
    from experiments.pipelines.evaluation import evaluate_quickstart

    results = evaluate_quickstart(
        data_dir, policies, baselines=BASELINES, seed=config.seed, max_clips=config.max_eval_clips,
        temperature=config.eval_temperature, samples=config.eval_samples, mode=config.eval_mode, log=log,
    )  # fmt: skip
    tmp.write_text(json.dumps(results, indent=1))
