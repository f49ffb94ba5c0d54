"""Closed-loop evaluation of agents on every clip of a split: the paper's metrics, REACT's, the oracle's.

:func:`evaluate_agents` rolls each agent through ``dyadic_env/Listener-v0`` on every clip, ``samples`` times
(K predictions per clip, each from its own seed; an agent marked ``deterministic`` is rolled once and its
prediction repeated), then scores the predictions (:mod:`experiments.scoring`):

- the paper's metrics (:func:`dyadic_env.metrics.evaluate`) of each prediction against the clip's recorded
  listener, averaged over the K predictions, with a ground-truth reference row (Variation and Diversity of
  the real listeners, as in the paper's Tables I and II);
- where the dataset has appropriate-reaction sets, REACT's metrics (:func:`dyadic_env.metrics.react_metrics`),
  with the recorded listener (``GT``) and, on synthetic data, fresh appropriate listeners that are in no set
  (``Appropriate (held-out)``) as reference rows;
- on synthetic data the hidden oracle's four criteria and weighted score, averaged over the K predictions;
- with ``validity``, every metric's rank correlation with the oracle over the agents
  (:func:`dyadic_env.metrics.validity.metric_validity`).

:func:`save_results` writes JSON, Markdown and TensorBoard scalars.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent
from agents.rollout import rollout
from dyadic_env.data import DyadicDataset, load_dataset
from dyadic_env.envs.compatibility import agent_data_card, check_data_card
from dyadic_env.envs.listener import ListenerEnv
from dyadic_env.tokenizer import ActionTokenizer
from experiments.scoring import FRDIST_GROUPS, GT_ROW, HELD_OUT_ROW, ORACLE_KEYS, RowTable

__all__ = [
    "GT_ROW", "HELD_OUT_ROW", "ORACLE_KEYS", "EvalConfig", "agent_tokenizer", "clip_seed", "default_run_dir",
    "evaluate_agents", "evaluate_predictions", "report_markdown", "rollout_agents", "sample_seed", "save_results",
    "write_tensorboard",
]  # fmt: skip


@dataclass
class EvalConfig:
    """Arguments of ``dyadic eval`` (also loadable from a YAML file in ``experiments/configs/``)."""

    dataset: str
    """Dataset directory or ``synthetic:PRESET``."""
    agents: list[str] = field(default_factory=list)
    """Baseline names (see ``agents.agent_names()``), evaluated in this order."""
    policy: str | None = None
    """A checkpoint directory (VLA, LM-listener or MMLHG), evaluated as the row ``vla``, or as the row of the
    checkpoint agent in ``agents`` that runs it (``--agent lm-listener --policy DIR``); or ``NAME=DIR[,...]``
    for named rows of any kind."""
    policy_mode: str | None = None
    """How ``policy`` decodes (:data:`agents.vla.decoding.DECODE_MODES`); None: the checkpoint's ``decode_mode``."""
    policy_temperature: float | None = None
    """The sampling temperature of ``policy``'s checkpoints; None: each checkpoint's ``decode_temperature``."""
    tell_listener: list[str] = field(default_factory=list)
    """Named ``policy`` rows (MMLHG checkpoints) told each clip's listener, as MMLHG's paper is given the identity
    to animate; the env tells no agent, so these rows know more than the others."""
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
    samples: int = 1
    """K, predictions per clip, each rolled out from its own seed (REACT draws 10)."""
    seeds: int = 1
    """Repeat the evaluation with seeds ``seed .. seed+seeds-1`` (agents rebuilt each time): every row then has
    a mean and a 95 % confidence interval over the seeds (:func:`summarize_seeds`)."""
    validity: bool = False
    """Also rank every metric against the oracle over the agents (synthetic data; at least 3 agents)."""
    frdist_groups: str = "frame"
    """How FRDist weighs the frame's values: ``frame`` (all alike) or ``react`` (REACT's per-group weights)."""
    report: str | None = None
    """Also write the Markdown report (tables and the command that made them) to this file."""
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
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(
                f"samples (--samples): expected a positive number of predictions per clip, found {self.samples!r}"
            )
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds (--seeds): expected a positive number of seeds, found {self.seeds!r}")
        if self.frdist_groups not in FRDIST_GROUPS:
            raise ValueError(
                f"frdist_groups: expected one of {list(FRDIST_GROUPS)}, found {self.frdist_groups!r}"
            )
        self.policies()  # checks the NAME=DIR syntax
        if isinstance(self.tell_listener, str):
            self.tell_listener = [a for a in self.tell_listener.split(",") if a]
        unknown = [name for name in self.tell_listener if name not in self.policies() or name == "vla"]
        if unknown:
            raise ValueError(
                f"tell_listener (--tell-listener): {unknown} name no --policy row; name rows given as "
                "--policy NAME=DIR (e.g. --policy 'MMLHG (told)=DIR' --tell-listener 'MMLHG (told)')"
            )
        if self.checkpoint_agents() and (
            len(self.checkpoint_agents()) > 1 or not self.policy or "=" in self.policy
        ):
            raise ValueError(
                f"agents {self.checkpoint_agents()} run a trained checkpoint: name one of them and pass its directory "
                "(--agent lm-listener --policy DIR); for several, give named rows instead (--policy LM=DIR,MMLHG=DIR)"
            )
        if self.policy_temperature is not None and not self.policy_temperature > 0:
            raise ValueError(
                f"policy_temperature (--temperature): expected a positive number, found {self.policy_temperature}"
            )
        if self.policy_mode is not None:  # a policy needs torch anyway
            from agents.vla.decoding import DECODE_MODES

            if self.policy_mode not in DECODE_MODES:
                raise ValueError(
                    f"policy_mode (--decode): expected one of {DECODE_MODES}, found {self.policy_mode!r}"
                )

    def policies(self) -> dict[str, str]:
        """``{row name: checkpoint directory}`` of ``policy``."""
        if not self.policy:
            return {}
        if "=" not in self.policy:
            return {} if self.checkpoint_agents() else {"vla": self.policy}
        pairs = [item.partition("=") for item in self.policy.split(",") if item]
        if any(not name or not sep or not path for name, sep, path in pairs):
            raise ValueError(
                f"policy (--policy): expected DIR or NAME=DIR[,NAME=DIR...], found {self.policy!r}"
            )
        if len({name for name, _, _ in pairs}) != len(pairs) or {n for n, _, _ in pairs} & set(self.agents):
            raise ValueError(
                f"policy (--policy): each row name once, and none an agent's, found {self.policy!r}"
            )
        return {name: path for name, _, path in pairs}

    def checkpoint_agents(self) -> list[str]:
        """The agents of ``agents`` that run the checkpoint ``policy`` names (LM-listener, MMLHG)."""
        from agents.listeners.names import VARIANTS

        return [name for name in self.agents if name in VARIANTS]

    def command(self) -> str:
        """The ``dyadic eval`` command line that repeats this evaluation (reports start with it)."""
        parts = ["dyadic eval", f"--dataset {self.dataset}", f"--split {self.split}", f"--seed {self.seed}"]
        parts += [f"--agent {','.join(self.agents)}"] * bool(self.agents)
        parts += [f"--policy {self.policy}"] * bool(self.policy) + [f"--decode {self.policy_mode}"] * bool(
            self.policy_mode
        )
        parts += [f"--temperature {self.policy_temperature}"] * (self.policy_temperature is not None)
        parts += [f"--samples {self.samples}"] + [f"--seeds {self.seeds}"] * (self.seeds > 1)
        parts += ["--validity"] * self.validity
        parts += [f"--max-clips {self.max_clips}"] * (self.max_clips is not None)
        parts += [f"--frdist-groups {self.frdist_groups}"] * (self.frdist_groups != "frame")
        return " ".join(parts)


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


def sample_seed(seed: int, index: int, sample: int) -> int:
    """The seed of prediction ``sample`` on clip ``index`` (the first is :func:`clip_seed`, as with K = 1)."""
    if sample == 0:
        return clip_seed(seed, index)
    return int(np.random.SeedSequence([seed, index, sample]).generate_state(1)[0])


def evaluate_agents(
    agents: Mapping[str, Agent],
    dataset: str | os.PathLike | DyadicDataset,
    split: str = "test",
    seed: int = 0,
    *,
    max_clips: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    samples: int = 1,
    validity: bool = False,
    frdist_groups: str = "frame",
) -> dict[str, Any]:
    """Roll every agent through every clip of ``split`` in closed loop, ``samples`` times, and score them.

    Returns a JSON-ready dict: ``rows`` (``{"GT": ..., name: metrics}``; keys as
    :func:`dyadic_env.metrics.evaluate` plus the oracle's criteria on synthetic data), ``table`` (Markdown),
    ``react_rows`` and ``react_table`` (when the dataset has appropriate sets), ``validity`` and
    ``validity_table`` (with ``validity``), ``per_clip`` (per agent, the clip ids' oracle scores when
    synthetic), ``metrics_per_clip``, ``seconds`` per agent (rollouts), and the setup.
    """
    data = load_dataset(dataset)
    clip_ids = data.split(split).clip_ids[:max_clips]
    if not clip_ids:
        raise ValueError(f"{data.path}: split {split!r} has no clips to evaluate")
    predictions, seconds = rollout_agents(
        agents, data, split, seed, clip_ids=clip_ids, env_kwargs=env_kwargs, samples=samples
    )
    scored = evaluate_predictions(
        predictions, dataset, split, seed, clip_ids=clip_ids, samples=samples, validity=validity,
        frdist_groups=frdist_groups,
    )  # fmt: skip
    return {**scored, "seconds": seconds}


def rollout_agents(
    agents: Mapping[str, Agent],
    dataset: str | os.PathLike | DyadicDataset,
    split: str = "test",
    seed: int = 0,
    *,
    clip_ids: Sequence[str] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    samples: int = 1,
) -> tuple[dict[str, list[list[np.ndarray]]], dict[str, float]]:
    """Decoded closed-loop predictions of every agent, ``samples`` per clip of ``clip_ids`` (default: the
    split's), each from its own seed (:func:`sample_seed`); and the seconds each agent took.

    Before each clip an agent with a ``meet_listener`` method is given the clip's listener id (the env tells no
    agent; only an agent built to be told, MMLHG with ``identity="told"``, uses it).

    Pipelines that sample some policies their own way (batched) merge these with theirs and score all of them
    in one :func:`evaluate_predictions`, so one validity table ranks every row.
    """
    data = load_dataset(dataset)
    clip_ids = list(clip_ids) if clip_ids is not None else data.split(split).clip_ids
    predictions: dict[str, list[list[np.ndarray]]] = {}
    seconds: dict[str, float] = {}
    for name, agent in agents.items():
        check_agent_fits(name, agent, data, clip_ids)
        kwargs = {
            "chunk_size": getattr(agent, "chunk_size", 1),
            "tokenizer": agent_tokenizer(agent),
            **(env_kwargs or {}),
        }
        env = ListenerEnv(data, split, **kwargs)
        start = time.perf_counter()
        meet = getattr(agent, "meet_listener", None)  # agents that may be told who listens (MMLHG's "told")
        predictions[name] = []
        for i, cid in enumerate(clip_ids):
            if meet is not None:
                meet(data.clip(cid).listener_id)
            predictions[name].append(_samples(env, agent, cid, seed, i, samples))
        seconds[name] = time.perf_counter() - start
        env.close()
    return predictions, seconds


def check_agent_fits(name: str, agent: Agent, data: DyadicDataset, clip_ids: Sequence[str]) -> None:
    """Refuse a policy trained on data of another expression basis (its data card says); warn when an agent
    retrieves listener responses from the very clips it is scored on (the nearest neighbour's database)."""
    card = agent_data_card(agent)
    if card is not None:
        for note in check_data_card(card, data, policy=f"agent {name!r}"):
            warnings.warn(note, stacklevel=3)
    database = getattr(agent, "database", None)
    if database is not None and Path(database[0]) == data.path.resolve():
        seen = sorted(database[1].intersection(clip_ids))
        if seen:
            warnings.warn(
                f"agent {name!r} retrieves listener responses from {len(seen)} of the {len(clip_ids)} clips it is "
                f"scored on (e.g. {seen[:3]}): its scores there are not held out; evaluate a split it was not "
                "built from (e.g. --split test)",
                stacklevel=3,
            )


def _samples(
    env: ListenerEnv, agent: Agent, clip_id: str, seed: int, index: int, samples: int
) -> list[np.ndarray]:
    """K decoded rollouts of ``agent`` on one clip; one, repeated, for a ``deterministic`` agent."""
    if getattr(agent, "deterministic", False):
        return [rollout(env, agent, clip_id=clip_id, seed=clip_seed(seed, index)).frames] * samples
    return [
        rollout(env, agent, clip_id=clip_id, seed=sample_seed(seed, index, k)).frames for k in range(samples)
    ]


def summarize_seeds(
    rows_per_seed: Sequence[Mapping[str, Mapping[str, float]]], confidence: float = 0.95
) -> dict[str, dict[str, dict[str, float]]]:
    """``{row: {metric: {"mean", "ci", "std", "n"}}}`` over runs with different seeds: ``ci`` is the half-width
    of the Student-t confidence interval of the mean (0 with one seed, or when every seed agrees)."""
    from scipy import stats

    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows_per_seed[0]:
        out[row] = {}
        for key in rows_per_seed[0][row]:
            values = np.array(
                [rows[row][key] for rows in rows_per_seed if key in rows.get(row, {})], np.float64
            )
            n = len(values)
            std = float(values.std(ddof=1)) if n > 1 else 0.0
            half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n)) if n > 1 else 0.0
            out[row][key] = {"mean": float(values.mean()), "ci": half, "std": std, "n": n}
    return out


def seeds_table(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    digits: int = 4,
    columns: Sequence[Any] | None = None,
) -> str:
    """The paper's table (plus the oracle's criteria; or ``columns``, e.g. ``REACT_COLUMNS``) with
    ``mean ± CI half-width`` in every cell."""
    from dyadic_env.metrics.table import COLUMNS

    shown = [c for c in (columns or COLUMNS) if any(c[1] in r for r in summary.values())]
    lines = ["| Method | " + " | ".join(c[0] for c in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for method, row in summary.items():
        cells = [
            f"{row[key]['mean'] * scale:.{digits}f} ± {row[key]['ci'] * scale:.{digits}f}"
            if key in row
            else ""
            for _, key, scale in shown
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def default_run_dir(config: EvalConfig, root: str | os.PathLike = "runs/eval") -> Path:
    """``runs/eval/{dataset}__{agents}__{seed}__{time}`` (CleanRL's run naming)."""
    names = [*config.agents, *config.policies()]
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
    (run_dir / "results.md").write_text(report_markdown(results, config.command() if config else None))
    if config is not None:
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    write_tensorboard(results, run_dir)
    return run_dir


def report_markdown(results: Mapping[str, Any], command: str | None = None) -> str:
    """The paper's table, REACT's table and the metric validity table of one evaluation, in Markdown
    (headed by the ``command`` that made it, when given)."""
    samples = results.get("samples", 1)
    parts = [
        f"# Evaluation on {results['dataset']} ({results['split']}, {results['num_clips']} clips, "
        f"{samples} prediction{'s' * (samples > 1)} per clip, seed {results['seed']})",
        *([f"Generated by `{command}`."] if command else []),
        "## The paper's metrics (each prediction against the clip's recorded listener, mean over predictions)",
        results["table"],
    ]
    if results.get("seeds_table"):
        parts += [
            f"## Mean ± 95 % CI (Student t) over seeds {results['seeds']} (each seed rebuilds the agents and draws "
            "their samples anew; the tables above are the first seed's)",
            results["seeds_table"],
        ]
    if results.get("react_table"):
        sets = results["appropriate"]
        parts += [
            f"## REACT's metrics (against each clip's appropriate set: {sets['method']}, {sets['clips_with_set']} "
            f"clips, {sets['mean_size']:.1f} reactions per clip{_thresholds(sets)}; FRDist groups: "
            f"{results['frdist_groups']})",
            results["react_table"],
        ]
    if results.get("validity_table"):
        parts += [
            "## Metric validity (Spearman rank correlation with the oracle's weighted score over the agents; "
            "sign flipped where lower is better; bootstrap 95 % CI over clips)",
            results["validity_table"],
        ]
    return "\n\n".join(parts) + "\n"


def _thresholds(sets: Mapping[str, Any]) -> str:
    thresholds = sets.get("thresholds") or {}
    return "".join(f", {split} threshold {value:.4g}" for split, value in thresholds.items())


def write_tensorboard(results: Mapping[str, Any], run_dir: Path) -> bool:
    """Scalars ``eval/{row}/{metric}``; returns False (and writes nothing) when TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return False
    writer = SummaryWriter(log_dir=str(run_dir))
    try:
        for prefix, rows in (("eval", results["rows"]), ("react", results.get("react_rows") or {})):
            for row, metrics in rows.items():
                for key, value in metrics.items():
                    writer.add_scalar(f"{prefix}/{row}/{key.replace(' ', '_')}", float(value), 0)
    finally:
        writer.close()
    return True


def evaluate_predictions(
    predictions: Mapping[str, Sequence[np.ndarray] | Sequence[Sequence[np.ndarray]]],
    dataset: str | os.PathLike | DyadicDataset,
    split: str = "test",
    seed: int = 0,
    *,
    clip_ids: Sequence[str] | None = None,
    samples: int | None = None,
    validity: bool = False,
    frdist_groups: str = "frame",
) -> dict[str, Any]:
    """Score listener trajectories that were produced elsewhere (e.g. batched closed-loop sampling of a VLA).

    ``predictions`` maps a row name to, per clip of ``clip_ids`` (default: every clip of ``split``) in order,
    one decoded ``(T, 56)`` trajectory or a list of K of them (the same K for every row and clip; ``samples``
    says K when there are no predictions). Returns the same dict as :func:`evaluate_agents` (without
    ``seconds``).
    """
    data = load_dataset(dataset)
    clip_ids = list(clip_ids) if clip_ids is not None else list(data.split(split).clip_ids)
    nested = {name: [_as_samples(p) for p in predicted] for name, predicted in predictions.items()}
    counts = {len(s) for predicted in nested.values() for s in predicted} | ({samples} if samples else set())
    if len(counts) > 1:
        raise ValueError(
            f"predictions: expected the same number of trajectories per clip everywhere, found {sorted(counts)}"
        )
    table = RowTable(data, clip_ids, seed, samples=counts.pop() if counts else 1, frdist_groups=frdist_groups)
    for name, predicted in nested.items():
        if len(predicted) != len(clip_ids):
            raise ValueError(
                f"predictions[{name!r}]: {len(predicted)} trajectories for {len(clip_ids)} clips"
            )
        _check_finite_predictions(name, predicted, clip_ids)
        table.add(name, predicted)
    results = table.results(dataset, split, validity=validity)
    _check_finite_metrics(results)
    return results


def _check_finite_predictions(name: str, predicted: list[list[np.ndarray]], clip_ids: list[str]) -> None:
    for clip_id, sampled in zip(clip_ids, predicted):
        if not all(np.isfinite(p).all() for p in sampled):
            raise ValueError(f"predictions[{name!r}]: NaN or inf in the trajectory of clip {clip_id!r}")


def _check_finite_metrics(results: Mapping[str, Any]) -> None:
    """A metric that is NaN or inf on a clip is an error naming the clip, not a NaN in a table."""
    clip_ids = results["per_clip"]["clip_ids"]
    for name, metrics in results["metrics_per_clip"].items():
        for key, values in metrics.items():
            bad = [clip_ids[i] for i, v in enumerate(values) if v is None]
            if bad:
                raise ValueError(
                    f"{name}: metric {key} is NaN or inf on clip(s) {bad[:5]}{' ...' * (len(bad) > 5)} of "
                    f"{results['dataset_path']}; check those clips (`dyadic data validate`)"
                )


def _as_samples(prediction: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(prediction, np.ndarray) and prediction.ndim == 2:
        return [np.asarray(prediction, np.float32)]
    return [np.asarray(p, np.float32) for p in prediction]
