"""Paper Table IV over several seeds, with confidence intervals: ``dyadic ablations [--seeds N]``.

One SFT checkpoint (trained once, or given) is the common start. For every seed, preference data is collected
afresh (candidate sampling, simulated annotators and pairing all seeded), and each variant is trained on it:

- ``dpo``: SFT+DPO (the paper's Full model);
- ``random_prefer``: DPO on the same pairs with random labels;
- ``sft_preferred``: continued SFT on the preferred trajectories;
- ``iterated_dpo``: rounds of collect (from the current policy) -> rate -> DPO (the closed feedback loop);
- ``ppo``: PPO on a reward model fitted to the same pairs.

Every policy of a seed, SFT included, is evaluated on the test split with the same sampling seed (common
random numbers), so the per-seed difference to SFT isolates the training. The summary gives, per variant,
the mean difference of the oracle's weighted score (and of L2, FD) over seeds with a 95 % Student-t interval.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.pipelines.alignment import FeedbackConfig, Log
from experiments.pipelines.evaluation import check_eval_decoding
from experiments.pipelines.stages import run_stage

VARIANTS = ("dpo", "random_prefer", "sft_preferred", "iterated_dpo", "ppo")
ROW = {"dpo": "SFT+DPO", "random_prefer": "Random-Prefer", "sft_preferred": "SFT-Preferred",
       "iterated_dpo": "Iterated DPO", "ppo": "SFT+PPO"}  # fmt: skip


@dataclass
class AblationConfig:
    """Arguments of ``dyadic ablations`` (``experiments/configs/ablations_small.yaml``)."""

    out: Path = Path("runs/ablations")
    """Run directory (resumable: finished stages are skipped)."""
    dataset: str = "synthetic:small"
    """Dataset directory or ``synthetic:PRESET`` (the oracle needs synthetic data)."""
    sft: str | None = None
    """An SFT checkpoint to start from; None trains one with ``sft_config`` into ``out/sft``."""
    sft_config: str = "sft_small.yaml"
    """SFT config (a file in experiments/configs/ or a path) when ``sft`` is None."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Seeds of the preference collection, training and evaluation sampling."""
    variants: list[str] = field(default_factory=lambda: ["dpo", "random_prefer", "sft_preferred"])
    """Which of ``dpo``, ``random_prefer``, ``sft_preferred``, ``iterated_dpo``, ``ppo`` to run."""
    feedback: dict[str, Any] = field(default_factory=dict)
    """:class:`~experiments.pipelines.alignment.FeedbackConfig` fields (``seed`` is set per seed)."""
    dpo: dict[str, Any] = field(default_factory=dict)
    """:class:`~agents.alignment.dpo.DPOTrainingConfig` fields."""
    sft_preferred: dict[str, Any] = field(default_factory=dict)
    """:class:`~agents.alignment.ablations.ContinueSFTConfig` fields."""
    rm: dict[str, Any] = field(default_factory=dict)
    """Reward model fields (``ppo`` variant)."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """PPO fields (``ppo`` variant)."""
    iterated_rounds: int = 2
    """Rounds of the ``iterated_dpo`` variant (its preference labels are split over the rounds)."""
    eval_temperature: float = 0.7
    """Sampling temperature of every policy at evaluation (``sft_small`` decodes at 0.7 when deployed)."""
    eval_mode: str = "sample"
    """Decoding of every policy at evaluation (:data:`agents.vla.decoding.DECODE_MODES`)."""
    eval_samples: int = 8
    """Samples per test clip (the oracle's scores average over them; with 2 the evaluation noise of a seed's
    difference to SFT was about as large as DPO's effect)."""
    max_eval_clips: int | None = None
    """Evaluate on the first N test clips (None: all)."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"variants: {unknown or self.variants} not in {', '.join(VARIANTS)}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: expected distinct seeds, found {self.seeds}")
        if self.iterated_rounds < 1 or self.eval_samples < 1:
            raise ValueError("iterated_rounds and eval_samples must be >= 1")
        check_eval_decoding(self.eval_mode, self.eval_temperature)
        for seed in self.seeds:  # validate every stage config up front
            self.feedback_config(seed)
            self.dpo_config(seed)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AblationConfig:
        from dyadic_env.config import config_from_dict

        return config_from_dict(cls, values, "ablations config")

    def feedback_config(self, seed: int, **changes: Any) -> FeedbackConfig:
        return FeedbackConfig(**{**self.feedback, "seed": seed, **changes})

    def dpo_config(self, seed: int) -> Any:
        from agents.alignment.dpo import DPOTrainingConfig

        return DPOTrainingConfig.from_dict({"num_threads": self.num_threads, **self.dpo, "seed": seed})


def student_t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval of ``values`` (nan interval for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def run_ablations(config: AblationConfig, log: Log = print) -> dict[str, Any]:
    """Run every seed and variant; returns (and writes ``summary.json``/``summary.md``) the summary."""
    import torch

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablations_config.json").write_text(json.dumps(asdict(config), indent=1, default=str))
    sft = Path(config.sft) if config.sft else _train_sft(config, out / "sft", log)
    per_seed = {}
    for seed in config.seeds:
        log(f"=== seed {seed} ===")
        per_seed[seed] = json.loads(_run_seed(config, sft, seed, out / f"seed{seed}", log).read_text())
    summary = summarize(per_seed, config.variants)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    log(summary_markdown(summary))
    return summary


def _train_sft(config: AblationConfig, run_dir: Path, log: Log) -> Path:
    from agents.vla.sft import FINAL_DIR, SFTConfig, train_sft
    from experiments.configs import read_config

    final = run_dir / FINAL_DIR
    if final.exists():
        return final
    values = read_config(config.sft_config)
    values.update(dataset=config.dataset, output_dir=str(run_dir))
    log("[sft] running")
    return train_sft(SFTConfig.from_dict(values), progress=False)


def _run_seed(config: AblationConfig, sft: Path, seed: int, root: Path, log: Log) -> Path:
    from experiments.pipelines import quickstart as qs
    from experiments.pipelines.alignment import collect_preferences

    root.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, output: Path, build: Any) -> Path:
        started = time.perf_counter()
        path = run_stage(f"seed {seed}: {name}", output, build, log=log)
        timings[name] = time.perf_counter() - started
        return path

    feedback = stage(
        "feedback", root / "feedback",
        lambda tmp: collect_preferences(sft, config.dataset, tmp, config.feedback_config(seed), log=log),
    )  # fmt: skip
    prefs = feedback / "preferences"
    quick = qs.QuickstartConfig(
        out=root, seed=seed, dpo={**config.dpo}, sft_preferred=config.sft_preferred, rm=config.rm, ppo=config.ppo,
        num_threads=config.num_threads, render=False,
    )  # fmt: skip
    policies: dict[str, Path] = {"SFT": sft}
    for variant in config.variants:
        output = root / variant
        if variant == "dpo":
            build: Any = lambda tmp: qs._dpo(quick, sft, prefs, tmp, shuffle=False)  # noqa: E731
        elif variant == "random_prefer":
            build = lambda tmp: qs._dpo(quick, sft, prefs, tmp, shuffle=True)  # noqa: E731
        elif variant == "sft_preferred":
            build = lambda tmp: qs._sft_preferred(quick, sft, prefs, tmp)  # noqa: E731
        elif variant == "ppo":
            rm = stage("rm", root / "rm", lambda tmp: qs._reward_model(quick, prefs, tmp))
            build = lambda tmp, rm=rm: qs._ppo(quick, sft, rm, Path(config.dataset), tmp)  # noqa: E731
        else:
            build = lambda tmp: iterated_dpo(config, sft, seed, tmp, log)  # noqa: E731
        policies[ROW[variant]] = stage(variant, output, build)

    def evaluate(tmp: Path) -> None:
        from experiments.pipelines.evaluation import evaluate_quickstart

        results = evaluate_quickstart(
            config.dataset, policies, baselines=(), seed=seed, max_clips=config.max_eval_clips,
            temperature=config.eval_temperature, samples=config.eval_samples, mode=config.eval_mode, log=log,
        )  # fmt: skip
        results["timings"] = timings
        tmp.write_text(json.dumps(results, indent=1))

    _drop_stale_evaluation(root / "eval.json", policies, config, log)
    return stage("eval", root / "eval.json", evaluate)


def _drop_stale_evaluation(path: Path, policies: dict[str, Path], config: AblationConfig, log: Log) -> None:
    """Delete a seed's ``eval.json`` made for other variants or evaluation settings, so a rerun redoes it."""
    if not path.exists():
        return
    previous = json.loads(path.read_text())
    missing = sorted(set(policies) - set(previous.get("rows", {})))
    settings = (previous.get("temperature"), previous.get("samples"), previous.get("mode", "sample"))
    wanted = (config.eval_temperature, config.eval_samples, config.eval_mode)
    if missing:
        reason = f"has no rows for {missing}"
    elif settings != wanted:
        reason = f"sampled (temperature, samples per clip, mode) = {settings}, the config asks for {wanted}"
    else:
        return
    log(f"[{path.parent.name}: eval] {path} {reason}: evaluating again")
    path.unlink()


def iterated_dpo(config: AblationConfig, sft: Path, seed: int, out: Path, log: Log) -> None:
    """Rounds of collect -> rate -> DPO: round k samples candidates from round k-1's policy and aligns it with
    DPO (its own reference). The rounds share the label budget of one collection (groups split over rounds)."""
    import shutil

    from agents.alignment.dpo import train_dpo
    from dyadic_env.data import load_dataset
    from experiments.pipelines.alignment import choose_clip_ids, collect_preferences, load_pairs

    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(config.dataset)
    base = config.feedback_config(seed)
    all_ids = choose_clip_ids(dataset, base.split, base.clips, seed)
    rounds = config.iterated_rounds
    policy = sft
    for k in range(rounds):
        share = all_ids[k::rounds]
        round_dir = out / f"round{k}"
        feedback = round_dir / "feedback"
        if not (feedback / "preferences").exists():
            shutil.rmtree(feedback, ignore_errors=True)
            collect_preferences(policy, config.dataset, feedback, base, policy_name=f"round{k}", log=log,
                                clip_ids=share)  # fmt: skip
        _, pairs = load_pairs(feedback / "preferences")
        policy, _ = train_dpo(
            policy, pairs, dataset.clip, config.dpo_config(seed + 1000 * k), round_dir / "policy"
        )
        log(f"  iterated DPO round {k + 1}/{rounds}: {len(pairs)} pairs")
    for item in Path(policy).iterdir():  # the last round's policy is the variant's checkpoint
        target = out / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)


def summarize(per_seed: dict[int, dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """Per variant: per-seed differences to SFT and their mean with a 95 % Student-t interval."""
    summary: dict[str, Any] = {"seeds": list(per_seed), "variants": {}}
    for variant in variants:
        row = ROW[variant]
        entry: dict[str, Any] = {"row": row}
        for key in (
            "weighted",
            "L2",
            "FD",
            "P-FD",
            "L2 Affect",
            "appropriateness",
            "empathy",
            "engagement",
            "naturalness",
        ):
            diffs, values = [], []
            for results in per_seed.values():
                rows = results["rows"]
                if row in rows and key in rows[row] and key in rows.get("SFT", {}):
                    diffs.append(rows[row][key] - rows["SFT"][key])
                    values.append(rows[row][key])
            if diffs:
                mean, low, high = student_t_interval(diffs)
                entry[key] = {"diffs": diffs, "values": values, "mean_diff": mean, "ci_low": low, "ci_high": high,
                              "excludes_zero": bool(low > 0 or high < 0)}  # fmt: skip
        summary["variants"][variant] = entry
    summary["sft"] = {
        key: [r["rows"]["SFT"][key] for r in per_seed.values() if key in r["rows"]["SFT"]]
        for key in ("weighted", "L2", "FD")
    }
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    lines = [
        f"## Ablations over {len(seeds)} seeds ({', '.join(map(str, seeds))}): difference to SFT",
        "",
        "Mean over seeds of (variant - SFT), each seed evaluated with common random numbers; 95 % Student-t "
        "interval. Oracle ↑ is better, L2 and FD ↓.",
        "",
        "| Variant | Δ Oracle [95 % CI] | per seed | Δ L2 [95 % CI] | Δ FD [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for entry in summary["variants"].values():

        def cell(key: str, entry: dict[str, Any] = entry) -> str:
            e = entry.get(key)
            if not e:
                return ""
            return f"{e['mean_diff']:+.3f} [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"

        per = ", ".join(f"{d:+.3f}" for d in entry.get("weighted", {}).get("diffs", []))
        lines.append(f"| {entry['row']} | {cell('weighted')} | {per} | {cell('L2')} | {cell('FD')} |")
    sft = summary.get("sft", {})
    if sft.get("weighted"):
        lines += ["", f"SFT itself: oracle {np.mean(sft['weighted']):.3f}, L2 {np.mean(sft['L2']):.4f}, "
                      f"FD {np.mean(sft['FD']):.3f} (mean over seeds)."]  # fmt: skip
    return "\n".join(lines) + "\n"
