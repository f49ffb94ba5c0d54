"""How a reward model's held-out accuracy grows with the rated groups it learns from.

From one seed's collection of the alignment benchmark (``OUT/feedback/sS``), the last ``held_out`` groups are
set aside; a reward model (``dyadic train rm`` settings) learns from the first n groups for each n, and is
scored on the held-out groups' best-vs-worst pairs (the pairs of the same distribution it is trained on: the
issue's bar) and on every pair of them with different scores. Held out by group, so no candidate of a scored
pair was seen in training. Over several seeds of the reward model: mean and 95 % Student-t interval.

With ``test_groups`` (another seed's collection: the same distribution, its own candidates) every one of them is
held out instead: five times as many scored pairs as 96 groups give, and the training groups may be several
seeds' collections together, to ask whether more labels would help.

On synthetic data the hidden oracle orders the same held-out pairs too: the ceiling of any reward model against
these labels. The simulated raters report the oracle's score plus bias and noise, so the likelier label of a
pair is the oracle's order; where the oracle falls short of 1, the labels themselves disagree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from experiments.errors import UserError

Log = Callable[[str], None]
PAIRINGS = ("best-worst", "all-pairs")


def collected_groups(*collections: Path) -> list[Any]:
    """Every rated group of one or more seeds' collections (their finished ``partN`` folders, in order)."""
    from experiments.benchmark.collection import collection_parts
    from experiments.pipelines.alignment import load_rated_groups

    groups = []
    for collection in collections:
        parts = collection_parts(Path(collection))
        if not parts:
            raise UserError(
                f"{collection}: no collection parts (partN folders); give OUT/feedback/sS of a benchmark run"
            )
        groups += [g for part in parts for g in load_rated_groups(part)]
    return groups


def reward_model_curve(
    groups: Sequence[Any],
    dataset: Any,
    train_groups: Sequence[int],
    held_out: int,
    seeds: Sequence[int],
    rm_settings: dict[str, Any],
    pairing: str = "best-worst",
    log: Log = print,
    test_groups: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Held-out pair accuracy per training size of the rated ``groups`` (see the module docstring)."""
    from experiments.benchmark.report import student_t_interval
    from experiments.pipelines.aligners import all_pairs, extreme_pairs
    from experiments.pipelines.trainers import fit_reward_model

    if pairing not in PAIRINGS:
        raise UserError(f"pairing: expected one of {', '.join(PAIRINGS)}, found {pairing!r}")
    if test_groups is not None:
        held_out = 0
    if not train_groups or max(train_groups) + held_out > len(groups):
        raise UserError(
            f"{len(groups)} rated groups; {max(train_groups or [0])} to train on and {held_out} held out need "
            "more (a larger budget collects more: `dyadic benchmark alignment budgets=[...]`)"
        )
    held = list(test_groups) if test_groups is not None else groups[len(groups) - held_out :]
    scored = {"best_worst": extreme_pairs(held, 1), "all_pairs": all_pairs(held)}
    rows = []
    for n in train_groups:
        train = groups[:n]
        pairs = extreme_pairs(train, 1) if pairing == "best-worst" else all_pairs(train)
        accuracy: dict[str, list[float]] = {k: [] for k in scored}
        for seed in seeds:
            model = fit_reward_model(pairs, dataset, rm_settings, seed)
            for key, held_pairs in scored.items():
                accuracy[key].append(_accuracy(model, held_pairs, dataset))
            log(f"  {n} groups, seed {seed}: held-out best-vs-worst {accuracy['best_worst'][-1]:.3f}")
        row: dict[str, Any] = {"groups": n, "train_pairs": len(pairs)}
        for key, values in accuracy.items():
            mean, low, high = student_t_interval(values)
            row[key] = {"values": values, "mean": mean, "low": low, "high": high}
        rows.append(row)
    oracle = {key: oracle_accuracy(held_pairs, dataset) for key, held_pairs in scored.items()}
    return {"groups_available": len(groups), "held_out_groups": len(held), "test_collection": test_groups is not None,
            "held_out_pairs": {k: len(v) for k, v in scored.items()}, "pairing": pairing, "seeds": list(seeds),
            "rm": rm_settings, "rows": rows, "oracle": None if None in oracle.values() else oracle}  # fmt: skip


def oracle_accuracy(pairs: Sequence[Any], dataset: Any) -> float | None:
    """The share of ``pairs`` whose chosen trajectory the hidden oracle scores higher (eq. 10) than the rejected
    one; None where the dataset has no oracle (real data)."""
    from dyadic_env.rewards import is_synthetic
    from dyadic_env.synthetic import Oracle

    if not is_synthetic(dataset) or not pairs:
        return None
    oracle, tokenizer = Oracle(fps=dataset.fps), dataset.tokenizer()
    # All-pairs meets each candidate in several pairs: score it once.
    scores: dict[tuple[str, bytes], float] = {}

    def score(clip_id: str, tokens: Any) -> float:
        key = (clip_id, tokens.tobytes())
        if key not in scores:
            clip, listener = dataset.clip(clip_id), tokenizer.decode(tokens.astype("int64"))
            scores[key] = oracle.score(clip.speaker_motion, listener, clip.speaker_words)["weighted"]
        return scores[key]

    right = sum(score(p.clip_id, p.chosen_tokens) > score(p.clip_id, p.rejected_tokens) for p in pairs)
    return right / len(pairs)


def _accuracy(model: Any, pairs: list[Any], dataset: Any) -> float:
    from experiments.pipelines.trainers import preference_data
    from reward_models import pair_accuracy

    return pair_accuracy(model, preference_data(pairs, dataset, model.feature_config))


def markdown(result: dict[str, Any], command: str) -> str:
    """The curve as a results page."""
    lines = [
        "# Reward-model accuracy against rated groups",
        "",
        f"Generated by `{command}`. {result['groups_available']} rated groups to learn from; "
        + ("the test collection's " if result.get("test_collection") else "the last ")
        + f"{result['held_out_groups']} are held out ({result['held_out_pairs']['best_worst']} best-vs-worst "
        f"pairs, {result['held_out_pairs']['all_pairs']} pairs with different scores). The reward model "
        f"learns from the {result['pairing']} pairs of the first n groups; "
        f"{len(result['seeds'])} seeds of its training, mean [95 % CI].",
        "",
        "| groups | training pairs | held-out best-vs-worst accuracy | held-out all-pairs accuracy |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        cells = [
            f"{row[k]['mean']:.3f} [{row[k]['low']:.3f}, {row[k]['high']:.3f}]"
            for k in ("best_worst", "all_pairs")
        ]
        lines.append(f"| {row['groups']} | {row['train_pairs']} | {cells[0]} | {cells[1]} |")
    oracle = result.get("oracle")
    if oracle:
        lines.append(
            f"| the hidden oracle (the ceiling against these labels) | - | {oracle['best_worst']:.3f} | "
            f"{oracle['all_pairs']:.3f} |"
        )
    return "\n".join(lines) + "\n"
