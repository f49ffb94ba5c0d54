"""Resumable pipeline stages.

A stage writes its output into ``<output>.partial`` and renames it into place only on success, so an
interrupted run never leaves a half-written output, and a stage whose output exists is skipped on re-run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_stage(
    name: str, output: Path, build: Callable[[Path], object], *, log: Callable[[str], None] = print
) -> Path:
    """Run ``build(tmp)`` unless ``output`` exists; ``build`` fills ``tmp``, which becomes ``output``.

    ``output`` may be a file or a directory: ``build`` receives the temporary path to create.
    """
    if output.exists():
        log(f"[{name}] done already: {output} (delete it to redo the stage)")
        return output
    partial = output.with_name(output.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)
    elif partial.exists():
        partial.unlink()
    log(f"[{name}] running")
    start = time.perf_counter()
    build(partial)
    if not partial.exists():
        raise RuntimeError(f"stage {name!r} finished without writing {partial}")
    partial.rename(output)
    log(f"[{name}] finished in {time.perf_counter() - start:.1f} s -> {output}")
    return output


# --- typed stages: each takes its own settings and explicit inputs and returns its output ---------------------
def train_sft_stage(
    sft_config: str, dataset: str, run_dir: Path, *, seed: int = 0, overrides: dict | None = None,
    num_threads: int = 0, log: Callable[[str], None] = print,
) -> Path:  # fmt: skip
    """SFT of the VLA into ``run_dir`` (resumes from its own checkpoints); returns the final checkpoint."""
    from agents.vla.sft import FINAL_DIR, SFTConfig, train_sft
    from experiments.configs import read_config

    final = run_dir / FINAL_DIR
    if final.exists():
        log(f"[sft] done already: {final} (delete it to redo the stage)")
        return final
    values = read_config(sft_config)
    values.update(dataset=str(dataset), output_dir=str(run_dir), seed=seed, **(overrides or {}))
    if num_threads:
        values.setdefault("num_threads", num_threads)
    log("[sft] running")
    return train_sft(SFTConfig.from_dict(values), progress=False)


def train_reward_model_stage(
    pairs: list, dataset: Any, settings: dict, out: Path, *, tokenizer: Any = None
) -> Path:
    """A reward-model ensemble (``RewardModelRunConfig`` settings) on in-memory preference pairs; returns ``out``."""
    from types import SimpleNamespace

    from experiments.pipelines.trainers import RewardModelRunConfig, train_reward_model_from_preferences

    tokenizer = tokenizer or dataset.tokenizer()
    preferences = SimpleNamespace(pairs=list(pairs), tokenizer=lambda: tokenizer)  # what the RM reads of one
    train_reward_model_from_preferences(
        preferences, dataset, RewardModelRunConfig.from_dict(settings), out, tokenizer=tokenizer
    )
    return out


def train_ppo_stage(policy: Path, reward_model: Path, dataset: Any, settings: dict, out: Path) -> Path:
    """SB3 PPO from ``policy`` on a learned reward model (``PPORunConfig`` settings); returns the checkpoint."""
    from experiments.pipelines.trainers import PPORunConfig, train_ppo_on_learned_reward

    return train_ppo_on_learned_reward(policy, reward_model, dataset, PPORunConfig.from_dict(settings), out)


def train_episode_ppo_stage(
    policy: Path, reward: str | Path | Any, dataset: Any, settings: dict, out: Path
) -> Path:
    """Episode PPO from ``policy`` on a named env reward, a reward-model directory or a ``TrajectoryReward``
    object; ``settings`` are ``EpisodePPOConfig`` fields (an unknown key is an error). Returns the checkpoint."""
    from agents.alignment.episode_ppo import train_episode_ppo
    from agents.alignment.episode_ppo_config import EpisodePPOConfig
    from dyadic_env.config import config_from_dict
    from experiments.pipelines.trainers import episode_ppo_reward

    config = config_from_dict(EpisodePPOConfig, settings, "episode ppo config")
    return train_episode_ppo(
        policy, episode_ppo_reward(reward, config.disagreement_penalty), dataset, config, out
    )


def train_ppo_on_env_reward(policy: Path, dataset: str, reward: str, settings: dict, out: Path) -> Path:
    """SB3 PPO from ``policy`` on one of the env's own rewards (e.g. ``oracle``): the RL ceiling."""
    import gymnasium as gym

    import dyadic_env  # noqa: F401  (registers the env)
    from agents.alignment.ppo import VLAWordIds, train_ppo
    from agents.vla import VLAForListening
    from dyadic_env.data import load_dataset
    from experiments.pipelines.trainers import PPORunConfig

    config = PPORunConfig.from_dict(settings)
    processor = VLAForListening.from_pretrained(policy).processor
    data = load_dataset(dataset)

    def make_env() -> gym.Env:
        env = gym.make(
            "dyadic_env/Listener-v0", dataset=data, split=config.split, context_frames=config.context_frames,
            tokenizer=processor.action_tokenizer, reward=reward,
        )  # fmt: skip
        return VLAWordIds(env, processor)

    return train_ppo(policy, [make_env] * config.n_envs, config.ppo_config(), out)
