"""Simulated annotators rate through the oracle with bias and noise; a few are careless."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dyadic_env.synthetic import CRITERIA, SimulatedAnnotator, make_annotators, synthesize_listener


def test_make_annotators_is_seeded_and_has_the_careless_share() -> None:
    first = make_annotators(20, seed=5, careless_fraction=0.1)
    again = make_annotators(20, seed=5, careless_fraction=0.1)
    assert [a.annotator_id for a in first] == [a.annotator_id for a in again]
    assert [a.bias for a in first] == [a.bias for a in again]
    assert len({a.annotator_id for a in first}) == 20
    assert Counter(a.careless for a in first) == {None: 18, "random": 1, "constant": 1}
    assert [a.bias for a in make_annotators(20, seed=6)] != [a.bias for a in first]


def test_ratings_are_integers_from_1_to_5(small) -> None:
    clip = small.test[0]
    rng = np.random.default_rng(0)
    for annotator in make_annotators(10, seed=0, careless_fraction=0.2):
        ratings = annotator.rate(clip.speaker_motion, clip.listener_motion, clip.speaker_words, rng)
        assert set(ratings) == set(CRITERIA)
        assert all(isinstance(v, int) and 1 <= v <= 5 for v in ratings.values())


def test_careful_raters_prefer_appropriate_listeners(small) -> None:
    rng = np.random.default_rng(0)
    raters = [a for a in make_annotators(8, seed=1, careless_fraction=0.0)]
    good, poor = [], []
    for clip in small.test[:10]:
        for kind, sink in (("appropriate", good), ("generic_positive", poor)):
            listener = synthesize_listener(clip, kind)
            scores = raters[0].oracle.score(clip.speaker_motion, listener, clip.speaker_words)
            sink.extend(np.mean(list(r.from_scores(scores, rng).values())) for r in raters)
    assert np.mean(good) >= np.mean(poor) + 0.7


def test_careless_raters_ignore_the_video(small) -> None:
    rng = np.random.default_rng(0)
    constant = SimulatedAnnotator("c", careless="constant", constant_rating=3)
    random = SimulatedAnnotator("r", careless="random")
    clip = small.test[0]
    assert constant.rate(clip.speaker_motion, clip.listener_motion, clip.speaker_words, rng) == dict.fromkeys(
        CRITERIA, 3
    )
    draws = [
        random.rate(clip.speaker_motion, clip.listener_motion, clip.speaker_words, rng) for _ in range(200)
    ]
    assert Counter(d["empathy"] for d in draws).keys() == {1, 2, 3, 4, 5}


def test_bias_shifts_ratings(small) -> None:
    clip = small.test[0]
    scores = {k: 3.0 for k in CRITERIA}
    harsh = SimulatedAnnotator("h", bias=dict.fromkeys(CRITERIA, -1.0), noise=0.0)
    lenient = SimulatedAnnotator("l", bias=dict.fromkeys(CRITERIA, 1.0), noise=0.0)
    rng = np.random.default_rng(0)
    assert harsh.from_scores(scores, rng) == dict.fromkeys(CRITERIA, 2)
    assert lenient.from_scores(scores, rng) == dict.fromkeys(CRITERIA, 4)
    assert clip.num_frames > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"careless": "sleepy"}, "careless: expected None or one of"),
        ({"noise": -1.0}, "noise: expected >= 0"),
        ({"bias": {"empathy": 1.0}}, "bias: expected keys"),
    ],
)
def test_bad_annotator_settings_are_rejected(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatedAnnotator("x", **kwargs)


def test_make_annotators_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be positive"):
        make_annotators(0, seed=0)
    with pytest.raises(ValueError, match=r"careless_fraction must be in \[0, 1\]"):
        make_annotators(3, seed=0, careless_fraction=2.0)
