"""Rollouts of any policy on the listener env as a Minari dataset, for offline-RL users.

:func:`export_minari` rolls a policy (an agent with ``reset``/``act``, or a function of the observation)
through ``dyadic_env/Listener-v0`` once per clip of a split and writes every transition with Minari's
``DataCollector``: the env's raw observations (``words`` as text), token actions, rewards and episode ends,
each episode's reset ``options`` naming its clip. ``minari.load_dataset(dataset_id)`` reads it back, and
``dataset.recover_environment()`` makes the env again (its dataset is recorded by path).

Minari writes under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``). ``dyadic data export
--format minari`` is the command-line form. Needs ``pip install dyadic-listener[offline]``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dyadic_env.data import load_dataset


def export_minari(
    dataset_id: str,
    policy: Any,
    dataset: str | os.PathLike,
    split: str = "test",
    *,
    clip_ids: Sequence[str] | None = None,
    seed: int = 0,
    algorithm_name: str = "",
    description: str = "",
    reward: str = "imitation",
    context_frames: int = 32,
    tokenizer: str | os.PathLike | None = None,
) -> Any:
    """Roll ``policy`` once through every clip of ``split`` (or ``clip_ids``) and write a Minari dataset.

    ``policy`` is an agent (``reset(seed=...)``, ``act(observation) -> tokens``) or a callable
    ``observation -> tokens``; episode ``i`` is seeded ``seed + i``. ``tokenizer``: the file of the tokenizer
    the policy's tokens are meant for (default: the dataset's). Returns the ``MinariDataset``.
    """
    import gymnasium as gym
    import minari

    from dyadic_env.envs import LISTENER_ENV_ID

    data = load_dataset(dataset)
    # Made from the dataset's path, a reward name and a tokenizer file, so Minari can record (and recover) it.
    env = gym.make(
        LISTENER_ENV_ID, dataset=str(data.path), split=split, reward=reward, context_frames=context_frames,
        tokenizer=None if tokenizer is None else str(tokenizer),
    )  # fmt: skip
    clip_ids = list(clip_ids) if clip_ids is not None else data.split(split).clip_ids
    if not clip_ids:
        raise ValueError(f"{data.path}: split {split!r} has no clips to roll out")
    act, reset = _policy_functions(policy)
    name = algorithm_name or _name(policy)
    try:
        episodes = [_episode(env, act, reset, i, clip_id, seed + i) for i, clip_id in enumerate(clip_ids)]
        with (
            warnings.catch_warnings()
        ):  # Minari asks for an author, an email and a code link, which a toolkit cannot know
            warnings.filterwarnings("ignore", message="`(author|code_permalink)", category=UserWarning)
            return minari.create_dataset_from_buffers(
                dataset_id, episodes, env=env, eval_env=env.spec, algorithm_name=name, data_format="arrow",
                description=description or _description(data, split, len(clip_ids), reward, name),
            )  # fmt: skip
    finally:
        env.close()


def _episode(
    env: Any, act: Callable[[Any], Any], reset: Callable[[int], None], index: int, clip_id: str, seed: int
) -> Any:
    """One closed-loop episode on ``clip_id`` as a Minari ``EpisodeBuffer`` (observations stacked per key)."""
    from minari.data_collector import EpisodeBuffer

    options = {"clip_id": clip_id}
    obs, _ = env.reset(seed=seed, options=options)
    reset(seed)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    done = False
    while not done:
        action = np.asarray(act(obs), np.int64)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated))
        done = terminated or truncated
    stacked = {
        key: [o[key] for o in observations] if key == "words" else np.stack([o[key] for o in observations])
        for key in observations[0]
    }
    return EpisodeBuffer(
        id=index, seed=seed, options=options, observations=stacked, actions=np.stack(actions), rewards=rewards,
        terminations=terminations, truncations=truncations,
    )  # fmt: skip


def _policy_functions(policy: Any) -> tuple[Callable[[Any], Any], Callable[[int], None]]:
    if hasattr(policy, "act"):
        reset = getattr(policy, "reset", None)
        return policy.act, (lambda s: reset(seed=s)) if reset is not None else (lambda s: None)
    if callable(policy):
        return policy, lambda s: None
    raise TypeError(
        f"policy: expected an agent (reset, act) or a function of the observation, found {policy!r}"
    )


def _name(policy: Any) -> str:
    return type(policy).__name__ if hasattr(policy, "act") else getattr(policy, "__name__", "policy")


def _description(data: Any, split: str, episodes: int, reward: str, algorithm: str) -> str:
    return (
        f"{episodes} closed-loop episodes of {algorithm} on dyadic_env/Listener-v0, one per clip of split "
        f"{split!r} of {data.name} ({data.path}; expression basis {data.expression_basis}, {data.fps:g} fps); "
        f"reward {reward!r}. Actions are the 56 frame-value tokens; each episode's reset options name its clip."
    )
