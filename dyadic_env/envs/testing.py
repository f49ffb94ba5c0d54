"""A tiny dataset of random-walk clips, for tests of environments and agents that must not depend on the
synthetic generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dyadic_env.data import Clip, Word, write_dataset
from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.tokenizer import ActionTokenizer

WORDS = ("hello", "great", "sad", "really", "no", "yes", "we", "went", "there", "it's")


def random_walk_clip(
    rng: np.random.Generator,
    clip_id: str,
    num_frames: int,
    *,
    fps: float = 25.0,
    feature_dim: int | None = None,
    affect: bool = False,
) -> Clip:
    """A speaker random walk, a listener that follows it with a lag plus noise, and random words."""
    steps = rng.normal(0.0, 0.05, size=(num_frames, FRAME_DIM)).astype(np.float32)
    speaker = np.clip(np.cumsum(steps, axis=0) + 0.2, 0.0, 1.0).astype(np.float32)
    lag = 5
    listener = np.concatenate([np.repeat(speaker[:1], lag, axis=0), speaker[:-lag]])[:num_frames]
    listener = (0.5 * listener + rng.normal(0, 0.02, listener.shape)).astype(np.float32)
    times = np.sort(rng.uniform(0, num_frames / fps, size=max(1, num_frames // 10)))
    words = tuple(
        Word(float(t), float(min(t + 0.2, num_frames / fps)), str(rng.choice(WORDS))) for t in times
    )
    extra: dict[str, np.ndarray] = {}
    if feature_dim:
        extra["speaker_features"] = rng.normal(size=(num_frames, feature_dim)).astype(np.float32)
    if affect:
        extra["speaker_affect"] = np.tanh(speaker[:, :2] - 0.2).astype(np.float32)
        extra["listener_affect"] = np.tanh(listener[:, :2] - 0.1).astype(np.float32)
    return Clip(clip_id=clip_id, fps=fps, speaker_motion=speaker, listener_motion=listener, speaker_words=words,
                speaker_id=f"s{clip_id}", listener_id=f"l{clip_id}", source="random-walk", **extra)  # type: ignore[arg-type]  # fmt: skip


def write_random_walk_dataset(
    out: str | os.PathLike,
    *,
    splits: dict[str, int] | None = None,
    frames: tuple[int, int] = (40, 80),
    fps: float = 25.0,
    feature_dim: int | None = None,
    affect: bool = False,
    expression_basis: str = "flame",
    seed: int = 0,
    with_tokenizer: bool = True,
) -> Path:
    """Write a small dataset (default 6 train, 2 val, 2 test clips of 40-80 frames) and its tokenizer."""
    rng = np.random.default_rng(seed)
    pairs = []
    for split, count in (splits or {"train": 6, "val": 2, "test": 2}).items():
        for i in range(count):
            n = int(rng.integers(frames[0], frames[1] + 1))
            pairs.append(
                (
                    split,
                    random_walk_clip(
                        rng, f"{split}-{i:03d}", n, fps=fps, feature_dim=feature_dim, affect=affect
                    ),
                )
            )
    path = write_dataset(out, pairs, fps=fps, expression_basis=expression_basis, name="random-walk")
    if with_tokenizer:
        train = [clip.listener_motion for split, clip in pairs if split == "train"] or [
            pairs[0][1].listener_motion
        ]
        ActionTokenizer.fit(np.concatenate(train)).save(path)
    return path
