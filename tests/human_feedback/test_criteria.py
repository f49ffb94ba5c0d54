"""Criterion weights of paper eq. 10 and the rubric."""

from __future__ import annotations

import pytest

from human_feedback.criteria import CRITERIA, parse_weights, rubric


def test_parse_weights_accepts_codes_and_names():
    weights = parse_weights("emp=0.4, app=0.3, engagement=0.2, nat=0.1")
    assert weights == {"empathy": 0.4, "appropriateness": 0.3, "engagement": 0.2, "naturalness": 0.1}
    assert parse_weights(None) == dict.fromkeys(weights, 0.25)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("emp=0.5,app=0.5,eng=0.5,nat=0", "sum to 1"),
        ("emp=1.5,app=-0.5,eng=0,nat=0", "outside"),
        ("emp=0.5,app=0.5", "missing"),
        ("emp=0.25,app=0.25,eng=0.25,foo=0.25", "cannot read"),
        ("emp=0.25,emp=0.25,eng=0.25,nat=0.25", "given twice"),
        ("emp=x,app=0.5,eng=0.25,nat=0.25", "not a number"),
    ],
)
def test_bad_weights_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_weights(text)


def test_rubric_has_five_levels_per_criterion():
    served = rubric()
    assert [c["key"] for c in served] == ["empathy", "appropriateness", "engagement", "naturalness"]
    assert all(len(c["levels"]) == 5 and c["definition"] for c in served)
    assert len({c.code for c in CRITERIA}) == 4
