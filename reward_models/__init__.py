"""Learned reward models (Bradley-Terry ensembles over trajectories) and the wrapper that puts them in an env.

Imports torch; ``import dyadic_env`` stays light.
"""

from reward_models.features import (
    EpisodeContext,
    StepFeatureConfig,
    clip_context,
    episode_context,
    hash_words,
    listener_features,
    observation_features,
    trajectory_features,
    words_per_frame,
)
from reward_models.model import CRITERIA, RewardModelConfig, TrajectoryRewardModel
from reward_models.training import (
    PairData,
    RewardTrainingConfig,
    pair_accuracy,
    pair_data_from_preferences,
    train_reward_model,
)
from reward_models.wrappers import LearnedRewardWrapper

__all__ = [
    "CRITERIA", "EpisodeContext", "LearnedRewardWrapper", "PairData", "RewardModelConfig",
    "RewardTrainingConfig", "StepFeatureConfig", "TrajectoryRewardModel", "clip_context", "episode_context",
    "hash_words",
    "listener_features", "observation_features", "pair_accuracy", "pair_data_from_preferences",
    "train_reward_model", "trajectory_features", "words_per_frame",
]  # fmt: skip
