"""Evaluating baselines and VLA checkpoints together on a test split.

Baselines roll out through the env (:func:`experiments.evaluation.evaluate_agents`). VLA checkpoints are
sampled in closed loop in batches (:func:`agents.alignment.sampling.sample_trajectories`, the same policy as
``VLAAgent`` in the env) and scored with :func:`experiments.evaluation.evaluate_predictions`, so all rows share
the metrics, the oracle and the seed. Every VLA row uses the same sampling seed (common random numbers), so
differences between checkpoints are not sampling luck.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def check_eval_decoding(mode: str, temperature: float) -> None:
    """Raise a ValueError naming ``eval_mode``/``eval_temperature`` unless they describe a decoding."""
    from agents.vla.decoding import DECODE_MODES

    if mode not in DECODE_MODES:
        raise ValueError(f"eval_mode: expected one of {DECODE_MODES}, found {mode!r}")
    if not temperature >= 0:
        raise ValueError(f"eval_temperature: expected a number >= 0 (0: greedy), found {temperature}")


def vla_trajectories(
    policy: str | Path,
    clips: Sequence[Any],
    *,
    temperature: float = 1.0,
    seed: int = 0,
    samples: int = 1,
    mode: str = "sample",
) -> list[list[np.ndarray]]:
    """Decoded closed-loop frames ``(T, 56)`` of a checkpoint: ``samples`` per clip.

    ``mode`` is a :class:`~agents.vla.decoding.Sampler` mode; temperature 0 means greedy.
    """
    from agents.alignment.sampling import sample_trajectories
    from agents.vla import VLAForListening

    model = VLAForListening.from_pretrained(policy).eval()
    mode = "greedy" if temperature == 0 else mode
    tokens = sample_trajectories(model, clips, samples, temperature=temperature or 1.0, mode=mode, seed=seed)
    decode = model.processor.action_tokenizer.decode
    return [[decode(t) for t in per_clip] for per_clip in tokens]


def evaluate_quickstart(
    dataset: str | Path,
    policies: Mapping[str, str | Path],
    *,
    baselines: Sequence[str] = ("random", "nn"),
    split: str = "test",
    seed: int = 0,
    max_clips: int | None = None,
    temperature: float = 1.0,
    samples: int = 1,
    mode: str = "sample",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Rows for the baselines and every checkpoint on ``split``, as :func:`evaluate_agents` returns them.

    Checkpoints decode with ``mode`` at ``temperature`` (:func:`vla_trajectories`).
    With ``samples`` > 1 each checkpoint is sampled that many times per clip: the paper's metrics use the
    first sample, the oracle's criteria average over all (``per_clip`` keeps the per-clip averages).
    """
    from agents.baselines import make_agent
    from dyadic_env.data import load_dataset
    from dyadic_env.metrics import metrics_table
    from experiments.evaluation import ORACLE_KEYS, evaluate_agents, evaluate_predictions

    data = load_dataset(dataset)
    clip_ids = list(data.split(split).clip_ids)[:max_clips]
    clips = [data.clip(c) for c in clip_ids]
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    agents = {name: make_agent(name, data, seed=seed) for name in baselines}
    results = evaluate_agents(agents, data, split, seed=seed, max_clips=max_clips) if agents else None
    seconds["baselines"] = time.perf_counter() - started
    trajectories: dict[str, list[list[np.ndarray]]] = {}
    for name, path in policies.items():
        started = time.perf_counter()
        trajectories[name] = vla_trajectories(
            path, clips, temperature=temperature, seed=seed, samples=samples, mode=mode
        )
        seconds[name] = time.perf_counter() - started
        log(f"  [eval] {name}: {len(clips)} clips x {samples} in {seconds[name]:.1f} s")
    scored = evaluate_predictions(
        {k: [s[0] for s in v] for k, v in trajectories.items()}, data, split, seed, clip_ids=clip_ids
    )
    if samples > 1 and scored["synthetic"]:
        from dyadic_env.synthetic import Oracle

        oracle = Oracle(fps=data.fps)
        for name, sampled in trajectories.items():
            scores = [
                {k: float(np.mean([oracle.score(c.speaker_motion, s, c.speaker_words)[k] for s in samples_of]))
                 for k in ORACLE_KEYS}
                for c, samples_of in zip(clips, sampled)
            ]  # fmt: skip
            scored["per_clip"][name] = scores
            scored["rows"][name].update({k: float(np.mean([s[k] for s in scores])) for k in ORACLE_KEYS})
    rows = dict(results["rows"]) if results else {}
    rows.update(scored["rows"])
    per_clip = dict(results["per_clip"]) if results else {"clip_ids": clip_ids}
    per_clip.update(scored["per_clip"])
    return {
        **scored, "rows": rows, "table": metrics_table(rows), "per_clip": per_clip, "seconds": seconds,
        "temperature": temperature, "samples": samples, "mode": mode,
    }  # fmt: skip
