"""Eq. 10 scores, ranking into pairs (ties, margins, too few ratings), and the preference dataset files."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from human_feedback.analysis import RatingRow
from human_feedback.preferences import PreferenceDataset, build_pairs, score_candidates

EQUAL = dict.fromkeys(("empathy", "appropriateness", "engagement", "naturalness"), 0.25)
NOW = dt.datetime(2026, 1, 1)


def row(group, cand, annotator, values, *, source="policy", page="regular", sample=0, position=0):
    e, a, g, n = values
    return RatingRow(
        group_id=group,
        clip_id=f"clip-{group}",
        split="test",
        candidate_id=cand,
        source=source,
        policy_name="gt" if source == "ground_truth" else "pi",
        sample_index=sample,
        annotator=annotator,
        annotator_kind="human",
        page_kind=page,
        empathy=e,
        appropriateness=a,
        engagement=g,
        naturalness=n,
        watched_ms=None,
        time_spent_ms=None,
        submitted_at=NOW,
        group_position=position,
    )


def tokens_for(*ids):
    return {c: np.full((5, 56), i, dtype=np.int64) for i, c in enumerate(ids)}


def test_scores_are_weighted_means_of_criteria():
    rows = [row("g", "c1", "a", (5, 4, 3, 2)), row("g", "c1", "b", (3, 4, 5, 2))]
    weights = {"empathy": 0.4, "appropriateness": 0.3, "engagement": 0.2, "naturalness": 0.1}
    score = score_candidates(rows, weights)["c1"]
    assert score.means == {"empathy": 4.0, "appropriateness": 4.0, "engagement": 4.0, "naturalness": 2.0}
    assert score.score == pytest.approx(0.4 * 4 + 0.3 * 4 + 0.2 * 4 + 0.1 * 2)
    assert score.num_ratings == 2


def test_best_worst_pairs_per_group_and_reports_what_was_skipped():
    rows = [
        # g1: gt best (4.5), c2 worst (1.5)
        row("g1", "gt1", "a", (5, 5, 4, 4), source="ground_truth"),
        row("g1", "gt1", "b", (4, 5, 5, 4), source="ground_truth"),
        row("g1", "c1", "a", (3, 3, 3, 3)),
        row("g1", "c1", "b", (3, 3, 3, 3)),
        row("g1", "c2", "a", (1, 2, 1, 2)),
        row("g1", "c2", "b", (2, 1, 2, 1)),
        # g2: all equal -> tied
        row("g2", "d1", "a", (3, 3, 3, 3)),
        row("g2", "d1", "b", (3, 3, 3, 3)),
        row("g2", "d2", "a", (3, 3, 3, 3)),
        row("g2", "d2", "b", (3, 3, 3, 3)),
        # g3: d4 has one rating only -> too few
        row("g3", "d3", "a", (5, 5, 5, 5)),
        row("g3", "d3", "b", (5, 5, 5, 5)),
        row("g3", "d4", "a", (1, 1, 1, 1)),
        # ignored: repeated page and broken candidate
        row("g1", "c2", "a", (5, 5, 5, 5), page="repeat"),
        row("g1", "x", "a", (5, 5, 5, 5), source="broken"),
    ]
    pairs, report = build_pairs(
        rows, tokens_for("gt1", "c1", "c2", "d1", "d2", "d3", "d4"), EQUAL, min_ratings=2
    )
    assert [(p.chosen_id, p.rejected_id) for p in pairs] == [("gt1", "c2")]
    assert pairs[0].chosen_score == 4.5 and pairs[0].rejected_score == 1.5 and pairs[0].margin == 3.0
    assert pairs[0].num_ratings == 2 and pairs[0].clip_id == "clip-g1"
    assert (report.groups, report.groups_paired, report.groups_tied, report.groups_too_few_ratings) == (
        3,
        1,
        1,
        1,
    )
    assert report.skipped_groups["tied"] == ["g2"] and report.skipped_groups["too_few_ratings"] == ["g3"]
    assert report.ground_truth_chosen == 1
    np.testing.assert_array_equal(pairs[0].chosen_tokens, np.zeros((5, 56)))


def test_a_candidate_nobody_rated_makes_its_group_incomplete():
    rows = [row("g", "a", "x", (5, 5, 5, 5)), row("g", "b", "x", (1, 1, 1, 1))]
    pairs, report = build_pairs(
        rows, tokens_for("a", "b", "c"), EQUAL, group_candidates={"g": ["a", "b", "c"]}
    )
    assert pairs == [] and report.groups_too_few_ratings == 1


def test_margin_and_ties_are_explicit():
    rows = [
        row("g", "a", "x", (4, 4, 4, 4)),
        row("g", "b", "x", (4, 4, 4, 4)),
        row("g", "c", "x", (3, 4, 4, 4)),
    ]
    tokens = tokens_for("a", "b", "c")
    pairs, report = build_pairs(rows, tokens, EQUAL, min_margin=0.5)
    assert pairs == [] and report.groups_tied == 1  # best - worst = 0.25 < 0.5
    pairs, report = build_pairs(rows, tokens, EQUAL, seed=1)
    assert len(pairs) == 1 and pairs[0].rejected_id == "c" and pairs[0].chosen_id in {"a", "b"}
    assert report.tie_breaks == 1
    # the tie-break is seeded: same seed, same choice
    assert build_pairs(rows, tokens, EQUAL, seed=1)[0][0].chosen_id == pairs[0].chosen_id


def test_all_pairs_mode_counts_tied_and_small_gaps():
    rows = [
        row("g", "a", "x", (5, 5, 5, 5)),
        row("g", "b", "x", (5, 5, 5, 5)),
        row("g", "c", "x", (4, 5, 5, 5)),
        row("g", "d", "x", (1, 1, 1, 1)),
    ]
    pairs, report = build_pairs(rows, tokens_for("a", "b", "c", "d"), EQUAL, mode="all-pairs", min_margin=0.5)
    assert sorted((p.chosen_id, p.rejected_id) for p in pairs) == [("a", "d"), ("b", "d"), ("c", "d")]
    assert report.pairs_tied == 1 and report.pairs_below_margin == 2 and report.pairs == 3


def test_tie_breaks_do_not_depend_on_the_stores_random_ids():
    # Two collections of the same groups whose store drew other ids: the seeded tie-break must pick the same
    # candidates (by sample index), group after group (by position).
    def collection(names):
        rows, tokens = [], {}
        for position, group in enumerate(("first", "second")):
            for sample, values in enumerate(
                [(5, 5, 5, 5), (5, 5, 5, 5), (5, 5, 5, 5), (1, 1, 1, 1), (1, 1, 1, 1)]
            ):
                cid = names[(group, sample)]
                rows.append(row(names[group], cid, "a", values, sample=sample, position=position))
                tokens[cid] = np.full((5, 56), 10 * position + sample, dtype=np.int64)
        return rows, tokens

    keys = [("first", s) for s in range(5)] + [("second", s) for s in range(5)] + ["first", "second"]
    picked = []
    for order in (list(range(12)), list(range(12))[::-1]):  # ids sorting in opposite orders
        names = {key: f"id{rank:02d}" for key, rank in zip(keys, order)}
        pairs, report = build_pairs(*collection(names), EQUAL, seed=3)
        assert report.tie_breaks == 4
        picked.append([(int(p.chosen_tokens[0, 0]), int(p.rejected_tokens[0, 0])) for p in pairs])
    assert picked[0] == picked[1]
    assert [c // 10 for c, _ in picked[0]] == [0, 1]  # groups in collection order


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="mode must be"):
        build_pairs([], {}, EQUAL, mode="best")
    with pytest.raises(ValueError, match="min_margin"):
        build_pairs([], {}, EQUAL, min_margin=-1)
    with pytest.raises(ValueError, match="sum to 1"):
        build_pairs([], {}, {**EQUAL, "empathy": 0.5})


def test_dataset_round_trip(tmp_path):
    rows = [row("g", "a", "x", (5, 4, 5, 5)), row("g", "b", "x", (2, 2, 1, 2))]
    pairs, report = build_pairs(rows, tokens_for("a", "b"), EQUAL)
    out = PreferenceDataset.write(
        tmp_path / "prefs",
        pairs,
        weights=EQUAL,
        dataset_spec="synthetic:tiny",
        split="test",
        source={"campaign": "c"},
        counts=report.counts(),
    )
    loaded = PreferenceDataset.load(tmp_path / "prefs")
    assert loaded.dataset_spec == "synthetic:tiny" and loaded.split == "test" and len(loaded) == len(out) == 1
    pair = loaded.pairs[0]
    assert pair.chosen_tokens.dtype == np.uint8 and pair.chosen_tokens.shape == (5, 56)
    assert (pair.chosen_score, pair.rejected_score, pair.margin) == (4.75, 1.75, 3.0)
    # The per-criterion means travel with the pair: a reward model's criteria head trains on them.
    keys = ("empathy", "appropriateness", "engagement", "naturalness")
    assert pair.chosen_criteria == dict(zip(keys, (5.0, 4.0, 5.0, 5.0)))
    assert pair.rejected_criteria == dict(zip(keys, (2.0, 2.0, 1.0, 2.0)))
    line = json.loads((tmp_path / "prefs" / "pairs.jsonl").read_text())
    assert {
        "pair_id",
        "clip_id",
        "chosen",
        "rejected",
        "chosen_score",
        "rejected_score",
        "margin",
        "group_id",
        "num_ratings",
    } <= set(line)
    manifest = json.loads((tmp_path / "prefs" / "manifest.json").read_text())
    assert manifest["format"] == "dyadic-preferences" and manifest["counts"]["pairs"] == 1
    assert not (tmp_path / "prefs.partial").exists()
    with pytest.raises(FileExistsError, match="--overwrite"):
        PreferenceDataset.write(tmp_path / "prefs", pairs, weights=EQUAL)


def test_loading_checks_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="dyadic feedback export"):
        PreferenceDataset.load(tmp_path)
    rows = [row("g", "a", "x", (5, 5, 5, 5)), row("g", "b", "x", (2, 2, 2, 2))]
    pairs, _ = build_pairs(rows, tokens_for("a", "b"), EQUAL)
    PreferenceDataset.write(tmp_path / "p", pairs, weights=EQUAL)
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    (tmp_path / "p" / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        PreferenceDataset.load(tmp_path / "p")


def test_tokens_that_do_not_fit_uint8_are_refused(tmp_path):
    rows = [row("g", "a", "x", (5, 5, 5, 5)), row("g", "b", "x", (2, 2, 2, 2))]
    tokens = {"a": np.full((3, 56), 300), "b": np.zeros((3, 56), int)}
    pairs, _ = build_pairs(rows, tokens, EQUAL)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        PreferenceDataset.write(tmp_path / "p", pairs, weights=EQUAL)
