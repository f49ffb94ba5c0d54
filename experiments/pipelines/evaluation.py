"""Evaluating baselines and VLA checkpoints together on a test split.

Baselines roll out through the env (:func:`experiments.evaluation.rollout_agents`). VLA checkpoints are
sampled in closed loop in batches (:func:`agents.alignment.sampling.sample_trajectories`, the same policy as
``VLAAgent`` in the env) and scored with :func:`experiments.evaluation.evaluate_predictions`, so all rows share
the metrics, the oracle and the seed. Every VLA row uses the same sampling seed (common random numbers), so
differences between checkpoints are not sampling luck. REACT's metrics (:func:`react_section`) read all K
samples of every row against the dataset's appropriate-reaction sets.
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
    react_references: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Rows for the baselines and every checkpoint on ``split``, as :func:`evaluate_agents` returns them.

    Checkpoints decode with ``mode`` at ``temperature`` (:func:`vla_trajectories`).
    With ``samples`` > 1 each checkpoint is sampled that many times per clip: the paper's metrics use the
    first sample, the oracle's criteria average over all (``per_clip`` keeps the per-clip averages). Baselines
    are rolled out ``samples`` times too (a deterministic one once), but scored on the first, as with one.
    Where the dataset has appropriate-reaction sets, ``react_rows`` and ``react_table`` hold REACT's metrics
    over all the samples of every row (:func:`react_section`; GT and held-out appropriate reference rows unless
    ``react_references`` is False); they change none of the other figures.
    """
    from agents.baselines import make_agent
    from dyadic_env.data import load_dataset
    from dyadic_env.metrics import metrics_table
    from experiments.evaluation import evaluate_predictions, rollout_agents

    data = load_dataset(dataset)
    clip_ids = list(data.split(split).clip_ids)[:max_clips]
    if not clip_ids:
        raise ValueError(f"{data.path}: split {split!r} has no clips to evaluate")
    clips = [data.clip(c) for c in clip_ids]
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    agents = {name: make_agent(name, data, seed=seed) for name in baselines}
    sampled, _ = rollout_agents(agents, data, split, seed, clip_ids=clip_ids, samples=samples)
    results = evaluate_predictions(_first(sampled), data, split, seed, clip_ids=clip_ids) if agents else None
    seconds["baselines"] = time.perf_counter() - started
    trajectories: dict[str, list[list[np.ndarray]]] = {}
    for name, path in policies.items():
        started = time.perf_counter()
        trajectories[name] = vla_trajectories(
            path, clips, temperature=temperature, seed=seed, samples=samples, mode=mode
        )
        seconds[name] = time.perf_counter() - started
        log(f"  [eval] {name}: {len(clips)} clips x {samples} in {seconds[name]:.1f} s")
    scored = evaluate_predictions(_first(trajectories), data, split, seed, clip_ids=clip_ids)
    if samples > 1 and scored["synthetic"]:
        _oracle_over_samples(scored, clips, trajectories, fps=data.fps)
    rows = dict(results["rows"]) if results else {}
    rows.update(scored["rows"])
    per_clip = dict(results["per_clip"]) if results else {"clip_ids": clip_ids}
    per_clip.update(scored["per_clip"])
    started = time.perf_counter()
    react = react_section(data, clip_ids, {**sampled, **trajectories}, seed=seed, references=react_references)
    if react:
        seconds["react"] = time.perf_counter() - started
        log(
            f"  [eval] REACT's metrics: {len(react['react_rows'])} rows x {samples} samples in {seconds['react']:.1f} s"
        )
    return {
        **scored, **react, "rows": rows, "table": metrics_table(rows), "per_clip": per_clip,
        "seconds": seconds, "temperature": temperature, "samples": samples, "mode": mode,
    }  # fmt: skip


def _first(sampled: Mapping[str, list[list[np.ndarray]]]) -> dict[str, list[np.ndarray]]:
    """Each row's first sample of every clip (what the paper's metrics score)."""
    return {name: [per_clip[0] for per_clip in rows] for name, rows in sampled.items()}


def _oracle_over_samples(
    scored: dict[str, Any],
    clips: Sequence[Any],
    trajectories: Mapping[str, list[list[np.ndarray]]],
    fps: float,
) -> None:
    """Replace each checkpoint's oracle criteria in ``scored`` by their means over all its samples."""
    from dyadic_env.synthetic import Oracle
    from experiments.evaluation import ORACLE_KEYS

    oracle = Oracle(fps=fps)
    for name, sampled in trajectories.items():
        scores = [
            {k: float(np.mean([oracle.score(c.speaker_motion, s, c.speaker_words)[k] for s in samples_of]))
             for k in ORACLE_KEYS}
            for c, samples_of in zip(clips, sampled)
        ]  # fmt: skip
        scored["per_clip"][name] = scores
        scored["rows"][name].update({k: float(np.mean([s[k] for s in scores])) for k in ORACLE_KEYS})


def react_section(
    data: Any,
    clip_ids: Sequence[str],
    sampled: Mapping[str, list[list[np.ndarray]]],
    *,
    seed: int = 0,
    references: bool = True,
) -> dict[str, Any]:
    """REACT's metrics (:mod:`dyadic_env.metrics.react`) of every row over all its K samples per clip.

    Returns ``react_rows`` (``{row: react_metrics(...)}``, the ``GT`` and ``Appropriate (held-out)`` reference
    rows first when ``references``), ``react_table`` and ``react_samples`` (K); empty where the dataset has
    no appropriate-reaction sets. Only REACT's own figures: the oracle and the paper's metrics stay with the
    caller, so adding this section changes none of them.
    """
    from dyadic_env.metrics import react_per_clip, react_table
    from dyadic_env.metrics.react import summarize
    from experiments.scoring import GT_ROW, HELD_OUT_ROW, appropriate_sets, held_out_samples

    sets = appropriate_sets(data, list(clip_ids))
    if sets is None or not sampled:
        return {}
    clips = [data.clip(c) for c in clip_ids]
    speakers = [np.asarray(c.speaker_motion, np.float32) for c in clips]
    k = len(next(iter(sampled.values()))[0])
    rows_to_score: dict[str, list[list[np.ndarray]]] = {}
    if references:
        rows_to_score[GT_ROW] = [[np.asarray(c.listener_motion, np.float32)] * k for c in clips]
        held = held_out_samples(data, clips, k, seed)
        if held is not None:
            rows_to_score[HELD_OUT_ROW] = held
    rows_to_score.update(sampled)
    rows = {
        name: summarize(react_per_clip(predictions, sets, speakers, fps=data.fps), k)
        for name, predictions in rows_to_score.items()
    }
    return {"react_rows": rows, "react_table": react_table(rows), "react_samples": k}
