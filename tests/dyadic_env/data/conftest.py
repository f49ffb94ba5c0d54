"""Small clips and datasets for the data-layer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import Clip, Word, write_dataset


def make_clip(
    rng: np.random.Generator,
    clip_id: str,
    frames: int = 20,
    *,
    fps: float = 25.0,
    words: tuple[Word, ...] | None = None,
    features: int | None = None,
    affect: bool = False,
    meta: dict | None = None,
) -> Clip:
    """A clip of random motion with two words, optional features and affect."""
    motion = rng.normal(size=(2, frames, 56)).astype(np.float32)
    duration = frames / fps
    extra = {}
    if features:
        extra["speaker_features"] = rng.normal(size=(frames, features)).astype(np.float32)
    if affect:
        extra["speaker_affect"] = rng.uniform(-1, 1, (frames, 2)).astype(np.float32)
        extra["listener_affect"] = rng.uniform(-1, 1, (frames, 2)).astype(np.float32)
    if words is None:
        words = (Word(0.0, 0.1, "hello"), Word(0.1, round(min(0.2, duration), 4), "there"))
    return Clip(
        clip_id=clip_id, fps=fps, speaker_motion=motion[0], listener_motion=motion[1], speaker_words=words,
        speaker_id=f"spk-{clip_id}", listener_id=f"lis-{clip_id}", source="test", meta=meta or {}, **extra,
    )  # fmt: skip


@pytest.fixture
def clip_factory() -> Callable[..., Clip]:
    rng = np.random.default_rng(0)
    return lambda clip_id, frames=20, **kw: make_clip(rng, clip_id, frames, **kw)


@pytest.fixture
def small_dataset(tmp_path: Path, clip_factory) -> Path:
    """Six train, two val and two test clips of 12 to 30 frames, with words."""
    pairs = [
        (split, clip_factory(f"{split}-{i}", 12 + 2 * i))
        for split, count in (("train", 6), ("val", 2), ("test", 2))
        for i in range(count)
    ]
    return write_dataset(tmp_path / "small", pairs, fps=25.0, expression_basis="flame", name="small")
