import numpy as np
import pytest

from dyadic_env.tokenizer import ActionTokenizer


@pytest.fixture
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(scale=np.linspace(0.1, 2.0, 56), size=(5000, 56)).astype(np.float32)


def test_fit_clips_at_1_and_99_percentiles(frames):
    tok = ActionTokenizer.fit(frames)
    np.testing.assert_allclose(tok.low, np.quantile(frames.astype(np.float64), 0.01, axis=0))
    np.testing.assert_allclose(tok.high, np.quantile(frames.astype(np.float64), 0.99, axis=0))
    assert tok.num_bins == 256 and tok.dim == 56


def test_hand_computed_bins():
    tok = ActionTokenizer(low=np.array([0.0]), high=np.array([1.0]), num_bins=4)
    # bins [0,.25) [.25,.5) [.5,.75) [.75,1]; outside values clip to the end bins
    np.testing.assert_array_equal(tok.encode(np.array([[-5.0], [0.1], [0.3], [0.74], [1.0], [7.0]])).ravel(),
                                  [0, 0, 1, 2, 3, 3])  # fmt: skip
    np.testing.assert_allclose(
        tok.decode(np.array([[0], [1], [2], [3]])).ravel(), [0.125, 0.375, 0.625, 0.875]
    )


def test_round_trip_error_is_within_half_a_bin_inside_the_range(frames):
    tok = ActionTokenizer.fit(frames)
    inside = np.clip(frames, tok.low, tok.high)
    error = np.abs(tok.decode(tok.encode(inside)) - inside)
    assert (error <= tok.bin_width / 2 + 1e-5).all()
    stats = tok.round_trip_error(frames)
    assert stats["mean"].shape == (56,) and (stats["mean"] <= stats["max"]).all()


def test_vectorized_over_leading_axes(frames):
    tok = ActionTokenizer.fit(frames)
    batch = frames[:24].reshape(2, 3, 4, 56)
    tokens = tok.encode(batch)
    assert tokens.shape == batch.shape and tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens.reshape(-1, 56), tok.encode(frames[:24]))
    assert tok.decode(tokens).shape == batch.shape


def test_save_load_round_trip(tmp_path, frames):
    tok = ActionTokenizer.fit(frames)
    loaded = ActionTokenizer.load(tok.save(tmp_path / "tok.json"))
    np.testing.assert_array_equal(loaded.encode(frames), tok.encode(frames))
    np.testing.assert_array_equal(loaded.bin_centers, tok.bin_centers)


def test_constant_dimension_decodes_to_the_constant():
    frames = np.zeros((100, 3), np.float32)
    frames[:, 0] = np.linspace(-1, 1, 100)
    tok = ActionTokenizer.fit(frames)
    np.testing.assert_allclose(tok.decode(tok.encode(frames))[:, 1:], 0.0, atol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.encode(np.zeros((4, 55))), r"expected shape \(\.\.\., 56\)"),
        (lambda t: t.decode(np.zeros((4, 56), np.int64) + 256), "out of range"),
        (lambda t: t.decode(np.zeros((4, 56), np.int64) - 1), "out of range"),
        (lambda t: t.decode(np.zeros((4, 56), np.float32)), "must be integers"),
        (lambda t: t.encode(np.full((1, 56), np.nan)), "NaN"),
    ],
)
def test_clear_errors(frames, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(ActionTokenizer.fit(frames))


def test_load_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not an action tokenizer"):
        ActionTokenizer.load(tmp_path / "x.json")
