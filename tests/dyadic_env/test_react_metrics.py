"""REACT's appropriate-reaction metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic_env.metrics import (
    ccc,
    fr_corr,
    fr_dist,
    fr_div,
    fr_dvs,
    fr_syn,
    fr_var,
    react_metrics,
    react_table,
    weighted_dtw,
)
from dyadic_env.metrics.react import REACT_GROUPS


def track(values, dim: int = 0, frames: int | None = None) -> np.ndarray:
    """A (T, 56) track that is 0 everywhere but ``dim``, which follows ``values``."""
    values = np.asarray(values, np.float64)
    out = np.zeros((len(values) if frames is None else frames, 56))
    out[: len(values), dim] = values
    return out


def test_ccc_matches_the_textbook_example_and_is_zero_for_a_constant():
    truth, pred = np.array([3.0, -0.5, 2.0, 7.0]), np.array([2.5, 0.0, 2.0, 8.0])
    # 2 cov / (var_t + var_p + (mu_t - mu_p)^2) with population moments: means 2.875 and 3.125,
    # cov 31.5625 / 4, variances 29.1875 / 4 and 35.1875 / 4.
    expected = 2 * 7.890625 / (7.296875 + 8.796875 + 0.0625)
    assert ccc(truth[:, None], pred[:, None]) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.97678916827853024)  # the value scikit-learn's docs quote
    # Per dim, averaged over the 56 dims: a (T, 56) track equal but in dim 0 has 55 constant dims (CCC 0).
    assert ccc(track(truth), track(pred)) == pytest.approx(expected / 56, rel=1e-6)
    assert ccc(np.full((10, 56), 0.3), np.random.default_rng(0).normal(size=(10, 56))) == 0.0
    assert ccc(track(truth), track(-truth)) < 0


def test_ccc_compares_tracks_of_different_length_over_the_common_prefix():
    a = track([0.0, 1.0, 0.0, 1.0])
    b = track([0.0, 1.0, 0.0, 1.0, 5.0, 9.0])
    assert ccc(a, b) == pytest.approx(ccc(a, b[:4])) == pytest.approx(1 / 56, rel=1e-6)


def test_fr_corr_takes_the_best_reaction_of_the_set():
    up, down = track([0.0, 1.0, 2.0, 3.0]), track([3.0, 2.0, 1.0, 0.0])
    best = fr_corr([up, down, np.zeros((4, 56))], [down, up])
    np.testing.assert_allclose(best, [1 / 56, 1 / 56, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="appropriate set is empty"):
        fr_corr([up], [])


def test_weighted_dtw_by_hand():
    a = track([0.0, 1.0, 2.0])
    assert weighted_dtw(a, track([0.0, 1.0, 1.0, 2.0])) == pytest.approx(0.0)  # warping absorbs the repeat
    # Against a constant 0 every a_i is matched at least once: sqrt(0 + 1 + 4).
    assert weighted_dtw(a, np.zeros((3, 56))) == pytest.approx(np.sqrt(5.0))
    # REACT's grouping: the neck group (dims 50-52) weighs 1/3, the expression group 1/50.
    assert weighted_dtw(track([0.0, 1.0, 2.0], dim=50), np.zeros((3, 56)), REACT_GROUPS) == pytest.approx(
        np.sqrt(5.0) / 3
    )
    assert weighted_dtw(a, np.zeros((3, 56)), REACT_GROUPS) == pytest.approx(np.sqrt(5.0) / 50)


def test_fr_dist_takes_the_closest_reaction():
    a = track([0.0, 1.0, 2.0])
    np.testing.assert_allclose(
        fr_dist([a, np.zeros((3, 56))], [np.zeros((3, 56)), a]), [0.0, 0.0], atol=1e-12
    )
    np.testing.assert_allclose(fr_dist([a], [np.zeros((3, 56))]), [np.sqrt(5.0)])


def test_fr_div_fr_dvs_and_fr_var_by_hand():
    base = np.random.default_rng(0).normal(size=(6, 56))
    # Two predictions c apart in every value: squared distance per value c^2 (REACT's S-MSE).
    assert fr_div([base, base + 0.5]) == pytest.approx(0.25)
    assert fr_div([base]) == 0.0 and fr_div([base, base, base]) == 0.0
    # Across clips, same prediction index, over the common prefix.
    assert fr_dvs([[base, base], [base[:4] + 2.0, base[:4] + 2.0]]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least 2 clips"):
        fr_dvs([[base]])
    # Unbiased variance over time: dim 0 takes 0 and 2, variance 2; the 55 other dims are constant.
    assert fr_var([track([0.0, 2.0])]) == pytest.approx(2.0 / 56)


def test_fr_syn_finds_the_lag_of_the_speaker():
    speaker = np.cumsum(np.random.default_rng(1).normal(size=(200, 56)), axis=0)
    shifted = np.concatenate([np.repeat(speaker[:1], 5, axis=0), speaker[:-5]])
    assert fr_syn(speaker, speaker, fps=25) == 0.0
    assert fr_syn(shifted, speaker, fps=25) == 5.0
    # No correlation at any lag (a constant face): the largest lag, 2 s at 25 fps less one frame.
    assert (
        fr_syn(np.zeros((200, 56)), speaker, fps=25)
        == fr_syn(np.full((200, 56), 0.3), speaker, fps=25)
        == 49.0
    )
    assert fr_syn(shifted[:30], speaker[:30], fps=25) == 5.0  # lags up to T - 2 = 28 frames only
    assert fr_syn(np.zeros((30, 56)), speaker[:30], fps=25) == 28.0


def test_react_metrics_reports_the_sum_and_the_mean_over_predictions():
    rng = np.random.default_rng(2)
    speakers = [rng.normal(size=(30, 56)), rng.normal(size=(40, 56))]
    reactions = [[rng.normal(size=(30, 56))], [rng.normal(size=(40, 56)), rng.normal(size=(25, 56))]]
    predictions = [[reactions[0][0], rng.normal(size=(30, 56)), np.zeros((30, 56))],
                   [rng.normal(size=(40, 56)) for _ in range(3)]]  # fmt: skip
    result = react_metrics(predictions, reactions, speakers, fps=25)
    per_prediction = [fr_corr(p, r) for p, r in zip(predictions, reactions)]
    assert result["FRCorr/pred"] == pytest.approx(np.mean([c.mean() for c in per_prediction]))
    assert result["FRCorr"] == pytest.approx(3 * result["FRCorr/pred"])  # REACT sums over the K predictions
    assert result["FRDist"] == pytest.approx(3 * result["FRDist/pred"])
    assert per_prediction[0][0] == pytest.approx(1.0, abs=1e-6) and per_prediction[0][2] == 0.0
    assert result["clips_with_set"] == 2 and set(result) >= {"FRDiv", "FRDvs", "FRVar", "FRSyn"}
    # A clip without a set leaves FRCorr and FRDist to the others.
    partial = react_metrics(predictions, [reactions[0], []], speakers)
    assert partial["clips_with_set"] == 1
    assert partial["FRCorr/pred"] == pytest.approx(per_prediction[0].mean())
    assert "| FRCorr ↑ |" in react_table({"x": result}).splitlines()[0]


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        ([[np.zeros((30, 56))], [np.zeros((40, 56))] * 2], "same number K"),
        ([[np.zeros((30, 56))], [np.zeros((39, 56))]], "clip 1 prediction 0"),
    ],
)
def test_react_metrics_refuses_mismatched_input(predictions, message):
    speakers = [np.zeros((30, 56)), np.zeros((40, 56))]
    with pytest.raises(ValueError, match=message):
        react_metrics(predictions, [[], []], speakers)
    with pytest.raises(ValueError, match="equal length"):
        react_metrics(predictions, [[]], speakers)
