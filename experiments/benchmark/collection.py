"""Preference collection for the benchmark: per seed, rated groups in fixed parts; a cell takes the first b."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from experiments.benchmark.protocol import BenchmarkConfig, collection_dir
from experiments.errors import UserError
from experiments.pipelines.stages import run_stage

Log = Callable[[str], None]
PART_GROUPS = 120
"""Rated groups per collection part (one collection job); part of the protocol."""


def collect_seed(config: BenchmarkConfig, sft: str, seed: int, log: Log = print) -> list[Path]:
    """Rate at least ``config.collection_groups()`` groups of SFT samples for ``seed`` (the largest budget, or an
    active row's pool), in parts of :data:`PART_GROUPS`."""
    from dyadic_env.data import load_dataset
    from experiments.pipelines.alignment import collect_preferences

    dataset = load_dataset(config.dataset)
    order = _clip_order(dataset, seed, config.collection_groups())
    parts = []
    for p, clip_ids in enumerate(order):
        feedback = config.feedback_config(seed, p)
        build = lambda tmp, ids=clip_ids, fb=feedback: collect_preferences(  # noqa: E731
            sft, config.dataset, tmp, fb, clip_ids=ids, log=log
        )
        parts.append(
            run_stage(
                f"collect s{seed} part {p}", collection_dir(config.out, seed) / f"part{p}", build, log=log
            )
        )
    return parts


def _clip_order(dataset: Any, seed: int, groups: int) -> list[list[str]]:
    """Train clips of the parts that hold at least ``groups`` groups: seeded passes over the train split, each a
    fresh permutation cut into parts of :data:`PART_GROUPS`. Parts do not depend on the budget asked for, so a
    larger budget later adds parts and keeps the groups smaller budgets used."""
    ids = list(dataset.split("train").clip_ids)
    rng = np.random.default_rng([seed, 17])
    parts: list[list[str]] = []
    while sum(map(len, parts)) < groups:
        permuted = [ids[i] for i in rng.permutation(len(ids))]
        parts += [permuted[k : k + PART_GROUPS] for k in range(0, len(permuted), PART_GROUPS)]
    reached = np.cumsum([len(part) for part in parts]) >= groups
    return parts[: int(np.argmax(reached)) + 1]


def finished_parts(out: Path, seed: int) -> list[Path]:
    """A seed's finished collection parts in order (not a ``partN.partial`` another process is writing)."""
    return collection_parts(collection_dir(out, seed))


def collection_parts(directory: Path) -> list[Path]:
    """The finished ``partN`` folders of one seed's collection folder, in order."""
    parts = [p for p in directory.glob("part*") if p.name[4:].isdigit()]
    return sorted(parts, key=lambda p: int(p.name[4:]))


def pool(
    config: BenchmarkConfig, seed: int, budget: int, selection: Any = None, log: Log = print
) -> tuple[list[Any], list[Any]]:
    """The rated groups a cell buys and their best-vs-worst pairs (a group whose candidates tied gives none):
    the first ``budget`` of the seed's collection in collection order, or, with an active ``selection``
    (:mod:`experiments.benchmark.selection`), those it picks from a larger pool, in buying order."""
    from experiments.benchmark.selection import Selection, select_groups

    selection = selection or Selection()
    rows = _collected(config, seed, selection.pool_size(budget))
    if selection.method != "random":
        from dyadic_env.data import load_dataset

        candidates = [(g.clip_id, [c.tokens for c in g.candidates]) for g, _ in rows]
        label = lambda i: rows[i][1]  # noqa: E731  (buying a group: the only read of its ratings)
        picked = select_groups(selection, candidates, label, budget, seed, load_dataset(config.dataset), log)
        rows = [rows[i] for i in picked]
    rows = rows[:budget]
    return [p for _, p in rows if p is not None], [g for g, _ in rows]


def _collected(config: BenchmarkConfig, seed: int, groups: int) -> list[tuple[Any, Any]]:
    """The first ``groups`` rated groups of a seed's collection, each with its pair or None."""
    from experiments.pipelines.alignment import load_pairs, load_rated_groups

    rows: list[tuple[Any, Any]] = []  # (group, its pair or None)
    for part in finished_parts(config.out, seed):
        order = {cid: i for i, cid in enumerate(json.loads((part / "summary.json").read_text())["clip_ids"])}
        by_clip = {p.clip_id: p for p in load_pairs(part / "preferences")[1]}  # a part rates each clip once
        rows += [
            (g, by_clip.get(g.clip_id))
            for g in sorted(load_rated_groups(part), key=lambda g: order[g.clip_id])
        ]
        if len(rows) >= groups:
            break
    if len(rows) < groups:
        raise UserError(
            f"seed {seed}: the collection holds {len(rows)} rated groups, the cell needs {groups}"
        )
    return rows[:groups]
