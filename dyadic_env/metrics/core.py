"""Per-clip metrics, averaged over clips (LM-listener's evaluation protocol).

All functions take ``(T, D)`` float arrays for one clip; :func:`evaluate` takes lists of clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRIC_KEYS = ("L2", "FD", "P-FD", "Variation", "Diversity", "L2 Affect")
# Added to a covariance's diagonal when it is singular (e.g. a frozen dimension), as FID code does.
SINGULAR_EPS = 1e-6
DIVERSITY_SET = 30
DIVERSITY_SET_SHORT = 10
AFFECT_WINDOW = 30


def l2(predicted: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean over frames and dims of the squared error."""
    predicted, ground_truth = _pair(predicted, ground_truth)
    return float(np.mean((predicted - ground_truth) ** 2))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the frames of ``a`` and ``b`` (frames are samples).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, with the trace of the matrix square root taken
    as ``sum(sqrt(eig(S_a^(1/2) S_b S_a^(1/2))))``, which is symmetric and so numerically stable.
    """
    mean_term, covariance_term = frechet_terms(a, b)
    return max(mean_term + covariance_term, 0.0)


def frechet_terms(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The two parts of :func:`frechet_distance`: ``|mu_a - mu_b|^2`` (where the frames sit) and the covariance
    term (how they spread). Per clip, a listener holding the wrong expression level shows in the first."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"frechet_distance: expected (T, D) arrays of equal D, found {a.shape} and {b.shape}"
        )
    cov_a, cov_b = _covariance(a), _covariance(b)
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(cross, 0, None)).sum()
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    return mean_term, float(np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def paired_frechet_distance(predicted: np.ndarray, ground_truth: np.ndarray, speaker: np.ndarray) -> float:
    """FD on speaker and listener frames concatenated (``2D``-dimensional): rewards timing with the speaker."""
    predicted, ground_truth = _pair(predicted, ground_truth)
    speaker = np.asarray(speaker, np.float64)
    if speaker.shape != ground_truth.shape:
        raise ValueError(
            f"speaker must have the listener's shape {ground_truth.shape}, found {speaker.shape}"
        )
    return frechet_distance(
        np.concatenate([speaker, ground_truth], 1), np.concatenate([speaker, predicted], 1)
    )


def variation(frames: np.ndarray) -> float:
    """Mean over dims of each dim's variance over time."""
    return float(np.mean(np.var(np.asarray(frames, np.float64), axis=0)))


def diversity(frames: np.ndarray, rng: np.random.Generator) -> float:
    """Mean Euclidean distance between two random sets of frames drawn without replacement.

    Sets of 30 frames (10 when the clip has 30 frames or fewer), as LM-listener does; the two sets are
    drawn from one permutation so a frame never pairs with itself.
    """
    frames = np.asarray(frames, np.float64)
    size = DIVERSITY_SET if len(frames) > DIVERSITY_SET else DIVERSITY_SET_SHORT
    size = min(size, len(frames) // 2)
    if size == 0:
        return 0.0
    order = rng.permutation(len(frames))
    first, second = frames[order[:size]], frames[order[size : 2 * size]]
    return float(np.mean(np.linalg.norm(first - second, axis=1)))


def l2_affect(predicted_valence: np.ndarray, ground_truth_valence: np.ndarray) -> float:
    """Mean squared difference of valence averaged in windows of 30 frames (stride 30).

    A clip shorter than a window counts as one window. The paper prints this value times 100.
    """
    predicted_valence, ground_truth_valence = (np.asarray(v, np.float64).ravel() for v in
                                               (predicted_valence, ground_truth_valence))  # fmt: skip
    if predicted_valence.shape != ground_truth_valence.shape:
        raise ValueError(
            f"valence arrays differ in length: {predicted_valence.shape} and {ground_truth_valence.shape}"
        )
    return float(np.mean((_window_means(predicted_valence) - _window_means(ground_truth_valence)) ** 2))


def l2_affect_parts(
    predicted_valence: Sequence[np.ndarray], ground_truth_valence: Sequence[np.ndarray]
) -> dict[str, float]:
    """L2 Affect's error pooled over every 30-frame window of every clip pair, and its parts.

    ``pooled = bias2 + sd_pred**2 + sd_true**2 - 2 * corr * sd_pred * sd_true`` exactly (population moments over
    the windows); :func:`l2_affect` averages per clip instead, so the two differ only by how clips of different
    lengths weigh. A row wins by following the recorded valence (``corr``) or by not moving it (``sd_pred``
    near 0); ``best_sd_pred = max(corr, 0) * sd_true`` is the spread that minimises the error at its ``corr``.
    """
    if len(predicted_valence) != len(ground_truth_valence) or not predicted_valence:
        raise ValueError("l2_affect_parts: one ground-truth valence array per prediction, at least one pair")
    pred = np.concatenate([_window_means(np.asarray(v, np.float64).ravel()) for v in predicted_valence])
    true = np.concatenate([_window_means(np.asarray(v, np.float64).ravel()) for v in ground_truth_valence])
    sd_pred, sd_true = float(pred.std()), float(true.std())
    moving = sd_pred > 1e-9 and sd_true > 1e-9  # a constant has no correlation; its cross term is 0
    corr = (
        float(np.mean((pred - pred.mean()) * (true - true.mean())) / (sd_pred * sd_true)) if moving else 0.0
    )
    return {"pooled": float(np.mean((pred - true) ** 2)), "bias2": float((pred.mean() - true.mean()) ** 2),
            "sd_pred": sd_pred, "sd_true": sd_true, "corr": corr, "best_sd_pred": max(corr, 0.0) * sd_true}  # fmt: skip


def evaluate(
    predicted: Sequence[np.ndarray],
    ground_truth: Sequence[np.ndarray],
    speaker: Sequence[np.ndarray],
    *,
    predicted_affect: Sequence[np.ndarray] | None = None,
    ground_truth_affect: Sequence[np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric per clip, averaged over clips.

    Args:
        predicted, ground_truth, speaker: lists of ``(T_i, 56)`` arrays, one per clip.
        predicted_affect, ground_truth_affect: optional lists of ``(T_i,)`` valence arrays; with both,
            ``L2 Affect`` is reported (unscaled; :func:`metrics_table` prints it times 100).
        seed: seeds the frame sampling of Diversity.
    """
    per_clip = evaluate_per_clip(
        predicted, ground_truth, speaker, predicted_affect=predicted_affect,
        ground_truth_affect=ground_truth_affect, seed=seed,
    )  # fmt: skip
    return {key: float(np.mean(values)) for key, values in per_clip.items()}


def evaluate_per_clip(
    predicted: Sequence[np.ndarray],
    ground_truth: Sequence[np.ndarray],
    speaker: Sequence[np.ndarray],
    *,
    predicted_affect: Sequence[np.ndarray] | None = None,
    ground_truth_affect: Sequence[np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The metrics of :func:`evaluate` per clip, as ``(N,)`` arrays (what rank correlations are built on)."""
    if not (len(predicted) == len(ground_truth) == len(speaker)) or len(predicted) == 0:
        raise ValueError(
            "evaluate: predicted, ground_truth and speaker must be non-empty lists of equal length, found "
            f"{len(predicted)}, {len(ground_truth)}, {len(speaker)}"
        )
    rng = np.random.default_rng(seed)
    per_clip: dict[str, list[float]] = {key: [] for key in METRIC_KEYS[:5]}
    for i, (pred, gt, spk) in enumerate(zip(predicted, ground_truth, speaker)):
        try:
            pred, gt = _pair(pred, gt)
        except ValueError as e:
            raise ValueError(f"clip {i}: {e}") from None
        per_clip["L2"].append(l2(pred, gt))
        per_clip["FD"].append(frechet_distance(gt, pred))
        per_clip["P-FD"].append(paired_frechet_distance(pred, gt, spk))
        per_clip["Variation"].append(variation(pred))
        per_clip["Diversity"].append(diversity(pred, rng))
    if (predicted_affect is None) != (ground_truth_affect is None):
        raise ValueError("evaluate: give both predicted_affect and ground_truth_affect, or neither")
    if predicted_affect is not None and ground_truth_affect is not None:
        if len(predicted_affect) != len(predicted) or len(ground_truth_affect) != len(predicted):
            raise ValueError("evaluate: one affect array per clip expected")
        per_clip["L2 Affect"] = [l2_affect(p, g) for p, g in zip(predicted_affect, ground_truth_affect)]
    return {key: np.asarray(values, np.float64) for key, values in per_clip.items()}


def _pair(predicted: np.ndarray, ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted, ground_truth = np.asarray(predicted, np.float64), np.asarray(ground_truth, np.float64)
    if predicted.shape != ground_truth.shape or predicted.ndim != 2:
        raise ValueError(
            f"predicted {predicted.shape} and ground truth {ground_truth.shape} must be equal (T, D)"
        )
    return predicted, ground_truth


def _covariance(frames: np.ndarray) -> np.ndarray:
    if len(frames) < 2:
        cov = np.zeros((frames.shape[1], frames.shape[1]))
    else:
        cov = np.cov(frames, rowvar=False).reshape(frames.shape[1], frames.shape[1])
    if np.linalg.eigvalsh(cov).min() <= 0:
        cov = cov + SINGULAR_EPS * np.eye(len(cov))
    return cov


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _window_means(values: np.ndarray) -> np.ndarray:
    full = len(values) // AFFECT_WINDOW
    if full == 0:
        return values.mean(keepdims=True)
    return values[: full * AFFECT_WINDOW].reshape(full, AFFECT_WINDOW).mean(axis=1)
