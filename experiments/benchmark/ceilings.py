"""Ceilings: how far the oracle's score can move from the SFT policy, measured before any learner is tuned.

Each is a per-clip difference to the SFT policy's mean score on the evaluation clips, with a 95 % bootstrap
interval over clips:

- ``best_of_N``: the oracle picks the best of N closed-loop samples of the SFT policy itself. What the SFT
  already holds: a learner that only re-weights the SFT's own behaviours cannot go much beyond it.
- ``ground_truth``: the recorded listeners of the evaluation clips, socially poor ones included;
  ``appropriate``: the mean over each clip's appropriate-reaction set (when the dataset has one). What
  imitation of people reaches.
- ``rl_oracle``: SB3 PPO of the SFT network on the env's ``oracle`` reward (the true reward, no labels) for a
  stated number of env steps: what RL reaches with a perfect reward at that budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Log = Callable[[str], None]
BOOTSTRAP = 2000


def bootstrap_interval(values: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of the mean of ``values`` (resampling its entries)."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(values.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def _entry(per_clip: np.ndarray, sft: np.ndarray, **extra: Any) -> dict[str, Any]:
    mean, low, high = bootstrap_interval(per_clip - sft)
    return {"score": float(per_clip.mean()), "diff": mean, "ci_low": low, "ci_high": high, **extra}


def measure_ceilings(config: Any, sft: Path, log: Log = print) -> dict[str, Any]:
    """Every ceiling of ``config.ceilings`` on ``config.eval``'s clips (seed 0 of the evaluation sampling)."""
    from agents.alignment.sampling import sample_trajectories
    from agents.vla import VLAForListening
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import Oracle

    data = load_dataset(config.dataset)
    clip_ids = list(data.split(config.eval.split).clip_ids)[: config.eval.max_clips]
    clips = [data.clip(c) for c in clip_ids]
    oracle = Oracle(fps=data.fps)
    model = VLAForListening.from_pretrained(sft).eval()
    n = max([*config.ceilings.best_of, config.eval.samples])
    started = time.perf_counter()
    tokens = sample_trajectories(model, clips, n, temperature=config.eval.temperature, seed=0)
    decode = model.processor.action_tokenizer.decode
    scores = np.array(
        [[oracle.score(c.speaker_motion, decode(t), c.speaker_words)["weighted"] for t in per] for c, per in zip(clips, tokens)]
    )  # fmt: skip
    log(f"  [ceilings] {len(clips)} clips x {n} SFT samples scored in {time.perf_counter() - started:.0f} s")
    sft_mean = scores[:, : config.eval.samples].mean(axis=1)
    result: dict[str, Any] = {"clips": len(clips), "sft": float(sft_mean.mean()), "ceilings": {}}
    for k in config.ceilings.best_of:
        result["ceilings"][f"best_of_{k}"] = _entry(scores[:, :k].max(axis=1), sft_mean, samples=k)
    truth = np.array(
        [oracle.score(c.speaker_motion, c.listener_motion, c.speaker_words)["weighted"] for c in clips]
    )
    result["ceilings"]["ground_truth"] = _entry(truth, sft_mean)
    appropriate = _appropriate_scores(data, clips, oracle)
    if appropriate is not None:
        result["ceilings"]["appropriate"] = _entry(appropriate, sft_mean)
    result["sft_per_clip"] = sft_mean.tolist()
    return result


def add_rl_oracle(config: Any, sft: Path, result: dict[str, Any], log: Log = print) -> bool:
    """Add the RL ceiling to a ceilings ``result`` unless it holds one at ``config.ceilings``' settings; returns
    whether it changed. Measured apart from the others: it is the slowest, and its budget may grow later."""
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import Oracle

    settings = {**config.ceilings.rl_oracle, "total_timesteps": config.ceilings.rl_oracle_steps}
    have = result["ceilings"].get("rl_oracle")
    if not config.ceilings.rl_oracle_steps or (have and have.get("settings") == settings):
        return False
    data = load_dataset(config.dataset)
    clips = [data.clip(c) for c in list(data.split(config.eval.split).clip_ids)[: config.eval.max_clips]]
    oracle = Oracle(fps=data.fps)
    sft_mean = result.get("sft_per_clip")
    if sft_mean is None:  # a ceilings file from before the per-clip SFT scores were kept
        sft_mean = _sampled_scores(sft, clips, oracle, config.eval.samples, config.eval.temperature).mean(
            axis=1
        )
    result["ceilings"]["rl_oracle"] = _rl_oracle(
        config, sft, clips, np.asarray(sft_mean), oracle, settings, log
    )
    return True


def _sampled_scores(policy: Path, clips: list[Any], oracle: Any, n: int, temperature: float) -> np.ndarray:
    """(clips, n) oracle scores of a policy's closed-loop samples (sampling seed 0, as every ceiling)."""
    from experiments.pipelines.evaluation import vla_trajectories

    frames = vla_trajectories(policy, clips, temperature=temperature, seed=0, samples=n)
    return np.array(
        [[oracle.score(c.speaker_motion, f, c.speaker_words)["weighted"] for f in per] for c, per in zip(clips, frames)]
    )  # fmt: skip


def _appropriate_scores(data: Any, clips: list[Any], oracle: Any) -> np.ndarray | None:
    """Per clip, the mean oracle score over its appropriate-reaction set (None without sets)."""
    if not getattr(data, "has_appropriate", False):
        return None
    out = []
    for c in clips:
        listeners = [
            m for m in data.appropriate_listeners(data.row_of(c.clip_id)) if len(m) == len(c.speaker_motion)
        ]
        if not listeners:
            return None
        out.append(
            np.mean([oracle.score(c.speaker_motion, m, c.speaker_words)["weighted"] for m in listeners])
        )
    return np.array(out)


def _rl_oracle(
    config: Any,
    sft: Path,
    clips: list[Any],
    sft_mean: np.ndarray,
    oracle: Any,
    settings: dict[str, Any],
    log: Log,
) -> dict[str, Any]:
    """SB3 PPO on the env's oracle reward from the SFT network; scored like every cell."""
    import shutil

    from experiments.pipelines.stages import train_ppo_on_env_reward

    out = config.out / "ceilings" / "rl_oracle"
    shutil.rmtree(out, ignore_errors=True)  # a run at other settings
    started = time.perf_counter()
    policy = train_ppo_on_env_reward(sft, config.dataset, "oracle", settings, out)
    seconds = time.perf_counter() - started
    per_clip = _sampled_scores(policy, clips, oracle, config.eval.samples, config.eval.temperature).mean(
        axis=1
    )
    log(f"  [ceilings] PPO on the oracle reward: {settings['total_timesteps']} env steps in {seconds:.0f} s")
    return _entry(
        per_clip, sft_mean, env_steps=settings["total_timesteps"], train_seconds=seconds, settings=settings
    )


def label_anatomy(config: Any, budget: int) -> dict[str, Any] | None:
    """What the labels say: over the first ``budget`` best-vs-worst pairs of every seed's collection, the hidden
    oracle's difference chosen - rejected per criterion (95 % bootstrap over pairs) and how often it agrees
    with the label. Says which behaviour an aligner must change to follow the labels."""
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import Oracle
    from experiments.benchmark.collection import pool
    from experiments.benchmark.protocol import collection_dir

    data = load_dataset(config.dataset)
    tokenizer = data.tokenizer()
    if tokenizer is None:
        return None
    oracle, decode = Oracle(fps=data.fps), tokenizer.decode
    keys = ("empathy", "appropriateness", "engagement", "naturalness", "weighted")
    diffs: dict[str, list[float]] = {k: [] for k in keys}
    for seed in config.seeds:
        if not (collection_dir(config.out, seed) / "part0").exists():
            continue
        for pair in pool(config, seed, budget)[0]:
            clip = data.clip(pair.clip_id)
            chosen, rejected = (
                oracle.score(clip.speaker_motion, decode(t), clip.speaker_words)
                for t in (pair.chosen_tokens, pair.rejected_tokens)
            )
            for k in keys:
                diffs[k].append(chosen[k] - rejected[k])
    if not diffs["weighted"]:
        return None
    out: dict[str, Any] = {"pairs": len(diffs["weighted"]), "budget": budget}
    for k, values in diffs.items():
        mean, low, high = bootstrap_interval(np.array(values))
        out[k] = {"diff": mean, "ci_low": low, "ci_high": high}
    out["agreement"] = float(np.mean(np.array(diffs["weighted"]) > 0))
    return out
