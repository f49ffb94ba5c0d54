"""Krippendorff's alpha (the krippendorff package, our bootstrap on top) against hand-computed and
published values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from human_feedback.agreement import (
    alpha_bootstrap,
    krippendorff_alpha,
    reliability_matrix_to_units,
    value_counts,
)


def test_hand_computed_two_raters_three_units():
    # Units (rater 1, rater 2): (1, 1), (2, 3), (3, 3).
    # Coincidences (each unit has m_u = 2, so each ordered pair counts 1/(m_u - 1) = 1):
    #   o[1,1] = 2, o[2,3] = o[3,2] = 1, o[3,3] = 2      -> marginals n_1 = 2, n_2 = 1, n_3 = 3, n = 6
    # Interval: observed sum o*d2 = 1*1 + 1*1 = 2
    #   expected sum n_c n_k d2 over ordered pairs = 2*(2*1*1 + 2*3*4 + 1*3*1) = 2*(2 + 24 + 3) = 58
    #   alpha = 1 - (n - 1) * 2 / 58 = 1 - 10/58 = 0.827586...
    # Nominal: observed 2, expected 2*(2*1 + 2*3 + 1*3) = 22; alpha = 1 - 5*2/22 = 0.545454...
    # Ordinal: d(1,2) = (2 + 1 - 3/2)^2 = 2.25, d(2,3) = (1 + 3 - 2)^2 = 4, d(1,3) = (2 + 1 + 3 - 5/2)^2 = 12.25
    #   observed = 2*4 = 8; expected = 2*(2*1*2.25 + 2*3*12.25 + 1*3*4) = 2*(4.5 + 73.5 + 12) = 180
    #   alpha = 1 - 5*8/180 = 0.777...
    units = [[1, 1], [2, 3], [3, 3]]
    assert krippendorff_alpha(units, "interval") == pytest.approx(1 - 10 / 58)
    assert krippendorff_alpha(units, "nominal") == pytest.approx(1 - 10 / 22)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(1 - 40 / 180)
    counts, domain = value_counts(units)
    np.testing.assert_allclose(counts, [[2, 0, 0], [0, 1, 1], [0, 0, 2]])
    np.testing.assert_allclose(domain, [1, 2, 3])


def test_krippendorff_2011_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 raters x 12 units with gaps.
    n = None
    matrix = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    units = reliability_matrix_to_units(matrix)
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha(units, "ratio") == pytest.approx(0.797, abs=5e-4)


def test_perfect_agreement_is_one_and_systematic_disagreement_is_negative():
    assert krippendorff_alpha([[1, 1], [3, 3], [5, 5, 5]], "ordinal") == pytest.approx(1.0)
    assert krippendorff_alpha([[1, 5], [5, 1], [1, 5]], "interval") < 0


def test_undefined_cases_are_nan():
    assert math.isnan(krippendorff_alpha([[3], [4]]))  # no unit with two ratings
    assert math.isnan(krippendorff_alpha([[4, 4], [4, 4]]))  # no variation at all
    assert math.isnan(krippendorff_alpha([]))
    assert math.isnan(alpha_bootstrap([[2], [2]])[0])


def test_missing_values_are_ignored():
    with_gaps = [[1, None, 1], [2, 3, float("nan")], [3, 3]]
    assert krippendorff_alpha(with_gaps, "interval") == pytest.approx(
        krippendorff_alpha([[1, 1], [2, 3], [3, 3]])
    )


def test_bootstrap_interval_is_seeded_and_brackets_alpha():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 6, size=60)
    units = [list(np.clip(t + rng.integers(-1, 2, size=3), 1, 5)) for t in truth]
    alpha, low, high = alpha_bootstrap(units, "ordinal", num_samples=300, seed=3)
    assert low < alpha < high
    assert alpha_bootstrap(units, "ordinal", num_samples=300, seed=3) == (alpha, low, high)
    assert alpha == pytest.approx(krippendorff_alpha(units, "ordinal"))


def test_ordinal_alpha_depends_on_order_not_spacing():
    units = [[1, 1], [2, 3], [3, 3], [1, 2]]
    stretched = [[{1: 1, 2: 10, 3: 100}[v] for v in unit] for unit in units]
    assert krippendorff_alpha(stretched, "ordinal") == pytest.approx(krippendorff_alpha(units, "ordinal"))
    assert krippendorff_alpha(stretched, "interval") != pytest.approx(krippendorff_alpha(units, "interval"))


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha([[1, 2]], "cardinal")  # type: ignore[arg-type]
