"""Small wrappers of the listener environment: continuous actions, numeric words, episode metrics."""

from dyadic_env.wrappers.actions import ContinuousActions
from dyadic_env.wrappers.metrics import EpisodeMetrics
from dyadic_env.wrappers.words import SentenceEmbedding, WordsToTokenIds, build_vocabulary

__all__ = ["ContinuousActions", "EpisodeMetrics", "SentenceEmbedding", "WordsToTokenIds", "build_vocabulary"]
