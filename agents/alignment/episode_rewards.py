"""Rewards of whole episodes for episode PPO (:mod:`agents.alignment.episode_ppo`): the env's, or a trajectory's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dyadic_env.rewards import EpisodeReward, make_reward


class TrajectoryReward:
    """A reward scored on a whole episode at once: ``score(clip, frames (T, 56)) -> (T,)`` per-step rewards.

    For rewards that read the whole trajectory offline, such as a learned reward model over
    ``reward_models.features.listener_features`` (``experiments.pipelines.trainers.LearnedTrajectoryReward``, in
    the layer that may import reward models). Any object with such a ``score`` method is taken as one.
    """

    def score(self, clip: Any, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def is_trajectory_reward(reward: Any) -> bool:
    """Whether ``reward`` scores whole episodes (a ``score`` method) rather than being an env reward."""
    return not isinstance(reward, str | EpisodeReward) and callable(getattr(reward, "score", None))


def episode_rewards(
    reward: Any, clips: Sequence[Any], trajectories: Sequence[np.ndarray],
    dataset: Any, tokenizer: Any,
) -> list[np.ndarray]:  # fmt: skip
    """Per-step rewards (T,) of each episode: what the env gives for these tokens (a named reward, an
    :class:`EpisodeReward` or a ``RewardFn``; a terminal bonus on the last step), or a :class:`TrajectoryReward`'s."""
    from dyadic_env.envs.listener import non_finite_reward_message

    centers = tokenizer.bin_centers.astype(np.float32)  # the env's lookup table
    dims = np.arange(centers.shape[0])
    trajectory = is_trajectory_reward(reward)
    fn: Any = reward if trajectory else make_reward(reward)
    out = []
    for clip, tokens in zip(clips, trajectories):
        frames = centers[dims, tokens]
        if trajectory:
            rewards = np.asarray(fn.score(clip, frames), np.float64).reshape(-1)
            if rewards.shape != (len(frames),):
                raise ValueError(
                    f"{type(fn).__name__} returned {rewards.shape[0]} rewards for the {len(frames)} frames of clip "
                    f"{clip.clip_id!r}; it must return one per frame"
                )
        else:
            fn.reset(clip, dataset)
            rewards = np.array([fn.step(t, frame) for t, frame in enumerate(frames)], np.float64)
            rewards[-1] += fn.finish()[0]
        bad = np.flatnonzero(~np.isfinite(rewards))
        if len(bad):
            raise ValueError(non_finite_reward_message(rewards[bad[0]], clip.clip_id, int(bad[0]), fn))
        out.append(rewards)
    return out
