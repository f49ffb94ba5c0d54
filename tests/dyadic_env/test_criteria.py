"""The four criteria are one list: the annotation app, the oracle, reward models and exports agree on it."""

from __future__ import annotations

from dyadic_env.criteria import CRITERIA


def test_every_layer_uses_the_one_list_of_criteria():
    from dyadic_env.synthetic.oracle import DEFAULT_WEIGHTS
    from human_feedback.criteria import CRITERION_KEYS
    from human_feedback.export import CSV_COLUMNS
    from reward_models import CRITERIA as reward_model_criteria

    assert CRITERIA == ("empathy", "appropriateness", "engagement", "naturalness")
    assert CRITERION_KEYS == CRITERIA == reward_model_criteria  # the app words them in the same order
    assert tuple(DEFAULT_WEIGHTS) == CRITERIA
    assert [c for c in CSV_COLUMNS if c in CRITERIA] == list(CRITERIA)
