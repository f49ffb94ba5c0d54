"""Appropriate-reaction metrics of the REACT challenge (Multiple Appropriate Facial Reaction Generation).

A model makes K predictions per speaker clip; each clip has a set of appropriate listener reactions
(:mod:`dyadic_env.data.appropriate`). Definitions follow REACT 2023's baseline code; the choices it leaves
open for 56-D FLAME-layout frames of varying length are stated here (docs/metrics.md says why):

- **FRCorr** (↑): per prediction, the best concordance correlation (CCC, averaged over the 56 dims) with
  any reaction of the set. A dim whose prediction or reaction is constant has CCC 0 (REACT's ``nan`` made 0).
  Reactions of another length (recorded listeners of other clips) are compared over the common prefix.
- **FRDist** (↓): per prediction, the smallest DTW distance to any reaction of the set. DTW is dtaidistance's
  ``dtw_ndim`` (square root of the summed squared Euclidean distances along the best path, the same value as
  tslearn's ``dtw``) over the whole 56-value frame, every value weighing alike as in L2 and FD
  (:data:`FRAME_GROUPS`). REACT aligns groups of its features separately and weights them by about one over
  their size; the same here (:data:`REACT_GROUPS`: expression 1/50, neck 1/3, jaw 1/3) weighs a neck value 17
  times an expression value, so a listener's habitual head posture, an offset held all clip long, outweighs
  its reaction and the constant mean frame beats real appropriate listeners. It stays available
  (``dtw_groups=REACT_GROUPS``).
- **FRDiv** (↑ diversity): per clip, the mean squared distance between two different predictions, per frame
  value (REACT's S-MSE: summed squared pairwise distances / (K (K-1) T D)); averaged over clips.
- **FRDvs**: the same between the predictions of two different clips with the same prediction index, over
  their common prefix (REACT's clips all last 750 frames; ours vary); averaged over pairs and indices.
- **FRVar**: variance over time (unbiased, as ``torch.var``), averaged over dims, predictions and clips.
- **FRSyn** (↓): the lag (in frames) of the peak of the time-lagged cross-correlation with the speaker
  (Pearson per dim, averaged over dims; lags within ±2 s), as ``|centre - argmax|``; a prediction that
  correlates at no lag (a constant face) gets the largest lag.

REACT sums FRCorr and FRDist over the K predictions (their range grows with K); :func:`react_metrics`
reports that sum (``FRCorr``, ``FRDist``) and the per-prediction mean (``FRCorr/pred``, ``FRDist/pred``).
Identical predictions (a deterministic agent sampled K times) are scored once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, JAW_POSE, NECK_POSE

REACT_KEYS = ("FRCorr", "FRCorr/pred", "FRDist", "FRDist/pred", "FRDiv", "FRDvs", "FRVar", "FRSyn")
# Per-clip values of these exist (FRDvs compares clips with each other, so it has none).
PER_CLIP_KEYS = ("FRCorr/pred", "FRDist/pred", "FRDiv", "FRVar", "FRSyn")
DtwGroups = tuple[tuple[slice, float], ...]
FRAME_GROUPS: DtwGroups = ((slice(0, FRAME_DIM), 1.0),)
REACT_GROUPS: DtwGroups = ((EXPRESSION, 1 / 50), (NECK_POSE, 1 / 3), (JAW_POSE, 1 / 3))
SYNC_SECONDS = 2.0
CCC_EPS = 1e-8


def ccc(prediction: np.ndarray, reaction: np.ndarray) -> float:
    """Concordance correlation of two ``(T, D)`` tracks, per dim over their common prefix, averaged over dims."""
    return float(_ccc_many(_stack([prediction]), reaction)[0])


def _ccc_many(predictions: np.ndarray, reaction: np.ndarray) -> np.ndarray:
    """CCC of each of ``(U, T, D)`` predictions with one ``(T', D)`` reaction -> ``(U,)``."""
    reaction = np.asarray(reaction, np.float64)
    frames = min(predictions.shape[1], len(reaction))
    p, r = predictions[:, :frames], reaction[:frames]
    mean_p, mean_r = p.mean(axis=1), r.mean(axis=0)
    covariance = np.einsum("utd,td->ud", p - mean_p[:, None], r - mean_r) / frames
    # A constant track has no covariance (rounding in its mean would leave a trace of one).
    constant = (p.max(axis=1) == p.min(axis=1)) | (r.max(axis=0) == r.min(axis=0))
    covariance[constant] = 0.0
    denominator = p.var(axis=1) + r.var(axis=0) + (mean_p - mean_r) ** 2 + CCC_EPS
    return (2 * covariance / denominator).mean(axis=1)


def weighted_dtw(a: np.ndarray, b: np.ndarray, groups: DtwGroups = FRAME_GROUPS) -> float:
    """DTW distance of two ``(T, 56)`` tracks: the weighted sum over ``groups`` of dims, each aligned on its
    own (default: the whole frame as one group)."""
    try:
        from dtaidistance import dtw_ndim
    except ImportError as e:
        raise ImportError(
            f"FRDist needs dtaidistance ({e}); install it with `pip install 'dyadic-listener[metrics]'`"
        ) from None
    total = 0.0
    for group, weight in groups:
        x = np.ascontiguousarray(np.asarray(a, np.float64)[:, group])
        y = np.ascontiguousarray(np.asarray(b, np.float64)[:, group])
        total += weight * float(dtw_ndim.distance_fast(x, y))
    return total


def fr_corr(predictions: Sequence[np.ndarray], appropriate: Sequence[np.ndarray]) -> np.ndarray:
    """``(K,)``: each prediction's best CCC over the appropriate set."""
    unique, where = _unique(predictions)
    best = np.max([_ccc_many(unique, reaction) for reaction in _nonempty(appropriate)], axis=0)
    return best[where]


def fr_dist(
    predictions: Sequence[np.ndarray], appropriate: Sequence[np.ndarray], groups: DtwGroups = FRAME_GROUPS
) -> np.ndarray:
    """``(K,)``: each prediction's smallest DTW distance (:func:`weighted_dtw`) over the appropriate set."""
    unique, where = _unique(predictions)
    reactions = _nonempty(appropriate)
    best = np.array([min(weighted_dtw(p, r, groups) for r in reactions) for p in unique])
    return best[where]


def fr_div(predictions: Sequence[np.ndarray]) -> float:
    """Mean squared distance per frame value between two different predictions of one clip (0 for K = 1)."""
    stacked = _stack(predictions)
    k = len(stacked)
    if k < 2:
        return 0.0
    flat = stacked.reshape(k, -1)
    # Differences, not the Gram trick: repeated predictions must give exactly 0.
    total = sum(float(np.sum((flat[i] - flat[i + 1 :]) ** 2)) for i in range(k - 1))
    return 2 * total / (k * (k - 1) * flat.shape[1])


def fr_dvs(predictions_per_clip: Sequence[Sequence[np.ndarray]]) -> float:
    """Mean squared distance per frame value between predictions of two different clips (same index)."""
    return float(_dvs_matrix(predictions_per_clip)[~np.eye(len(predictions_per_clip), dtype=bool)].mean())


def _dvs_matrix(predictions_per_clip: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """``(N, N)``: per clip pair, the mean over prediction indices of the per-value squared distance."""
    n = len(predictions_per_clip)
    if n < 2:
        raise ValueError(f"FRDvs compares clips with each other: expected at least 2 clips, found {n}")
    k = min(len(p) for p in predictions_per_clip)
    stacks = [_stack(p)[:k] for p in predictions_per_clip]
    matrix = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            frames = min(stacks[i].shape[1], stacks[j].shape[1])
            matrix[i, j] = matrix[j, i] = np.mean((stacks[i][:, :frames] - stacks[j][:, :frames]) ** 2)
    return matrix


def fr_var(predictions: Sequence[np.ndarray]) -> float:
    """Variance over time (unbiased), averaged over dims and predictions."""
    stacked = _stack(predictions)
    return float(stacked.var(axis=1, ddof=1).mean()) if stacked.shape[1] > 1 else 0.0


def fr_syn(prediction: np.ndarray, speaker: np.ndarray, fps: float) -> float:
    """``|centre - argmax|`` in frames of the lagged cross-correlation with the speaker (lags within ±2 s)."""
    prediction, speaker = np.asarray(prediction, np.float64), np.asarray(speaker, np.float64)
    frames = min(len(prediction), len(speaker))
    max_lag = max(0, min(int(SYNC_SECONDS * fps) - 1, frames - 2))
    lags = np.arange(-max_lag, max_lag + 1)
    values = np.array([_lagged_correlation(prediction[:frames], speaker[:frames], int(lag)) for lag in lags])
    if not np.any(values > 0) and not np.any(values < 0):
        return float(max_lag)
    return float(abs(max_lag - int(np.argmax(values))))


def _lagged_correlation(x: np.ndarray, y: np.ndarray, lag: int) -> float:
    """Pearson correlation of x shifted by ``lag`` against y, per dim (0 where constant), averaged."""
    if lag > 0:
        x, y = x[lag:], y[:-lag]
    elif lag < 0:
        x, y = x[:lag], y[-lag:]
    varies = (x.max(axis=0) > x.min(axis=0)) & (y.max(axis=0) > y.min(axis=0))
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    norm = np.sqrt((x**2).sum(axis=0) * (y**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(varies & (norm > 0), (x * y).sum(axis=0) / norm, 0.0)
    return float(r.mean())


def react_per_clip(
    predictions_per_clip: Sequence[Sequence[np.ndarray]],
    appropriate_sets: Sequence[Sequence[np.ndarray]],
    speakers: Sequence[np.ndarray],
    *,
    fps: float = 25.0,
    dtw_groups: DtwGroups = FRAME_GROUPS,
) -> dict[str, np.ndarray]:
    """Per clip: ``FRCorr/pred``, ``FRDist/pred`` (NaN where the clip has no set), ``FRDiv``, ``FRVar``,
    ``FRSyn`` (mean over the clip's predictions), and the ``(N, N)`` FRDvs matrix under ``"dvs_matrix"``."""
    _check_inputs(predictions_per_clip, appropriate_sets, speakers)
    out: dict[str, list[float]] = {key: [] for key in PER_CLIP_KEYS}
    for predictions, reactions, speaker in zip(predictions_per_clip, appropriate_sets, speakers):
        has_set = len(_nonempty(reactions, strict=False)) > 0
        out["FRCorr/pred"].append(float(fr_corr(predictions, reactions).mean()) if has_set else np.nan)
        out["FRDist/pred"].append(
            float(fr_dist(predictions, reactions, dtw_groups).mean()) if has_set else np.nan
        )
        out["FRDiv"].append(fr_div(predictions))
        out["FRVar"].append(fr_var(predictions))
        unique, where = _unique(predictions)
        out["FRSyn"].append(float(np.mean(np.array([fr_syn(p, speaker, fps) for p in unique])[where])))
    result = {key: np.asarray(values) for key, values in out.items()}
    if len(predictions_per_clip) > 1:
        result["dvs_matrix"] = _dvs_matrix(predictions_per_clip)
    return result


def react_metrics(
    predictions_per_clip: Sequence[Sequence[np.ndarray]],
    appropriate_sets: Sequence[Sequence[np.ndarray]],
    speakers: Sequence[np.ndarray],
    *,
    fps: float = 25.0,
    dtw_groups: DtwGroups = FRAME_GROUPS,
) -> dict[str, float]:
    """REACT's metrics over clips: ``FRCorr``/``FRDist`` (summed over the K predictions, REACT's figure) and
    their per-prediction means, ``FRDiv``, ``FRDvs`` (needs 2 clips), ``FRVar``, ``FRSyn``.

    Args:
        predictions_per_clip: per clip, K ``(T_i, 56)`` predictions (the same K for every clip).
        appropriate_sets: per clip, its appropriate reactions (``(T, 56)``; an empty set leaves the clip out of
            FRCorr and FRDist, whose averages say over how many clips in ``clips_with_set``).
        speakers: per clip, the speaker's ``(T_i, 56)`` motion (for FRSyn).
        fps: frames per second (FRSyn's ±2 s lag window).
        dtw_groups: how FRDist groups and weighs the dims (:data:`FRAME_GROUPS` or :data:`REACT_GROUPS`).
    """
    per_clip = react_per_clip(
        predictions_per_clip, appropriate_sets, speakers, fps=fps, dtw_groups=dtw_groups
    )
    return summarize(per_clip, len(predictions_per_clip[0]))


def summarize(
    per_clip: Mapping[str, np.ndarray], samples: int, rows: np.ndarray | None = None
) -> dict[str, float]:
    """The REACT row from :func:`react_per_clip`'s values (``rows``: a subset or resample of the clips)."""
    rows = np.arange(len(per_clip["FRDiv"])) if rows is None else np.asarray(rows)
    with_set = rows[np.isfinite(per_clip["FRCorr/pred"][rows])]
    result: dict[str, float] = {}
    if len(with_set):
        for key in ("FRCorr", "FRDist"):
            result[f"{key}/pred"] = float(per_clip[f"{key}/pred"][with_set].mean())
            result[key] = samples * result[f"{key}/pred"]
    for key in ("FRDiv", "FRVar", "FRSyn"):
        result[key] = float(per_clip[key][rows].mean())
    if "dvs_matrix" in per_clip:
        matrix = per_clip["dvs_matrix"][np.ix_(rows, rows)]
        different = rows[:, None] != rows[None, :]
        if different.any():
            result["FRDvs"] = float(matrix[different].mean())
    result["clips_with_set"] = float(len(with_set))
    return {key: result[key] for key in (*REACT_KEYS, "clips_with_set") if key in result}


def _check_inputs(
    predictions_per_clip: Sequence[Sequence[np.ndarray]],
    appropriate_sets: Sequence[Sequence[np.ndarray]],
    speakers: Sequence[np.ndarray],
) -> None:
    n = len(predictions_per_clip)
    if n == 0 or len(appropriate_sets) != n or len(speakers) != n:
        raise ValueError(
            "react_metrics: predictions_per_clip, appropriate_sets and speakers must be non-empty lists of equal "
            f"length, found {n}, {len(appropriate_sets)}, {len(speakers)}"
        )
    counts = {len(p) for p in predictions_per_clip}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(
            f"react_metrics: expected the same number K >= 1 of predictions per clip, found {sorted(counts)}"
        )
    for i, (predictions, speaker) in enumerate(zip(predictions_per_clip, speakers)):
        for k, prediction in enumerate(predictions):
            shape = np.shape(prediction)
            if shape != np.shape(speaker) or len(shape) != 2 or shape[1] != FRAME_DIM:
                raise ValueError(
                    f"react_metrics: clip {i} prediction {k}: expected the speaker's shape {np.shape(speaker)} "
                    f"(T, {FRAME_DIM}), found {shape}"
                )


def _stack(predictions: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray(p, np.float64) for p in predictions])


def _unique(predictions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct predictions ``(U, T, D)`` and, per prediction, the index of its copy among them."""
    seen: dict[bytes, int] = {}
    where = [seen.setdefault(np.asarray(p, np.float64).tobytes(), len(seen)) for p in predictions]
    first = {index: k for k, index in reversed(list(enumerate(where)))}
    return _stack([predictions[first[u]] for u in range(len(seen))]), np.asarray(where)


def _nonempty(reactions: Sequence[np.ndarray], strict: bool = True) -> list[np.ndarray]:
    out = [np.asarray(r, np.float64) for r in reactions if len(r) > 0]
    if strict and not out:
        raise ValueError(
            "an appropriate set is empty: FRCorr and FRDist need at least one appropriate reaction"
        )
    return out
