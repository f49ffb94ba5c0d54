"""Closed-loop evaluation of agents on every clip of a split: the paper's metrics and the oracle's criteria.

:func:`evaluate_agents` rolls each agent through ``dyadic_env/Listener-v0`` on every clip, then computes
:func:`dyadic_env.metrics.evaluate` over the clips, a ground-truth reference row (Variation and Diversity of
the real listeners, as in the paper's Tables I and II), and on synthetic data the hidden oracle's four
criteria and weighted score. :func:`save_results` writes JSON, Markdown and TensorBoard scalars.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent
from agents.rollout import rollout
from dyadic_env.data import DyadicDataset, load_dataset
from dyadic_env.envs.listener import ListenerEnv
from dyadic_env.metrics import evaluate, metrics_table
from dyadic_env.rewards import is_synthetic, listener_affect_estimator
from dyadic_env.tokenizer import ActionTokenizer

GT_ROW = "GT"
ORACLE_KEYS = ("empathy", "appropriateness", "engagement", "naturalness", "weighted")


@dataclass
class EvalConfig:
    """Arguments of ``dyadic eval`` (also loadable from a YAML file in ``experiments/configs/``)."""

    dataset: str
    """Dataset directory or ``synthetic:PRESET``."""
    agents: list[str] = field(default_factory=list)
    """Baseline names (see ``agents.agent_names()``), evaluated in this order."""
    policy: str | None = None
    """A VLA checkpoint directory, evaluated as the row ``vla``."""
    policy_mode: str | None = None
    """How ``policy`` decodes (:data:`agents.vla.decoding.DECODE_MODES`); None: the checkpoint's ``decode_mode``."""
    split: str = "test"
    """The split whose every clip is rolled out."""
    seed: int = 0
    """Seeds the agents (one derived seed per clip) and the Diversity sampling."""
    max_clips: int | None = None
    """Evaluate only the first N clips of the split (quick runs); None for all."""
    context_frames: int = 32
    """K, frames of history in the env's observation."""
    words_window_s: float = 3.0
    """How far back the env's (and the NN's) words reach, in seconds."""
    run_dir: str | None = None
    """Where to save results; default ``runs/eval/{dataset}__{agents}__{seed}__{time}``."""

    def __post_init__(self) -> None:
        if isinstance(self.agents, str):
            self.agents = [a for a in self.agents.split(",") if a]
        if not self.agents and not self.policy:
            raise ValueError("give at least one agent (--agent random,nn) or a checkpoint (--policy DIR)")
        if len(set(self.agents)) != len(self.agents):
            raise ValueError(f"agents: each name once, found {self.agents}")
        if self.max_clips is not None and self.max_clips < 1:
            raise ValueError(
                f"max_clips: expected a positive number of clips or None, found {self.max_clips}"
            )
        if self.context_frames < 1 or not self.words_window_s > 0:
            raise ValueError("context_frames must be >= 1 and words_window_s > 0")
        if self.policy_mode is not None:  # a policy needs torch anyway
            from agents.vla.decoding import DECODE_MODES

            if self.policy_mode not in DECODE_MODES:
                raise ValueError(
                    f"policy_mode (--decode): expected one of {DECODE_MODES}, found {self.policy_mode!r}"
                )


def agent_tokenizer(agent: Agent) -> ActionTokenizer | None:
    """The tokenizer an agent's tokens are meant for (a checkpoint's own), or None for the dataset's."""
    for candidate in (
        getattr(agent, "tokenizer", None),
        getattr(getattr(agent, "processor", None), "action_tokenizer", None),
    ):
        if isinstance(candidate, ActionTokenizer):
            return candidate
    return None


def clip_seed(seed: int, index: int) -> int:
    """An independent seed for the ``index``-th clip of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def evaluate_agents(
    agents: Mapping[str, Agent],
    dataset: str | os.PathLike | DyadicDataset,
    split: str = "test",
    seed: int = 0,
    *,
    max_clips: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Roll every agent through every clip of ``split`` in closed loop and compute the metrics.

    Returns a JSON-ready dict: ``rows`` (``{"GT": ..., name: metrics}``; keys as
    :func:`dyadic_env.metrics.evaluate` plus the oracle's criteria on synthetic data), ``table`` (Markdown),
    ``per_clip`` (per agent, the clip ids' oracle scores when synthetic), ``seconds`` per agent, and the setup.
    """
    data = load_dataset(dataset)
    clip_ids = data.split(split).clip_ids[:max_clips]
    if not clip_ids:
        raise ValueError(f"{data.path}: split {split!r} has no clips to evaluate")
    table = _RowTable(data, clip_ids, seed)
    seconds: dict[str, float] = {}
    for name, agent in agents.items():
        kwargs = {
            "chunk_size": getattr(agent, "chunk_size", 1),
            "tokenizer": agent_tokenizer(agent),
            **(env_kwargs or {}),
        }
        env = ListenerEnv(data, split, **kwargs)
        start = time.perf_counter()
        predicted = [
            rollout(env, agent, clip_id=cid, seed=clip_seed(seed, i)).frames for i, cid in enumerate(clip_ids)
        ]
        seconds[name] = time.perf_counter() - start
        env.close()
        table.add(name, predicted)
    return {**table.results(dataset, split), "seconds": seconds}


class _RowTable:
    """The GT reference row and one metrics row per method, over the same clips of one split."""

    def __init__(self, data: DyadicDataset, clip_ids: list[str], seed: int) -> None:
        clips = [data.clip(cid) for cid in clip_ids]
        self.data, self.clip_ids, self.seed = data, clip_ids, seed
        self.gts = [np.asarray(c.listener_motion, np.float32) for c in clips]
        self.speakers = [np.asarray(c.speaker_motion, np.float32) for c in clips]
        self.scorer = _Scorer(data, clips, seed)
        gt_oracle = self.scorer.oracle_per_clip(self.gts)
        self.rows: dict[str, dict[str, float]] = {
            GT_ROW: {**self.scorer.reference_row(self.gts), **_means(gt_oracle)}
        }
        self.per_clip: dict[str, Any] = {GT_ROW: gt_oracle}

    def add(self, name: str, predicted: list[np.ndarray]) -> None:
        self.per_clip[name] = self.scorer.oracle_per_clip(predicted)
        self.rows[name] = {
            **self.scorer.row(predicted, self.gts, self.speakers),
            **_means(self.per_clip[name]),
        }

    def results(self, dataset: str | os.PathLike | DyadicDataset, split: str) -> dict[str, Any]:
        return {
            "dataset": str(dataset if not isinstance(dataset, DyadicDataset) else dataset.path),
            "dataset_path": str(self.data.path), "split": split, "seed": self.seed,
            "num_clips": len(self.clip_ids), "num_frames": int(sum(len(g) for g in self.gts)),
            "synthetic": self.scorer.oracle is not None, "affect": self.scorer.valence is not None,
            "rows": self.rows, "table": metrics_table(self.rows),
            "per_clip": {"clip_ids": self.clip_ids, **self.per_clip},
        }  # fmt: skip


class _Scorer:
    """Metrics shared by every row of one evaluation: affect estimator, oracle, seed."""

    def __init__(self, data: DyadicDataset, clips: list[Any], seed: int) -> None:
        self.clips, self.seed = clips, seed
        try:
            estimator = listener_affect_estimator(data)
            self.valence: Any = lambda frames: estimator(frames)[:, 0]
        except (ValueError, ImportError):
            self.valence = None  # no affect arrays and no estimator for this face basis: no L2 Affect
        self.oracle: Any = None
        if is_synthetic(data):
            from dyadic_env.synthetic import Oracle

            self.oracle = Oracle(fps=data.fps)

    def row(
        self, predicted: list[np.ndarray], gts: list[np.ndarray], speakers: list[np.ndarray]
    ) -> dict[str, float]:
        affect = {}
        if self.valence is not None:
            # One estimator for both sides, as the paper reads both with EMOCA: its bias cancels.
            affect = {
                "predicted_affect": [self.valence(p) for p in predicted],
                "ground_truth_affect": [self.valence(g) for g in gts],
            }
        return evaluate(predicted, gts, speakers, seed=self.seed, **affect)

    def reference_row(self, gts: list[np.ndarray]) -> dict[str, float]:
        full = evaluate(gts, gts, gts, seed=self.seed)
        return {"Variation": full["Variation"], "Diversity": full["Diversity"]}

    def oracle_per_clip(self, listeners: list[np.ndarray]) -> list[dict[str, float]] | None:
        if self.oracle is None:
            return None
        return [
            {k: float(v) for k, v in self.oracle.score(c.speaker_motion, listener, c.speaker_words).items()}
            for c, listener in zip(self.clips, listeners)
        ]


def _means(scores: list[dict[str, float]] | None) -> dict[str, float]:
    if not scores:
        return {}
    return {k: float(np.mean([s[k] for s in scores])) for k in ORACLE_KEYS if k in scores[0]}


def default_run_dir(config: EvalConfig, root: str | os.PathLike = "runs/eval") -> Path:
    """``runs/eval/{dataset}__{agents}__{seed}__{time}`` (CleanRL's run naming)."""
    names = [*config.agents, *(["vla"] if config.policy else [])]
    dataset = re.sub(
        r"[^A-Za-z0-9._-]+", "-", Path(config.dataset).name if os.sep in config.dataset else config.dataset
    )
    return Path(root) / f"{dataset}__{'-'.join(names)}__{config.seed}__{int(time.time())}"


def save_results(
    results: Mapping[str, Any], run_dir: str | os.PathLike, config: EvalConfig | None = None
) -> Path:
    """Write ``results.json``, ``results.md``, ``config.json`` and TensorBoard scalars under ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    header = f"# Evaluation on {results['dataset']} ({results['split']}, {results['num_clips']} clips, seed {results['seed']})"
    (run_dir / "results.md").write_text(f"{header}\n\n{results['table']}\n")
    if config is not None:
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    write_tensorboard(results, run_dir)
    return run_dir


def write_tensorboard(results: Mapping[str, Any], run_dir: Path) -> bool:
    """Scalars ``eval/{row}/{metric}``; returns False (and writes nothing) when TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return False
    writer = SummaryWriter(log_dir=str(run_dir))
    try:
        for row, metrics in results["rows"].items():
            for key, value in metrics.items():
                writer.add_scalar(f"eval/{row}/{key.replace(' ', '_')}", float(value), 0)
    finally:
        writer.close()
    return True


def evaluate_predictions(
    predictions: Mapping[str, list[np.ndarray]],
    dataset: str | os.PathLike | DyadicDataset,
    split: str = "test",
    seed: int = 0,
    *,
    clip_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Score listener trajectories that were produced elsewhere (e.g. batched closed-loop sampling of a VLA).

    ``predictions`` maps a row name to decoded frames ``(T, 56)``, one per clip of ``clip_ids`` (default: every
    clip of ``split``), in order. Returns the same dict as :func:`evaluate_agents` (without ``seconds``).
    """
    data = load_dataset(dataset)
    clip_ids = list(clip_ids) if clip_ids is not None else list(data.split(split).clip_ids)
    table = _RowTable(data, clip_ids, seed)
    for name, predicted in predictions.items():
        if len(predicted) != len(clip_ids):
            raise ValueError(
                f"predictions[{name!r}]: {len(predicted)} trajectories for {len(clip_ids)} clips"
            )
        table.add(name, [np.asarray(p, np.float32) for p in predicted])
    return table.results(dataset, split)
