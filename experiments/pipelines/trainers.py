"""The reward-model and PPO stages that ``dyadic train rm|ppo`` and the pipelines run, with their configs.

Each config is one dataclass read from YAML (``experiments/configs/{rm,ppo}_small.yaml``); the functions import
their heavy dependencies (torch, SB3) only when they run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agents.alignment.ppo_config import PPOConfig  # a plain dataclass: no torch, no SB3


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
