"""The synthetic benchmark's appropriate-reaction sets: drawn from other personas, checked by the oracle,
from their own random streams (the clips a seed gives stay the same bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import load_dataset, validate_dataset
from dyadic_env.synthetic import Oracle, write_preset
from dyadic_env.synthetic.appropriate import MIN_ORACLE_SCORE, SetDraw, draw_listeners, held_out_listeners

ARRAYS = ("clip_index.npy", "clip_ids.npy", "clips.jsonl", "speaker_motion.npy", "listener_motion.npy",
          "speaker_affect.npy", "listener_affect.npy", "tokenizer.json")  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_preset("tiny", tmp_path_factory.mktemp("sets") / "tiny", seed=2, appropriate=4)


def test_sets_leave_every_clip_byte_identical(tiny, tmp_path):
    plain = write_preset("tiny", tmp_path / "plain", seed=2, appropriate=0)
    for name in ARRAYS:
        assert (plain / name).read_bytes() == (tiny / name).read_bytes(), name
    assert not load_dataset(plain).has_appropriate and load_dataset(plain).manifest["schema_version"] == 2
    again = write_preset("tiny", tmp_path / "again", seed=2, appropriate=4)
    assert (again / "appropriate_motion.npy").read_bytes() == (tiny / "appropriate_motion.npy").read_bytes()


def test_val_and_test_clips_get_oracle_checked_appropriate_listeners(tiny):
    dataset = load_dataset(tiny)
    assert validate_dataset(tiny) == []
    oracle = Oracle(fps=dataset.fps)
    for split in dataset.splits:
        for row, clip in zip(dataset.split(split).rows, dataset.split(split)):
            members = dataset.appropriate_listeners(int(row))
            if split == "train":
                assert members == []
                continue
            own = [m for m in members if np.shares_memory(m, dataset.arrays["listener_motion"])]
            assert len(members) - len(own) == 4  # K drawn personas, plus the recorded listener when it fits
            if clip.meta["listener_kind"] != "appropriate":
                assert own == []  # socially poor listeners stay out
            for member in members:
                score = oracle.score(clip.speaker_motion, member, clip.speaker_words)["weighted"]
                assert score >= MIN_ORACLE_SCORE
    params = json.loads((tiny / "manifest.json").read_text())["appropriate"]["params"]
    assert params["k"] == 4 and params["drawn_oracle_score"]["min"] >= MIN_ORACLE_SCORE


def test_drawn_listeners_are_different_personas_and_held_out_ones_are_new(tiny):
    dataset = load_dataset(tiny)
    row = int(dataset.split("test").rows[0])
    clip = dataset.clip_at(row)
    members = dataset.appropriate_listeners(row)
    drawn, scores = draw_listeners(clip, SetDraw(k=4), seed=2)
    stored = [m for m in members if not np.shares_memory(m, dataset.arrays["listener_motion"])]
    for a, b in zip(drawn, stored):
        np.testing.assert_array_equal(a, b)  # what the writer stored is what the stream gives
    assert len({float(np.abs(m[:, :50]).sum()) for m in drawn}) == 4 and min(scores) >= MIN_ORACLE_SCORE
    held = held_out_listeners(clip, 3, seed=2)
    assert len(held) == 3 and not any(np.array_equal(h, m) for h in held for m in members)
    with pytest.raises(ValueError, match="min_score is on the oracle's 1-5 scale"):
        SetDraw(min_score=7.0)


def test_held_out_rows_fill_a_shortfall_with_the_best_rejected_draws(tiny):
    clip = load_dataset(tiny).split("test")[0]
    strict = SetDraw(k=3, min_score=5.0, max_draws_per_member=1, min_draws=3)
    accepted, _ = draw_listeners(clip, strict, seed=0)
    filled, scores = draw_listeners(clip, strict, seed=0, fill=True)
    assert len(filled) == 3 and len(accepted) < 3  # 3 draws, and a perfect 5.0 is rare
    assert scores[len(accepted) :] == sorted(scores[len(accepted) :], reverse=True)
    assert len(held_out_listeners(clip, 1, seed=0)) == 1
