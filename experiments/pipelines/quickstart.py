"""The README's main job: the whole paper loop on the bundled synthetic benchmark, in minutes on a CPU.

Stages (each resumable: it writes ``X.partial`` and renames it to ``X`` on success; a re-run skips every
stage whose output exists, see :mod:`experiments.pipelines.stages`):

1. ``data``: the synthetic benchmark (its action tokenizer is fitted on the train split);
2. ``sft``: supervised fine-tuning of the VLA (``experiments/configs/sft_small.yaml``; resumes from its own
   checkpoints after a kill);
3. ``feedback``: SFT candidates (N = 8 per train clip; the ground truth optionally) rated by simulated annotators
   through the feedback store and annotation API, ranked and paired best vs worst (paper eq. 10);
4. ``dpo``: SFT+DPO on those pairs (paper eq. 11, trl);
5. ``random_prefer`` and ``sft_preferred``: the ablations of paper Table IV;
6. ``rm`` and ``ppo``: a reward-model ensemble on the same pairs, then PPO (SB3) on it from the same SFT network;
7. ``eval``: closed-loop evaluation on the test split of Random, NN, Mean, SFT and all aligned policies;
8. ``report``: ``report.md`` (tables shaped like the paper's II and IV, the oracle's criteria, DPO vs PPO at
   the same number of preference labels), plots and a rendered sample video.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.pipelines.alignment import FeedbackConfig, Log
from experiments.pipelines.evaluation import check_eval_decoding
from experiments.pipelines.stages import run_stage

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
    """Fields of the SFT config to override (e.g. ``max_steps``, ``model: {head_hidden: 64}``)."""
    feedback: dict[str, Any] = field(default_factory=dict)
    """:class:`~experiments.pipelines.alignment.FeedbackConfig` fields."""
    dpo: dict[str, Any] = field(default_factory=dict)
    """:class:`~agents.alignment.dpo.DPOTrainingConfig` fields."""
    sft_preferred: dict[str, Any] = field(default_factory=dict)
    """:class:`~agents.alignment.ablations.ContinueSFTConfig` fields."""
    rm: dict[str, Any] = field(default_factory=dict)
    """:class:`~experiments.pipelines.trainers.RewardModelRunConfig` fields."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """:class:`~experiments.pipelines.trainers.PPORunConfig` fields."""
    eval_temperature: float = 0.7
    """Sampling temperature of the VLA policies at evaluation (``sft_small`` decodes at 0.7 when deployed)."""
    eval_mode: str = "sample"
    """Decoding of the VLA policies at evaluation (:data:`agents.vla.decoding.DECODE_MODES`)."""
    eval_samples: int = 4
    """Closed-loop samples of each VLA policy per test clip: the paper's metrics use the first, the oracle's
    criteria average over all. With 1, a policy's oracle score moved by about 0.1 between sampling seeds on
    ``small``, as much as DPO's effect."""
    skip_ppo: bool = False
    """Leave out the reward model and PPO stages."""
    render: bool = True
    """Render a sample video (needs the offscreen renderer)."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        from dyadic_env.synthetic import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, found {self.preset!r}")
        if self.max_eval_clips is not None and self.max_eval_clips < 1:
            raise ValueError(f"max_eval_clips must be >= 1 or None, found {self.max_eval_clips}")
        if self.eval_samples < 1:
            raise ValueError(f"eval_samples must be >= 1, found {self.eval_samples}")
        check_eval_decoding(self.eval_mode, self.eval_temperature)
        # Validate the stage configs now, not twenty minutes in.
        self.feedback_config()
        self.dpo_config()
        self.ppo_config()
        self.rm_config()
        self.sft_preferred_config()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> QuickstartConfig:
        from dyadic_env.config import config_from_dict

        return config_from_dict(cls, values, "quickstart config")

    def feedback_config(self) -> FeedbackConfig:
        return FeedbackConfig(**{"seed": self.seed, **self.feedback})

    def dpo_config(self) -> Any:
        from agents.alignment.dpo import DPOTrainingConfig

        return DPOTrainingConfig.from_dict({"seed": self.seed, "num_threads": self.num_threads, **self.dpo})

    def sft_preferred_config(self) -> Any:
        from agents.alignment.ablations import ContinueSFTConfig

        return ContinueSFTConfig(**{"seed": self.seed, **self.sft_preferred})

    def rm_config(self) -> Any:
        from experiments.pipelines.trainers import RewardModelRunConfig

        return RewardModelRunConfig.from_dict({"seed": self.seed, "num_threads": self.num_threads, **self.rm})

    def ppo_config(self) -> Any:
        from experiments.pipelines.trainers import PPORunConfig

        return PPORunConfig.from_dict({"seed": self.seed, "num_threads": self.num_threads, **self.ppo})


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
    sft = _sft(config, data_dir, out / "sft", log, timings)
    feedback = stage("feedback", out / "feedback", lambda tmp: _feedback(config, sft, data_dir, tmp, log))
    prefs = feedback / "preferences"
    policies = {"SFT": sft}
    policies["SFT+DPO"] = stage("dpo", out / "dpo", lambda tmp: _dpo(config, sft, prefs, tmp, shuffle=False))
    policies["Random-Prefer"] = stage(
        "random_prefer", out / "random_prefer", lambda tmp: _dpo(config, sft, prefs, tmp, shuffle=True)
    )
    policies["SFT-Preferred"] = stage(
        "sft_preferred", out / "sft_preferred", lambda tmp: _sft_preferred(config, sft, prefs, tmp)
    )
    if not config.skip_ppo:
        rm = stage("rm", out / "rm", lambda tmp: _reward_model(config, prefs, tmp))
        policies["SFT+PPO"] = stage("ppo", out / "ppo", lambda tmp: _ppo(config, sft, rm, data_dir, tmp))
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


def _sft(
    config: QuickstartConfig, data_dir: Path, run_dir: Path, log: Log, timings: dict[str, float]
) -> Path:
    """SFT into ``run_dir`` (the trainer resumes from its checkpoints and writes ``final/`` atomically)."""
    from agents.vla.sft import FINAL_DIR, SFTConfig, train_sft
    from experiments.configs import merge_fields, read_config

    final = run_dir / FINAL_DIR
    if final.exists():
        log(f"[sft] done already: {final} (delete it to redo the stage)")
        return final
    values = read_config(config.sft_config)
    values.update(dataset=str(data_dir), output_dir=str(run_dir), seed=config.seed)
    values = merge_fields(values, config.sft_overrides)  # model: {...} changes only the keys it names
    if config.num_threads:
        values.setdefault("num_threads", config.num_threads)
    log("[sft] running")
    started = time.perf_counter()
    final = train_sft(SFTConfig.from_dict(values), progress=False)
    timings["sft"] = time.perf_counter() - started
    log(f"[sft] finished in {timings['sft']:.1f} s -> {final}")
    return final


def _feedback(config: QuickstartConfig, sft: Path, data_dir: Path, tmp: Path, log: Log) -> None:
    from experiments.pipelines.alignment import collect_preferences

    collect_preferences(sft, str(data_dir), tmp, config.feedback_config(), log=log)


def _dpo(config: QuickstartConfig, sft: Path, prefs: Path, tmp: Path, *, shuffle: bool) -> None:
    from agents.alignment.ablations import randomize_labels
    from agents.alignment.dpo import train_dpo
    from dyadic_env.data import load_dataset
    from experiments.pipelines.alignment import load_pairs

    data, pairs = load_pairs(prefs)
    if shuffle:
        pairs = randomize_labels(pairs, seed=config.seed)
    train_dpo(sft, pairs, load_dataset(data.dataset_spec).clip, config.dpo_config(), tmp)


def _sft_preferred(config: QuickstartConfig, sft: Path, prefs: Path, tmp: Path) -> None:
    from agents.alignment.ablations import continue_sft
    from dyadic_env.data import load_dataset
    from experiments.pipelines.alignment import load_pairs

    data, pairs = load_pairs(prefs)
    chosen = [(p.clip_id, p.chosen_tokens) for p in pairs]
    continue_sft(sft, chosen, load_dataset(data.dataset_spec).clip, config.sft_preferred_config(), tmp)


def _reward_model(config: QuickstartConfig, prefs: Path, tmp: Path) -> None:
    from dyadic_env.data import load_dataset
    from experiments.pipelines.alignment import load_pairs
    from experiments.pipelines.trainers import train_reward_model_from_preferences

    data, _ = load_pairs(prefs)
    train_reward_model_from_preferences(data, load_dataset(data.dataset_spec), config.rm_config(), tmp)


def _ppo(config: QuickstartConfig, sft: Path, rm: Path, data_dir: Path, tmp: Path) -> None:
    from experiments.pipelines.trainers import train_ppo_on_learned_reward

    train_ppo_on_learned_reward(sft, rm, str(data_dir), config.ppo_config(), tmp)


def _evaluate(
    config: QuickstartConfig, data_dir: Path, policies: dict[str, Path], tmp: Path, log: Log
) -> None:
    from experiments.pipelines.evaluation import evaluate_quickstart

    results = evaluate_quickstart(
        data_dir, policies, baselines=BASELINES, seed=config.seed, max_clips=config.max_eval_clips,
        temperature=config.eval_temperature, samples=config.eval_samples, mode=config.eval_mode, log=log,
    )  # fmt: skip
    tmp.write_text(json.dumps(results, indent=1))
