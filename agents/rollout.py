"""Closed-loop rollouts of an agent through the listener environment."""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from agents.base import Agent


class Trajectory(NamedTuple):
    """One episode: the clip, the listener's tokens and decoded frames ``(T, 56)``, rewards ``(steps,)``."""

    clip_id: str
    tokens: np.ndarray
    frames: np.ndarray
    rewards: np.ndarray
    infos: list[dict[str, Any]]


def rollout(env: gym.Env, agent: Agent, *, clip_id: str | None = None, seed: int | None = None) -> Trajectory:
    """Run ``agent`` for one episode of ``env`` (on ``clip_id`` if given); ``seed`` seeds env and agent.

    ``env`` is a ``dyadic_env/Listener-v0`` env, wrapped or not (observation wrappers change what the agent
    sees). ``tokens`` and ``frames`` cover every frame of the clip (chunks are cut at its end); ``rewards``
    and ``infos`` have one entry per step, the reset's info first in ``infos``.
    """
    agent.reset(seed=seed)
    observation, info = env.reset(seed=seed, options={"clip_id": clip_id} if clip_id is not None else None)
    infos, rewards = [info], []
    done = False
    while not done:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation))
        rewards.append(float(reward))
        infos.append(info)
        done = terminated or truncated
    tokens, frames = env.unwrapped.listener_trajectory()  # type: ignore[attr-defined]
    return Trajectory(infos[0]["clip_id"], tokens, frames, np.asarray(rewards, dtype=np.float64), infos)
