"""The reward-model and PPO stages that ``dyadic train rm|ppo`` and the pipelines run, with their configs.

Each config is one dataclass read from YAML (``experiments/configs/{rm,ppo}_small.yaml``); the functions import
their heavy dependencies (torch, SB3) only when they run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from agents.alignment.ppo_config import PPOConfig  # a plain dataclass: no torch, no SB3
from dyadic_env.config import config_from_dict
from reward_models.model import RewardModelConfig
from reward_models.training import RewardTrainingConfig


# --- rm --------------------------------------------------------------------------------------------------------
@dataclass
class RewardModelRunConfig:
    """``dyadic train rm`` settings (``experiments/configs/rm_small.yaml``): the reward model's own configs as
    sections (``model:`` with its ``features:``, ``training:``). An older flat file (``epochs: 30`` at the top)
    still loads: each key moves to the section that has it."""

    model: RewardModelConfig = field(default_factory=RewardModelConfig)
    """The network and its per-step input (:class:`~reward_models.RewardModelConfig`)."""
    training: RewardTrainingConfig = field(default_factory=RewardTrainingConfig)
    """How it is trained, seed included (:class:`~reward_models.RewardTrainingConfig`)."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RewardModelRunConfig:
        return config_from_dict(cls, values, "rm config", flat_sections=("model", "training"))


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
    model_config = config.model
    tokenizer = tokenizer or prefs.tokenizer() or dataset.tokenizer()
    if tokenizer is None:
        raise ValueError("no action tokenizer: the preference dataset and the speaker dataset both lack one")
    data = pair_data_from_preferences(prefs, dataset, tokenizer, model_config.features)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model, figures = train_reward_model(data, model_config, config.training, log_dir=str(partial / "tb"))
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split == "test":
            raise ValueError("ppo config: training on the test split would leak it; use split=train")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PPORunConfig:
        return config_from_dict(cls, values, "ppo config")

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


def preference_data(pairs: Sequence[Any], dataset: Any, features: Any) -> Any:
    """In-memory preference pairs (``clip_id``, ``chosen_tokens``, ``rejected_tokens``, and each side's ratings
    per criterion where they carry them) as a reward model's :class:`~reward_models.PairData`."""
    from types import SimpleNamespace

    from reward_models import pair_data_from_preferences

    return pair_data_from_preferences(
        SimpleNamespace(pairs=list(pairs)), dataset, dataset.tokenizer(), features
    )


def fit_reward_model(pairs: Sequence[Any], dataset: Any, settings: Mapping[str, Any], seed: int) -> Any:
    """A reward model (``dyadic train rm`` settings) on every one of ``pairs`` (no validation split), in memory."""
    from reward_models import train_reward_model

    training = {**settings.get("training", {}), "seed": seed, "val_fraction": 0.0}
    config = RewardModelRunConfig.from_dict({**settings, "training": training})
    data = preference_data(pairs, dataset, config.model.features)
    return train_reward_model(data, config.model, config.training)[0]


class LearnedTrajectoryReward:
    """A reward model's per-step rewards of whole episodes, for episode PPO (a ``TrajectoryReward``).

    Each frame gets the ensemble mean minus ``disagreement_penalty`` times the members' std, in the units
    ``LearnedRewardWrapper`` gives the env (``normalized``), from ``listener_features`` of the whole trajectory at
    once instead of step by step; each clip's speaker context is computed once.
    """

    def __init__(self, path: str | Path, disagreement_penalty: float = 0.0) -> None:
        from reward_models import TrajectoryRewardModel

        if disagreement_penalty < 0:
            raise ValueError(f"disagreement_penalty must be >= 0, found {disagreement_penalty}")
        self.model = TrajectoryRewardModel.from_pretrained(path).eval()
        self.disagreement_penalty = float(disagreement_penalty)
        self._contexts: dict[str, Any] = {}

    def score(self, clip: Any, frames: Any) -> Any:
        from reward_models.features import clip_context, listener_features

        cfg = self.model.feature_config
        context = self._contexts.get(clip.clip_id)
        if context is None:
            context = self._contexts[clip.clip_id] = clip_context(cfg, clip)
        mean, std = self.model.predict(listener_features(cfg, context, frames), normalized=True)
        return mean - self.disagreement_penalty * std


def episode_ppo_reward(reward: str | Path | Any, disagreement_penalty: float = 0.0) -> Any:
    """A named env reward or a ``TrajectoryReward`` object as it is, or the reward model in directory ``reward``
    as a trajectory reward."""
    from agents.alignment.episode_rewards import is_trajectory_reward
    from dyadic_env.rewards import reward_names
    from reward_models.model import CONFIG_FILE

    if is_trajectory_reward(reward):
        if disagreement_penalty:
            raise ValueError(
                f"disagreement_penalty ({disagreement_penalty}) needs a reward-model ensemble (a directory from "
                f"`dyadic train rm`); {type(reward).__name__} has no members to disagree: set it to 0"
            )
        return reward
    if isinstance(reward, str) and reward in reward_names():
        return reward
    if not (Path(reward) / CONFIG_FILE).is_file():
        raise ValueError(
            f"reward: {str(reward)!r} is neither an env reward ({', '.join(reward_names())}) nor a reward-model "
            f"directory (no {CONFIG_FILE} in it); pass a name or the output of `dyadic train rm`"
        )
    return LearnedTrajectoryReward(reward, disagreement_penalty)
