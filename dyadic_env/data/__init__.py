"""Clips, datasets, the on-disk format, validation and importers of published formats."""

from dyadic_env.data.clip import Clip, Word
from dyadic_env.data.errors import DataValidationError
from dyadic_env.data.splits import assign_splits
from dyadic_env.data.storage import ClipSequence, DyadicDataset, load_dataset
from dyadic_env.data.validation import clip_problems, validate_clip, validate_dataset
from dyadic_env.data.writer import add_appropriate_sets, write_dataset

__all__ = [
    "Clip", "ClipSequence", "DataValidationError", "DyadicDataset", "Word", "add_appropriate_sets", "assign_splits",
    "clip_problems", "load_dataset", "validate_clip", "validate_dataset", "write_dataset",
]  # fmt: skip
