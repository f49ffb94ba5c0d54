"""How DPO cells turn rated groups into preference pairs."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.errors import UserError


def _group(scores: list[float]):  # type: ignore[no-untyped-def]
    from experiments.pipelines.alignment import RatedCandidate, RatedGroup

    tokens = [np.full((2, 56), k, np.int64) for k in range(len(scores))]
    return RatedGroup(
        "g", "clip", tuple(RatedCandidate(f"c{k}", tokens[k], s, {}) for k, s in enumerate(scores))
    )


def _ids(pairs: list) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    return [(int(p.chosen_tokens[0, 0]), int(p.rejected_tokens[0, 0])) for p in pairs]


def test_extreme_pairs_take_the_kth_best_against_the_kth_worst() -> None:
    from experiments.pipelines.aligners import extreme_pairs

    group = _group([3.0, 5.0, 1.0, 4.0, 2.0, 2.5])  # ranked: 1, 3, 0, 5, 4, 2
    assert _ids(extreme_pairs([group], 1)) == [(1, 2)]
    assert _ids(extreme_pairs([group], 2)) == [(1, 2), (3, 4)]
    assert _ids(extreme_pairs([group], 9)) == [(1, 2), (3, 4), (0, 5)]  # the halves never meet
    assert [p.margin for p in extreme_pairs([group], 2)] == [4.0, 2.0]


def test_extreme_pairs_skip_tied_candidates() -> None:
    from experiments.pipelines.aligners import extreme_pairs

    assert _ids(extreme_pairs([_group([3.0, 4.0, 3.0, 3.0])], 2)) == [(1, 3)]


def test_pairs_carry_each_sides_ratings_per_criterion_to_the_reward_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dyadic_env.criteria import CRITERIA
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import write_preset
    from experiments.pipelines.aligners import all_pairs, extreme_pairs
    from experiments.pipelines.alignment import RatedCandidate, RatedGroup
    from experiments.pipelines.trainers import preference_data
    from reward_models.features import StepFeatureConfig

    dataset = load_dataset(write_preset("tiny", tmp_path / "data"))
    clip = dataset.clip(dataset.split("train").clip_ids[0])
    ratings = [dict.fromkeys(CRITERIA, float(k + 1)) for k in range(3)]
    group = RatedGroup("g", clip.clip_id, tuple(
        RatedCandidate(f"c{k}", np.full((clip.num_frames, 56), k, np.int64), float(k), ratings[k]) for k in range(3)
    ))  # fmt: skip
    best_worst = extreme_pairs([group], 1)
    assert best_worst[0].chosen_criteria == ratings[2] and best_worst[0].rejected_criteria == ratings[0]
    data = preference_data(all_pairs([group]), dataset, StepFeatureConfig())
    assert data.criteria is not None and sorted(data.criteria[:, 0]) == [1.0, 2.0, 3.0]


def test_dpo_refuses_an_unknown_pairing() -> None:
    from experiments.pipelines.aligners import DPO

    with pytest.raises(UserError, match="top-bottom"):
        DPO(pairing="best-two")
    with pytest.raises(UserError, match="pairs_per_group"):
        DPO(pairing="top-bottom", pairs_per_group=0)


def test_feedback_config_names_a_bad_draw() -> None:
    from experiments.pipelines.alignment import FeedbackConfig

    assert FeedbackConfig(draw="inverse-cdf").draw == "inverse-cdf"
    with pytest.raises(ValueError, match="draw must be one of"):
        FeedbackConfig(draw="fast")


def test_a_collection_part_being_written_is_not_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from experiments.benchmark.collection import finished_parts
    from experiments.benchmark.protocol import collection_dir

    for name in ("part0", "part10", "part2", "part1.partial"):
        (collection_dir(tmp_path, 3) / name).mkdir(parents=True)
    assert [p.name for p in finished_parts(tmp_path, 3)] == ["part0", "part2", "part10"]


@pytest.mark.parametrize("accumulate", [False, True])
def test_iterated_dpo_rounds_spend_the_budget_and_train_on_their_pairs(tmp_path, accumulate) -> None:  # type: ignore[no-untyped-def]
    from experiments.pipelines.aligners import AlignmentTask, IteratedDPO

    bought: list[tuple[str, int]] = []

    def collect(policy, groups, tag):  # type: ignore[no-untyped-def]
        bought.append((tag, groups))
        return [f"{tag}-{i}" for i in range(groups)], []

    trained: list[tuple[str, list[str], int]] = []

    def dpo_round(task):  # type: ignore[no-untyped-def]
        trained.append((str(task.sft), list(task.pairs), task.seed))
        return task.out

    algorithm = IteratedDPO(rounds=3, accumulate=accumulate, num_epochs=1)
    algorithm.dpo = dpo_round  # type: ignore[assignment]
    task = AlignmentTask(sft=tmp_path / "sft", pairs=[f"up-{i}" for i in range(9)], groups=[], dataset=None,
                         budget=8, seed=5, out=tmp_path / "cell", collect=collect, log=lambda _m: None)  # fmt: skip
    assert algorithm(task) == tmp_path / "cell" / "round2"
    assert bought == [("round1", 3), ("round2", 2)]  # 3 up front + 3 + 2 on-policy = the budget of 8
    up, one, two = ["up-0", "up-1", "up-2"], ["round1-0", "round1-1", "round1-2"], ["round2-0", "round2-1"]
    expected = [up, up + one, up + one + two] if accumulate else [up, one, two]
    assert [pairs for _, pairs, _ in trained] == expected
    # Each round starts from (and is referenced to) the previous round's policy, with its own seed.
    assert [(start, seed) for start, _, seed in trained] == [
        (str(tmp_path / "sft"), 5), (str(tmp_path / "cell" / "round0"), 1005), (str(tmp_path / "cell" / "round1"), 2005)
    ]  # fmt: skip


def test_iterated_dpo_refuses_an_accumulate_that_is_not_a_boolean() -> None:
    from experiments.pipelines.aligners import IteratedDPO

    with pytest.raises(UserError, match="accumulate: expected true or false, found 'yes'"):
        IteratedDPO(accumulate="yes")  # type: ignore[arg-type]
