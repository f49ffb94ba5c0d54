"""The alignment trainers of ``dyadic train``: ``dpo``, ``rm`` and ``ppo``.

``experiments/commands/train.py`` registers them beside ``sft``; each reads a YAML config mapped onto one
dataclass (``experiments/configs/{dpo,rm,ppo}_*.yaml``) with ``key=value`` overrides, and imports its heavy
dependencies only when it runs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agents.alignment.ppo_config import PPOConfig  # a plain dataclass: no torch, no SB3


def register_alignment_trainers(trainers: argparse._SubParsersAction) -> None:
    """Add ``dpo``, ``rm`` and ``ppo`` to the ``dyadic train`` subparsers."""
    from experiments.commands.train import add_config_arguments

    dpo = trainers.add_parser(
        "dpo", help="DPO of a VLA checkpoint on a preference dataset (paper eq. 11, trl's DPOTrainer)",
        description="Align an SFT checkpoint with preference pairs through trl's DPOTrainer; the reference is a "
        "frozen copy of the checkpoint. TensorBoard logs land in OUT/tb.",
    )  # fmt: skip
    dpo.add_argument(
        "--policy", type=Path, required=True, help="SFT checkpoint directory (e.g. runs/sft_small/final)"
    )
    dpo.add_argument(
        "--preferences", type=Path, required=True, help="preference dataset (dyadic feedback export)"
    )
    dpo.add_argument("--out", type=Path, required=True, help="directory for the aligned checkpoint")
    dpo.add_argument(
        "--dataset", default=None, help="speaker dataset (default: the one the preferences name)"
    )
    add_config_arguments(dpo, "experiments/configs/dpo_small.yaml")
    dpo.set_defaults(handler=run_dpo)

    rm = trainers.add_parser(
        "rm", help="a Bradley-Terry reward-model ensemble on a preference dataset",
        description="Train r(observation, action) whose sums over trajectories explain the preference pairs.",
    )  # fmt: skip
    rm.add_argument(
        "--preferences", type=Path, required=True, help="preference dataset (dyadic feedback export)"
    )
    rm.add_argument("--dataset", default=None, help="speaker dataset (default: the one the preferences name)")
    rm.add_argument("--out", type=Path, required=True, help="directory for the reward model")
    add_config_arguments(rm, "experiments/configs/rm_small.yaml")
    rm.set_defaults(handler=run_rm)

    ppo = trainers.add_parser(
        "ppo", help="PPO (Stable-Baselines3) of a VLA checkpoint on a learned reward, KL-penalised to the SFT policy",
        description="Fine-tune the VLA with PPO in dyadic_env/Listener-v0 whose reward is a learned reward model.",
    )  # fmt: skip
    ppo.add_argument("--policy", type=Path, required=True, help="SFT checkpoint directory")
    ppo.add_argument(
        "--reward-model", type=Path, required=True, help="reward model directory (dyadic train rm)"
    )
    ppo.add_argument(
        "--dataset", required=True, help="dataset directory or synthetic:PRESET (episodes replay it)"
    )
    ppo.add_argument("--out", type=Path, required=True, help="directory for the tuned checkpoint")
    add_config_arguments(ppo, "experiments/configs/ppo_small.yaml")
    ppo.set_defaults(handler=run_ppo)


def _config(cls: Any, args: argparse.Namespace) -> Any:
    from experiments.cli import UserError
    from experiments.commands.train import load_config_fields

    values = load_config_fields(args.config, args.overrides)
    try:
        return cls.from_dict(values)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None


def _check_dir(path: Path, what: str, hint: str) -> None:
    from experiments.cli import UserError

    if not path.is_dir():
        raise UserError(f"{what} {path}: no such directory; {hint}")


def _preferences(path: Path, dataset_arg: str | None) -> tuple[Any, Any]:
    from dyadic_env.data import load_dataset
    from experiments.cli import UserError
    from human_feedback.preferences import PreferenceDataset

    _check_dir(path, "--preferences", "create one with `dyadic feedback export`")
    try:
        prefs = PreferenceDataset.load(path)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    spec = dataset_arg or prefs.dataset_spec
    if not spec:
        raise UserError(f"--preferences {path} names no dataset; pass --dataset DIR_OR_SYNTHETIC_PRESET")
    if not prefs.pairs:
        raise UserError(f"--preferences {path} holds no pairs; collect more ratings or lower --min-margin")
    return prefs, load_dataset(spec)


# --- dpo -------------------------------------------------------------------------------------------------------
def run_dpo(args: argparse.Namespace) -> int:
    from agents.alignment.dpo import DPOTrainingConfig, train_dpo

    config = _config(DPOTrainingConfig, args)
    _check_dir(args.policy, "--policy", "train one with `dyadic train sft`")
    prefs, dataset = _preferences(args.preferences, args.dataset)
    out, metrics = train_dpo(args.policy, prefs.pairs, dataset.clip, config, args.out)
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("rewards/", "loss"))}
    print(f"dpo: {len(prefs.pairs)} pairs, last step {json.dumps(shown)}")
    print(f"dpo: aligned policy saved to {out} (TensorBoard: {out / 'tb'})")
    return 0


# --- rm --------------------------------------------------------------------------------------------------------
@dataclass
class RewardModelRunConfig:
    """``dyadic train rm`` settings (``experiments/configs/rm_small.yaml``): features, network, training."""

    speaker_frames: int = 16
    """Recent speaker frames a step sees (newest last)."""
    speaker_stride: int = 4
    """Take every n-th of those frames."""
    listener_history: int = 2
    """The listener's own previous frames a step sees (as motion)."""
    word_buckets: int = 64
    """Hashed bag-of-words size (0: no words)."""
    hidden_sizes: tuple[int, ...] = (128, 64)
    """Widths of each member's MLP."""
    ensemble_size: int = 3
    """Members; their std is the disagreement."""
    criteria_head: bool = True
    """Also predict the four criteria."""
    epochs: int = 30
    """Passes over the pairs per member."""
    batch_size: int = 32
    """Pairs per step."""
    learning_rate: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    val_fraction: float = 0.2
    """Pairs held out to report accuracy."""
    bootstrap: bool = True
    """Each member trains on its own resample of the pairs."""
    reward_l2: float = 1e-3
    """Penalty on squared per-step rewards (pins the free offset)."""
    seed: int = 0
    """Seeds initialisation, split and batches."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RewardModelRunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"rm config: unknown fields {unknown}; known fields: {', '.join(sorted(known))}")
        return cls(**values)

    def model_config(self) -> Any:
        from reward_models import RewardModelConfig, StepFeatureConfig

        features = StepFeatureConfig(
            speaker_frames=self.speaker_frames, speaker_stride=self.speaker_stride,
            listener_history=self.listener_history, word_buckets=self.word_buckets,
        )  # fmt: skip
        return RewardModelConfig(
            features=features, hidden_sizes=tuple(self.hidden_sizes), ensemble_size=self.ensemble_size,
            criteria_head=self.criteria_head,
        )  # fmt: skip

    def training_config(self) -> Any:
        from reward_models import RewardTrainingConfig

        return RewardTrainingConfig(
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, val_fraction=self.val_fraction, bootstrap=self.bootstrap,
            reward_l2=self.reward_l2, seed=self.seed,
        )  # fmt: skip


def train_reward_model_from_preferences(
    prefs: Any, dataset: Any, config: RewardModelRunConfig, out: Path, *, tokenizer: Any = None
) -> dict[str, float]:
    """Train and save a reward model on a preference dataset (``out`` is written atomically)."""
    import os
    import shutil

    import torch

    from reward_models import pair_data_from_preferences, train_reward_model

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    model_config = config.model_config()
    tokenizer = tokenizer or prefs.tokenizer() or dataset.tokenizer()
    if tokenizer is None:
        raise ValueError("no action tokenizer: the preference dataset and the speaker dataset both lack one")
    data = pair_data_from_preferences(prefs, dataset, tokenizer, model_config.features)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model, figures = train_reward_model(
        data, model_config, config.training_config(), log_dir=str(partial / "tb")
    )
    model.save_pretrained(partial)
    (partial / "training.json").write_text(
        json.dumps({"figures": figures, "config": asdict(config)}, indent=1)
    )
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return figures


def run_rm(args: argparse.Namespace) -> int:
    config = _config(RewardModelRunConfig, args)
    prefs, dataset = _preferences(args.preferences, args.dataset)
    figures = train_reward_model_from_preferences(prefs, dataset, config, args.out)
    print(
        f"rm: {int(figures['num_train_pairs'])} training pairs, train accuracy {figures['train_accuracy']:.3f}, "
        f"held-out accuracy {figures['val_accuracy']:.3f} ({int(figures['num_val_pairs'])} pairs)"
    )
    print(f"rm: reward model saved to {args.out}")
    return 0


# --- ppo -------------------------------------------------------------------------------------------------------
@dataclass
class PPORunConfig(PPOConfig):
    """``dyadic train ppo`` settings (``experiments/configs/ppo_small.yaml``): every
    :class:`~agents.alignment.ppo.PPOConfig` field, plus the env and the learned reward."""

    disagreement_penalty: float = 0.0
    """Subtract this times the reward ensemble's std (pessimism where members disagree)."""
    context_frames: int = 16
    """K, frames of history the windowed policy sees (PPO re-runs the window at every step)."""
    split: str = "train"
    """Split whose clips the episodes replay."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PPORunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"ppo config: unknown fields {unknown}; known fields: {', '.join(sorted(known))}"
            )
        if values.get("split") == "test":
            raise ValueError("ppo config: training on the test split would leak it; use split=train")
        return cls(**values)

    def ppo_config(self) -> PPOConfig:
        names = {f.name for f in fields(PPOConfig)}
        return PPOConfig(**{k: v for k, v in asdict(self).items() if k in names})


def train_ppo_on_learned_reward(
    policy: Path, reward_model: Path, dataset_spec: str, config: PPORunConfig, out: Path
) -> Path:
    """PPO from ``policy`` on ``LearnedRewardWrapper(ListenerEnv)`` with the reward model at ``reward_model``."""
    import gymnasium as gym
    import torch

    import dyadic_env  # noqa: F401  (registers the env)
    from agents.alignment.ppo import VLAWordIds, train_ppo
    from agents.vla import VLAForListening
    from dyadic_env.data import load_dataset
    from reward_models import LearnedRewardWrapper, TrajectoryRewardModel

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    rm = TrajectoryRewardModel.from_pretrained(reward_model)
    processor = VLAForListening.from_pretrained(policy).processor
    dataset = load_dataset(dataset_spec)
    needed = int(rm.feature_config.speaker_offsets.max()) + 1
    if config.context_frames < max(needed, rm.feature_config.listener_history):
        raise ValueError(f"ppo config: context_frames must be >= {needed} for this reward model's features")

    def make_env() -> gym.Env:
        env = gym.make(
            "dyadic_env/Listener-v0", dataset=dataset, split=config.split, context_frames=config.context_frames,
            tokenizer=processor.action_tokenizer,
        )  # fmt: skip
        env = LearnedRewardWrapper(env, rm, disagreement_penalty=config.disagreement_penalty)
        return VLAWordIds(env, processor)

    return train_ppo(policy, [make_env] * config.n_envs, config.ppo_config(), out)


def run_ppo(args: argparse.Namespace) -> int:
    from experiments.cli import UserError

    config = _config(PPORunConfig, args)
    _check_dir(args.policy, "--policy", "train one with `dyadic train sft`")
    _check_dir(args.reward_model, "--reward-model", "train one with `dyadic train rm`")
    try:
        out = train_ppo_on_learned_reward(args.policy, args.reward_model, args.dataset, config, args.out)
    except (KeyError, ValueError) as e:
        raise UserError(str(e).strip("'\"")) from None
    print(f"ppo: tuned policy saved to {out} (TensorBoard: {out / 'tb'})")
    return 0
