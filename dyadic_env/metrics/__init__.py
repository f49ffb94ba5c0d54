"""Evaluation metrics of LM-listener, as the paper's Tables I and II report them.

See :func:`evaluate`; affect estimators in :mod:`dyadic_env.metrics.affect`.
"""

from dyadic_env.metrics.affect import LinearAffectProbe
from dyadic_env.metrics.core import (
    METRIC_KEYS,
    diversity,
    evaluate,
    frechet_distance,
    frechet_terms,
    l2,
    l2_affect,
    paired_frechet_distance,
    variation,
)
from dyadic_env.metrics.table import metrics_table

__all__ = [
    "METRIC_KEYS", "LinearAffectProbe", "diversity", "evaluate", "frechet_distance", "frechet_terms", "l2",
    "l2_affect", "metrics_table", "paired_frechet_distance", "variation",
]  # fmt: skip
