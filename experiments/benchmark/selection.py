"""Which rated groups a cell buys: at random (the paper), or actively by reward-model ensemble disagreement.

Active selection is pool-based, as active learning is usually simulated: a row's ``selection.pool`` times its
budget of groups are collected (SFT samples, rated), but a cell reads the ratings of a group only when it buys
it. It buys ``budget / rounds`` groups at random, then, round after round, trains a Bradley-Terry ensemble
(:mod:`reward_models`) on the pairs bought so far and buys the unbought groups whose candidates the members
rank most differently. :func:`select_groups` sees a group's ratings only through ``label(i)``, so a test can
check that it reads no other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.errors import UserError

Log = Callable[[str], None]
METHODS = ("random", "disagreement")


@dataclass(frozen=True)
class Selection:
    """A row's query selection (``algorithm_specs.NAME.selection`` in a benchmark config).

    Attributes:
        method: ``random`` (the first ``budget`` groups of the seed's collection) or ``disagreement``.
        pool: with ``disagreement``, the pool holds ``pool * budget`` groups (the collection grows to it).
        rounds: buying rounds; the first buys at random (an ensemble needs pairs to disagree about).
        rm: :class:`~experiments.pipelines.trainers.RewardModelRunConfig` settings of the ensemble.
    """

    method: str = "random"
    pool: int = 2
    rounds: int = 3
    rm: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"selection.method: expected one of {', '.join(METHODS)}, found {self.method!r}")
        if self.pool < 2 and self.method != "random":
            raise UserError(f"selection.pool: expected >= 2 (pool = pool * budget groups), found {self.pool}")
        if self.rounds < 2 and self.method != "random":
            raise UserError(
                f"selection.rounds: expected >= 2 (the first round buys at random), found {self.rounds}"
            )
        if self.method != "random":
            from experiments.pipelines.trainers import RewardModelRunConfig

            if RewardModelRunConfig.from_dict(self.rm).model.ensemble_size < 2:
                raise UserError("selection.rm: disagreement needs an ensemble; set model.ensemble_size >= 2")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Selection:
        values = dict(values or {})
        unknown = sorted(set(values) - {"method", "pool", "rounds", "rm"})
        if unknown:
            raise UserError(f"selection: unknown keys {unknown}; use method, pool, rounds, rm")
        return cls(**values)

    def pool_size(self, budget: int) -> int:
        """Groups the seed's collection must hold for a cell at ``budget``."""
        return budget if self.method == "random" else self.pool * budget


def select_groups(
    selection: Selection,
    pool: Sequence[tuple[str, Sequence[np.ndarray]]],
    label: Callable[[int], Any],
    budget: int,
    seed: int,
    dataset: Any,
    log: Log = print,
) -> list[int]:
    """Indices into ``pool`` of the ``budget`` groups to buy, in buying order.

    Args:
        selection: an active method (a random row buys the collection's first groups: ``collection.pool``).
        pool: per group, its clip id and its candidates' token trajectories (no ratings).
        label: ``label(i)`` buys group ``i``: its best-vs-worst pair, or None when its candidates tied.
        budget: groups to buy.
        seed: seeds the first round's draw and the ensembles.
        dataset: the dataset the clips come from.
    """
    if len(pool) < selection.pool_size(budget):
        raise UserError(
            f"selection: the pool holds {len(pool)} groups, {selection.pool_size(budget)} are needed"
        )
    if selection.method == "random":
        raise ValueError(
            "select_groups: random selection buys the collection's first groups (collection.pool)"
        )
    rng = np.random.default_rng([seed, 31])
    shares = [budget // selection.rounds + (k < budget % selection.rounds) for k in range(selection.rounds)]
    bought = [int(i) for i in rng.permutation(len(pool))[: shares[0]]]
    pairs = [label(i) for i in bought]
    for k, share in enumerate(shares[1:], start=1):
        taken = set(bought)
        open_ = [i for i in range(len(pool)) if i not in taken]
        usable = [p for p in pairs if p is not None]
        if len(usable) < 2:  # a Bradley-Terry ensemble needs two pairs: buy this round at random too
            chosen = [open_[j] for j in rng.permutation(len(open_))[:share]]
            log(
                f"  active round {k + 1}/{selection.rounds}: {len(usable)} pair so far, {share} groups at random"
            )
        else:
            model = _ensemble(usable, dataset, selection, seed + k)
            scores = disagreement(model, [pool[i] for i in open_], dataset)
            chosen = [open_[j] for j in np.argsort(-scores, kind="stable")[:share]]
            log(f"  active round {k + 1}/{selection.rounds}: {share} groups, disagreement "
                f"{float(np.sort(scores)[::-1][:share].mean()):.3f} bought vs {float(scores.mean()):.3f} pool mean")  # fmt: skip
        bought += chosen
        pairs += [label(i) for i in chosen]
    return bought


def _ensemble(pairs: list[Any], dataset: Any, selection: Selection, seed: int) -> Any:
    """A reward-model ensemble on the pairs bought so far."""
    from experiments.pipelines.trainers import fit_reward_model

    return fit_reward_model(pairs, dataset, selection.rm, seed)


def disagreement(model: Any, groups: Sequence[tuple[str, Sequence[np.ndarray]]], dataset: Any) -> np.ndarray:
    """Per group: how differently the members rank its candidates, the std over members of each candidate's
    return centred on the group's mean, averaged over the candidates (a constant shift is not a disagreement)."""
    import torch

    from reward_models import clip_context, listener_features

    cfg, tokenizer = model.feature_config, dataset.tokenizer()
    out = np.zeros(len(groups))
    for g, (clip_id, candidates) in enumerate(groups):
        context = clip_context(cfg, dataset.clip(clip_id))
        x = np.stack(
            [listener_features(cfg, context, tokenizer.decode(np.asarray(t, np.int64))) for t in candidates]
        )
        with torch.no_grad():
            returns = model.returns(torch.from_numpy(x)).numpy()  # (members, candidates)
        centred = returns - returns.mean(1, keepdims=True)
        out[g] = float(centred.std(0).mean())
    return out
