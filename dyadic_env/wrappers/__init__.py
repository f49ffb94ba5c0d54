"""Small wrappers of the listener environment: continuous actions, numeric words, episode metrics."""

from dyadic_env.wrappers.actions import ContinuousActions
from dyadic_env.wrappers.metrics import EpisodeMetrics
from dyadic_env.wrappers.words import (
    BagOfWords,
    SentenceEmbedding,
    WordIds,
    WordsToTokenIds,
    build_vocabulary,
)

__all__ = [
    "BagOfWords",
    "ContinuousActions",
    "EpisodeMetrics",
    "SentenceEmbedding",
    "WordIds",
    "WordsToTokenIds",
    "build_vocabulary",
]
