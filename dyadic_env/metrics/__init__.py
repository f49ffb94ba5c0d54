"""Evaluation metrics: LM-listener's, as the paper's Tables I and II report them, and REACT's.

See :func:`evaluate` (one prediction per clip, against its recorded listener) and :func:`react_metrics`
(K predictions per clip, against its set of appropriate reactions); affect estimators in
:mod:`dyadic_env.metrics.affect`; which metric tracks preference in :mod:`dyadic_env.metrics.validity`.
"""

from dyadic_env.metrics.affect import LinearAffectProbe
from dyadic_env.metrics.core import (
    METRIC_KEYS,
    diversity,
    evaluate,
    evaluate_per_clip,
    frechet_distance,
    frechet_terms,
    l2,
    l2_affect,
    l2_affect_parts,
    paired_frechet_distance,
    variation,
)
from dyadic_env.metrics.react import (
    REACT_KEYS,
    ccc,
    fr_corr,
    fr_dist,
    fr_div,
    fr_dvs,
    fr_syn,
    fr_var,
    react_metrics,
    react_per_clip,
    weighted_dtw,
)
from dyadic_env.metrics.table import metrics_table, react_table

__all__ = [
    "METRIC_KEYS", "REACT_KEYS", "LinearAffectProbe", "ccc", "diversity", "evaluate", "evaluate_per_clip",
    "fr_corr", "fr_dist", "fr_div", "fr_dvs", "fr_syn", "fr_var", "frechet_distance", "frechet_terms", "l2",
    "l2_affect", "l2_affect_parts", "metrics_table", "paired_frechet_distance", "react_metrics", "react_per_clip",
    "react_table", "variation", "weighted_dtw",
]  # fmt: skip
