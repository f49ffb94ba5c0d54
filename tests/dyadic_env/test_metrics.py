import numpy as np
import pytest

from dyadic_env.metrics import (
    LinearAffectProbe,
    diversity,
    evaluate,
    frechet_distance,
    frechet_terms,
    l2,
    l2_affect,
    l2_affect_parts,
    metrics_table,
    paired_frechet_distance,
    variation,
)


def test_l2_hand_computed():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[0.0, 2.0], [3.0, 6.0]])
    assert l2(pred, gt) == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_frechet_distance_of_one_dimensional_gaussians():
    # 1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2
    a = np.array([[0.0], [2.0]])  # mean 1, sample var 2
    b = np.array([[3.0], [5.0], [7.0]])  # mean 5, sample var 4
    expected = (1 - 5) ** 2 + (np.sqrt(2) - np.sqrt(4)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected)
    mean_term, covariance_term = frechet_terms(a, b)
    assert mean_term == pytest.approx(16.0) and covariance_term == pytest.approx((np.sqrt(2) - 2) ** 2)


def test_frechet_distance_diagonal_gaussians_and_identity():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 3)) * [1.0, 2.0, 3.0]
    b = rng.normal(size=(400, 3)) * [1.0, 2.0, 3.0] + [1.0, 0.0, 0.0]
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    from scipy.linalg import sqrtm

    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_handles_a_frozen_dimension():
    a = np.zeros((50, 2))
    a[:, 0] = np.arange(50)
    assert np.isfinite(frechet_distance(a, a)) and frechet_distance(a, a) < 1e-4


def test_paired_fd_sees_timing_that_fd_misses():
    rng = np.random.default_rng(2)
    speaker = rng.normal(size=(300, 2))
    gt = speaker + 0.1 * rng.normal(size=(300, 2))
    shuffled = gt[rng.permutation(300)]  # same frames, wrong timing
    assert frechet_distance(gt, shuffled) == pytest.approx(0.0, abs=1e-9)
    assert paired_frechet_distance(shuffled, gt, speaker) > 1.0


def test_variation_hand_computed():
    frames = np.array([[0.0, 0.0], [2.0, 4.0]])  # population variances 1 and 4
    assert variation(frames) == pytest.approx(2.5)


def test_diversity_uses_30_frame_sets_and_is_seeded():
    frames = np.arange(100, dtype=float)[:, None] * np.ones((1, 2))
    d1 = diversity(frames, np.random.default_rng(0))
    assert d1 == diversity(frames, np.random.default_rng(0))
    order = np.random.default_rng(0).permutation(100)
    expected = np.mean(np.abs(order[:30] - order[30:60]) * np.sqrt(2))
    assert d1 == pytest.approx(expected)
    short = np.arange(25, dtype=float)[:, None]
    order = np.random.default_rng(3).permutation(25)
    assert diversity(short, np.random.default_rng(3)) == pytest.approx(
        np.mean(np.abs(order[:10] - order[10:20]))
    )


def test_l2_affect_windows_of_30():
    gt = np.concatenate([np.zeros(30), np.ones(30), np.full(10, 9.0)])  # the partial window is dropped
    pred = np.concatenate([np.full(30, 0.5), np.ones(30), np.zeros(10)])
    assert l2_affect(pred, gt) == pytest.approx((0.25 + 0.0) / 2)
    assert l2_affect(np.zeros(10), np.full(10, 0.2)) == pytest.approx(0.04)


def test_evaluate_averages_per_clip_metrics():
    rng = np.random.default_rng(4)
    clips = [rng.normal(size=(t, 56)) for t in (40, 70)]
    preds = [c + 1.0 for c in clips]
    result = evaluate(preds, clips, clips, predicted_affect=[np.zeros(40), np.zeros(70)],
                      ground_truth_affect=[np.zeros(40), np.ones(70)])  # fmt: skip
    assert result["L2"] == pytest.approx(1.0)
    assert result["FD"] == pytest.approx(56.0, rel=1e-6)  # pure mean shift of 1 in 56 dims
    assert result["Variation"] == pytest.approx(np.mean([variation(c) for c in clips]))
    assert result["L2 Affect"] == pytest.approx(0.5)
    assert set(result) == {"L2", "FD", "P-FD", "Variation", "Diversity", "L2 Affect"}
    self_result = evaluate(clips, clips, clips)
    assert self_result["L2"] == 0 and self_result["FD"] < 1e-6 and "L2 Affect" not in self_result


def test_evaluate_rejects_mismatched_input():
    with pytest.raises(ValueError, match="clip 0"):
        evaluate([np.zeros((5, 56))], [np.zeros((6, 56))], [np.zeros((6, 56))])
    with pytest.raises(ValueError, match="equal length"):
        evaluate([np.zeros((5, 56))], [], [])
    with pytest.raises(ValueError, match="both"):
        evaluate(
            [np.zeros((5, 56))], [np.zeros((5, 56))], [np.zeros((5, 56))], predicted_affect=[np.zeros(5)]
        )


def test_linear_probe_recovers_a_linear_valence(tmp_path):
    rng = np.random.default_rng(5)
    frames = rng.normal(size=(500, 56))
    true_w = rng.normal(size=56)
    probe = LinearAffectProbe.fit(frames, frames @ true_w + 0.3, ridge=1e-8)
    np.testing.assert_allclose(probe(frames[:5]), frames[:5] @ true_w + 0.3, atol=1e-4)
    probe.save(tmp_path / "p.json")
    np.testing.assert_allclose(LinearAffectProbe.load(tmp_path / "p.json")(frames[:5]), probe(frames[:5]))


def test_metrics_table_scales_l2_affect_and_leaves_gaps():
    table = metrics_table({"GT": {"Variation": 0.1254}, "SFT": {"L2": 0.3, "L2 Affect": 0.025}})
    assert "| GT |  |" in table and "2.5000" in table and "L2 Affect(10^2)" in table


def test_l2_affect_parts_recombine_into_the_pooled_error():
    rng = np.random.default_rng(0)
    true = [rng.normal(size=n) for n in (90, 61, 30)]
    pred = [0.5 * t + rng.normal(scale=0.3, size=len(t)) + 0.1 for t in true]
    parts = l2_affect_parts(pred, true)
    recombined = (
        parts["bias2"]
        + parts["sd_pred"] ** 2
        + parts["sd_true"] ** 2
        - 2 * parts["corr"] * (parts["sd_pred"] * parts["sd_true"])
    )
    assert parts["pooled"] == pytest.approx(recombined, rel=1e-9)
    assert 0.5 < parts["corr"] < 1.0 and parts["bias2"] > 0
    # Equal-length clips weigh alike both ways: the pooled error is the mean of the per-clip ones.
    same = l2_affect_parts(pred[:1] * 2, true[:1] * 2)["pooled"]
    assert same == pytest.approx(l2_affect(pred[0], true[0]))
    still = l2_affect_parts([np.full(90, 0.2)], true[:1])
    assert still["sd_pred"] == 0 and still["corr"] == 0 and still["best_sd_pred"] == 0
    with pytest.raises(ValueError, match="one ground-truth valence array per prediction"):
        l2_affect_parts(pred, true[:2])
