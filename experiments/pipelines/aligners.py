"""Alignment algorithms as the benchmark runs them, and the interface a researcher's own algorithm implements.

An algorithm turns one SFT checkpoint and a budget of rated candidate groups into an aligned checkpoint::

    class MyAlgorithm:                      # any class (or function) with this call
        def __init__(self, **settings): ...  # the benchmark config's ``algorithm_settings[NAME]``
        def __call__(self, task: AlignmentTask) -> Path: ...   # writes a checkpoint under task.out

``dyadic benchmark alignment --algo package.module:MyAlgorithm`` adds it as a row. The task carries the
preference data already collected for this (budget, seed, selection) cell; an on-policy algorithm may ask for
more through ``task.collect``, which charges every rated group to the cell's budget. See docs/alignment.md.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

from experiments.errors import UserError

Log = Callable[[str], None]


@dataclass
class AlignmentTask:
    """Everything an algorithm may use for one benchmark cell.

    Attributes:
        sft: the SFT checkpoint every cell starts from (read-only).
        pairs: best-vs-worst preference pairs, one per rated group (paper section III-D).
        groups: every rated group: ``clip_id``, the candidates' tokens and their eq. 10 scores and criteria.
        dataset: the dataset (``dataset.clip(id)`` gives a clip).
        budget: rated groups this cell may use in all (``len(groups)`` of them are already spent).
        seed: the cell's seed; every random choice of the algorithm must flow from it.
        out: a fresh directory; return the path of the aligned checkpoint (inside it, or ``out`` itself).
        collect: ``collect(policy_dir, groups, tag) -> (pairs, groups)`` rates ``groups`` more candidate groups
            sampled from ``policy_dir`` on train clips; raises once the budget is spent.
        log: progress messages.
        other_cell: ``other_cell(row)`` is the folder of that row's cell at this budget and seed in the
            benchmark's results folder, finished or not (None outside a benchmark).
    """

    sft: Path
    pairs: list[Any]
    groups: list[Any]
    dataset: Any
    budget: int
    seed: int
    out: Path
    collect: Callable[[Path, int, str], tuple[list[Any], list[Any]]]
    log: Log = print
    num_threads: int = 0
    other_cell: Callable[[str], Path] | None = None


class AlignmentAlgorithm(Protocol):
    """``algorithm(task) -> checkpoint``. An on-policy algorithm may also define ``upfront_groups(budget)``: how
    many of the cell's collected groups it takes (the rest of its budget it collects itself)."""

    def __call__(self, task: AlignmentTask) -> Path: ...


@dataclass
class BudgetLedger:
    """Counts the rated groups a cell spends; collecting beyond the budget is an error, not a silent overrun."""

    budget: int
    spent: int = 0
    history: list[tuple[str, int]] = field(default_factory=list)

    def charge(self, groups: int, tag: str) -> None:
        if groups < 1:
            raise ValueError(f"collect: groups must be >= 1, found {groups}")
        if self.spent + groups > self.budget:
            raise UserError(
                f"algorithm asked for {groups} more rated groups ({tag}) with {self.budget - self.spent} of its "
                f"budget of {self.budget} left"
            )
        self.spent += groups
        self.history.append((tag, groups))


def load_algorithm(spec: str, settings: Mapping[str, Any] | None = None) -> AlignmentAlgorithm:
    """A built-in algorithm by name, or ``package.module:Name`` (a class taking ``**settings``, or a function)."""
    settings = dict(settings or {})
    if ":" not in spec:
        if spec not in BUILTINS:
            raise UserError(
                f"algorithm {spec!r}: unknown; built-ins are {', '.join(BUILTINS)}, or give package.module:Name"
            )
        return BUILTINS[spec](**settings)
    module_name, _, attr = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UserError(f"algorithm {spec!r}: cannot import it ({e}); is its package on PYTHONPATH?") from e
    if inspect.isclass(target):
        return cast(AlignmentAlgorithm, target(**settings))
    if settings:
        raise UserError(f"algorithm {spec!r} is a function: it takes no settings, found {sorted(settings)}")
    if not callable(target):
        raise UserError(f"algorithm {spec!r} is not callable")
    return cast(AlignmentAlgorithm, target)


def algorithm_name(spec: str) -> str:
    """The row name of an algorithm spec (``package.module:Name`` -> ``Name``)."""
    return spec.rpartition(":")[2]


# --- built-ins ------------------------------------------------------------------------------------------------
class DPO:
    """trl DPO (paper eq. 11) on the cell's pairs; ``settings`` are :class:`DPOTrainingConfig` fields."""

    def __init__(
        self,
        shuffle_labels: bool = False,
        pairing: str = "best-worst",
        pairs_per_group: int = 2,
        **settings: Any,
    ) -> None:
        from agents.alignment.dpo import DPOTrainingConfig

        _check_pairing("dpo", pairing, pairs_per_group)
        self.settings = settings
        self.shuffle_labels = shuffle_labels
        self.pairing = pairing
        self.pairs_per_group = pairs_per_group
        DPOTrainingConfig.from_dict({**settings, "seed": 0})  # fail on a bad setting now, not in a cell

    def __call__(self, task: AlignmentTask) -> Path:
        from agents.alignment.ablations import randomize_labels
        from agents.alignment.dpo import DPOTrainingConfig, train_dpo

        pairs = cell_pairs(task, self.pairing, self.pairs_per_group)
        if self.shuffle_labels:
            pairs = randomize_labels(pairs, seed=task.seed)
        config = DPOTrainingConfig.from_dict(
            {"num_threads": task.num_threads, **self.settings, "seed": task.seed}
        )
        path, _ = train_dpo(task.sft, pairs, task.dataset.clip, config, task.out / "policy")
        return path


class RandomPrefer(DPO):
    """Paper Table IV: DPO on the same pairs with each label flipped with probability 1/2."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(shuffle_labels=True, **settings)


class SFTPreferred:
    """Paper Table IV: continued SFT on the preferred trajectories (:class:`ContinueSFTConfig` settings)."""

    def __init__(self, **settings: Any) -> None:
        from agents.alignment.ablations import ContinueSFTConfig

        self.settings = settings
        ContinueSFTConfig(**settings)

    def __call__(self, task: AlignmentTask) -> Path:
        from agents.alignment.ablations import ContinueSFTConfig, continue_sft

        config = ContinueSFTConfig(**{**self.settings, "seed": task.seed})
        chosen = [(p.clip_id, p.chosen_tokens) for p in task.pairs]
        return continue_sft(task.sft, chosen, task.dataset.clip, config, task.out / "policy")


class IteratedDPO:
    """On-policy rounds: round k rates candidates of round k-1's policy and runs DPO from it (own reference).

    The first round uses the cell's collected groups cut to its share; later rounds collect through
    ``task.collect``, so all rounds together spend exactly the budget. With ``accumulate`` a round trains on
    every pair bought so far, not only its own: the earlier rounds' labels are paid for, and DPO's reference (the
    previous round's policy) need not have sampled a pair for it to count.
    """

    def __init__(self, rounds: int = 2, accumulate: bool = False, **settings: Any) -> None:
        if rounds < 1:
            raise UserError(f"iterated_dpo rounds: expected >= 1, found {rounds}")
        if not isinstance(accumulate, bool):
            raise UserError(f"iterated_dpo accumulate: expected true or false, found {accumulate!r}")
        self.rounds, self.accumulate = rounds, accumulate
        self.dpo = DPO(**settings)

    def upfront_groups(self, budget: int) -> int:
        """Rated groups the first round takes from the cell's collection; the rest are collected on-policy."""
        return _split(budget, self.rounds)[0]

    def __call__(self, task: AlignmentTask) -> Path:
        shares = _split(task.budget, self.rounds)
        policy, pairs = task.sft, task.pairs[: shares[0]]
        for k, share in enumerate(shares):
            if k:
                bought, _ = task.collect(policy, share, f"round{k}")
                pairs = [*pairs, *bought] if self.accumulate else bought
            round_task = replace(
                task, sft=policy, pairs=pairs, out=task.out / f"round{k}", seed=task.seed + 1000 * k
            )
            policy = self.dpo(round_task)
            task.log(f"  iterated DPO round {k + 1}/{self.rounds}: {len(pairs)} pairs")
        return policy


class PPOOnRewardModel:
    """A Bradley-Terry reward-model ensemble on the cell's pairs, then PPO of the SFT network on it: SB3's PPO
    (``ppo``: :class:`PPORunConfig` settings) or, with ``episode_ppo`` settings (:class:`EpisodePPOConfig`),
    episode PPO on the cached VLA, about ten times as many env steps a second (docs/results/bench_rl.md).
    ``pairing`` picks the reward model's pairs from the rated groups (:data:`PAIRINGS`): every ranked pair of
    a group (``all-pairs``) is about 25 comparisons for the price of one rated group."""

    def __init__(
        self,
        rm: Mapping[str, Any] | None = None,
        ppo: Mapping[str, Any] | None = None,
        episode_ppo: Mapping[str, Any] | None = None,
        pairing: str = "best-worst",
        pairs_per_group: int = 2,
    ) -> None:
        from experiments.pipelines.trainers import PPORunConfig, RewardModelRunConfig

        if ppo and episode_ppo:
            raise UserError("ppo_rm: give ppo (SB3) or episode_ppo settings, not both")
        _check_pairing("ppo_rm", pairing, pairs_per_group)
        self.pairing, self.pairs_per_group = pairing, pairs_per_group
        self.rm, self.ppo = dict(rm or {}), dict(ppo or {})
        self.episode_ppo = None if episode_ppo is None else dict(episode_ppo)
        RewardModelRunConfig.from_dict(self.rm)
        if self.episode_ppo is None:
            PPORunConfig.from_dict(self.ppo)
        else:
            from agents.alignment.episode_ppo_config import EpisodePPOConfig
            from dyadic_env.config import config_from_dict

            config_from_dict(EpisodePPOConfig, self.episode_ppo, "ppo_rm episode_ppo")

    def __call__(self, task: AlignmentTask) -> Path:
        from experiments.pipelines.stages import train_ppo_stage, train_reward_model_stage

        rm = train_reward_model_stage(
            cell_pairs(task, self.pairing, self.pairs_per_group),
            task.dataset,
            {**self.rm, "seed": task.seed, "num_threads": task.num_threads},
            task.out / "rm",
        )
        if self.episode_ppo is not None:
            from experiments.pipelines.stages import train_episode_ppo_stage

            settings = {**self.episode_ppo, "seed": task.seed, "num_threads": task.num_threads}
            policy = train_episode_ppo_stage(task.sft, rm, task.dataset, settings, task.out / "policy")
        else:
            policy = train_ppo_stage(
                task.sft, rm, task.dataset, {**self.ppo, "seed": task.seed, "num_threads": task.num_threads},
                task.out / "policy",
            )  # fmt: skip
        figures = json.loads((rm / "training.json").read_text())["figures"]
        write_algorithm_figures(policy, {f"reward_model.{k}": v for k, v in figures.items()})
        return policy


class PPOOnImplicitReward:
    """DPO on the cell's pairs (``dpo``: :class:`DPO` settings), then episode PPO of the SFT network on DPO's
    implicit reward frame by frame (``reward_models.implicit``: ``beta`` times each frame's log-ratio of the DPO
    policy to SFT). PPO on a reward model of the policy's own size, trained by DPO on the same labels: from 120
    groups it ranks held-out groups better than ``ppo_rm``'s ensemble (docs/results/reward_model_implicit.md)."""

    def __init__(
        self,
        dpo: Mapping[str, Any] | None = None,
        episode_ppo: Mapping[str, Any] | None = None,
        reward_cell: str | None = None,
    ) -> None:
        from agents.alignment.episode_ppo_config import EpisodePPOConfig
        from dyadic_env.config import config_from_dict

        self.dpo_settings = json.loads(json.dumps(dict(dpo or {})))  # as a cell's result.json records them
        self.dpo = DPO(**self.dpo_settings)
        self.episode_ppo = dict(episode_ppo or {})
        self.reward_cell = reward_cell
        config_from_dict(EpisodePPOConfig, self.episode_ppo, "ppo_implicit episode_ppo")

    def __call__(self, task: AlignmentTask) -> Path:
        from experiments.pipelines.stages import train_episode_ppo_stage
        from reward_models.implicit import ImplicitReward, ImplicitTrajectoryReward

        reward_policy = self._finished_dpo(task) or self.dpo(replace(task, out=task.out / "reward"))
        reward = ImplicitTrajectoryReward(ImplicitReward.from_pretrained(reward_policy, task.sft))
        settings = {**self.episode_ppo, "seed": task.seed, "num_threads": task.num_threads}
        return train_episode_ppo_stage(task.sft, reward, task.dataset, settings, task.out / "policy")

    def _finished_dpo(self, task: AlignmentTask) -> Path | None:
        """``reward_cell``'s checkpoint at this budget and seed, when that row is a finished DPO with this row's
        ``dpo`` settings on random queries: in one results folder (one SFT, one collection) its training is the
        one this cell would repeat, so it is not repeated. None otherwise (the DPO is trained here)."""
        if self.reward_cell is None or task.other_cell is None:
            return None
        cell = task.other_cell(self.reward_cell)
        if not (cell / "result.json").exists():
            task.log(f"  implicit reward: {cell} is not finished; training the DPO here")
            return None
        done = json.loads((cell / "result.json").read_text())
        wanted = ("dpo", self.dpo_settings, None)  # spec, settings, selection (None: random queries)
        if (done.get("spec"), done.get("settings"), done.get("selection")) != wanted:
            raise UserError(
                f"ppo_implicit reward_cell {self.reward_cell!r}: {cell} was trained with other settings "
                f"({done.get('spec')}, {done.get('settings')}); give this row's dpo settings or drop reward_cell"
            )
        task.log(f"  implicit reward: the finished DPO of {cell}")
        return cell / "policy"


class PPOOnEnvReward:
    """Episode PPO of the SFT network on one of the env's own rewards (``oracle``: the true reward), the cell's
    labels unused: over seeds, the RL ceiling at the env-step budget of a PPO-on-reward-model row (what RL
    reaches when the reward is perfect, so a gap to it is the reward model's)."""

    def __init__(self, reward: str = "oracle", episode_ppo: Mapping[str, Any] | None = None) -> None:
        from agents.alignment.episode_ppo_config import EpisodePPOConfig
        from dyadic_env.config import config_from_dict
        from dyadic_env.rewards import reward_names

        if reward not in reward_names():
            raise UserError(f"ppo_env reward: expected one of {', '.join(reward_names())}, found {reward!r}")
        self.reward, self.episode_ppo = reward, dict(episode_ppo or {})
        config_from_dict(EpisodePPOConfig, self.episode_ppo, "ppo_env episode_ppo")

    def __call__(self, task: AlignmentTask) -> Path:
        from experiments.pipelines.stages import train_episode_ppo_stage

        settings = {**self.episode_ppo, "seed": task.seed, "num_threads": task.num_threads}
        return train_episode_ppo_stage(task.sft, self.reward, task.dataset, settings, task.out / "policy")


ALGORITHM_FIGURES = "algorithm_figures.json"
"""A file an algorithm may leave in its checkpoint: ``{name: number}`` (e.g. its reward model's held-out pair
accuracy); the benchmark records it with the cell and reports its mean and interval over seeds."""


def write_algorithm_figures(policy: Path, figures: Mapping[str, float]) -> None:
    """Leave ``figures`` in a checkpoint for the benchmark (see :data:`ALGORITHM_FIGURES`)."""
    (Path(policy) / ALGORITHM_FIGURES).write_text(
        json.dumps({k: float(v) for k, v in figures.items()}, indent=1)
    )


PAIRINGS = ("best-worst", "top-bottom", "all-pairs")
"""How a cell turns rated groups into pairs: the paper's best vs worst (the export's pairs); ``top-bottom``:
the k-th best vs the k-th worst for k < ``pairs_per_group``; every pair with different scores."""


def _check_pairing(algorithm: str, pairing: str, pairs_per_group: int) -> None:
    if pairing not in PAIRINGS:
        raise UserError(f"{algorithm} pairing: expected one of {', '.join(PAIRINGS)}, found {pairing!r}")
    if pairs_per_group < 1:
        raise UserError(f"{algorithm} pairs_per_group: expected >= 1, found {pairs_per_group}")


def cell_pairs(task: AlignmentTask, pairing: str, pairs_per_group: int = 2) -> list[Any]:
    """The preference pairs a cell's rated groups give under ``pairing`` (see :data:`PAIRINGS`)."""
    if pairing == "best-worst":
        return list(task.pairs)
    if pairing == "top-bottom":
        return extreme_pairs(task.groups, pairs_per_group)
    return all_pairs(task.groups)


def extreme_pairs(groups: Sequence[Any], per_group: int) -> list[Any]:
    """The k-th best vs the k-th worst candidate of each group, k < ``per_group`` (the two halves never meet), when
    their scores differ: more of a group's ranking than best-vs-worst, without all-pairs' near-ties."""
    from human_feedback.preferences import SCORE_EPS

    pairs = []
    for group in groups:
        ranked = sorted(group.candidates, key=lambda c: -c.score)
        for k in range(min(per_group, len(ranked) // 2)):
            better, worse = ranked[k], ranked[-1 - k]
            if better.score > worse.score + SCORE_EPS:
                pairs.append(_ranked_pair(group.clip_id, better, worse))
    return pairs


def all_pairs(groups: Sequence[Any]) -> list[Any]:
    """Every pair of candidates with different scores in each group, the higher-scored chosen (the rule of
    ``human_feedback.preferences``'s ``all-pairs`` export, applied to already-scored groups)."""
    from human_feedback.preferences import SCORE_EPS

    pairs = []
    for group in groups:
        ranked = sorted(group.candidates, key=lambda c: -c.score)
        for i, better in enumerate(ranked):
            for worse in ranked[i + 1 :]:
                if better.score > worse.score + SCORE_EPS:
                    pairs.append(_ranked_pair(group.clip_id, better, worse))
    return pairs


def _ranked_pair(clip_id: str, better: Any, worse: Any) -> Any:
    """Two rated candidates as a pair, with their score margin and mean ratings per criterion."""
    from agents.alignment.dpo import TrajectoryPair

    margin = better.score - worse.score
    return TrajectoryPair(clip_id, better.tokens, worse.tokens, margin, better.criteria, worse.criteria)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if k < extra else 0) for k in range(parts)]


BUILTINS: dict[str, Callable[..., AlignmentAlgorithm]] = {
    "dpo": DPO,
    "random_prefer": RandomPrefer,
    "sft_preferred": SFTPreferred,
    "iterated_dpo": IteratedDPO,
    "ppo_rm": PPOOnRewardModel,
    "ppo_env": PPOOnEnvReward,
    "ppo_implicit": PPOOnImplicitReward,
}
