"""A 100,000-clip dataset opens without reading its arrays: the promise of the on-disk format."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import Clip, load_dataset, write_dataset

NUM_CLIPS = 100_000
FRAMES = 2


def _tiny_clips(count: int, rng: np.random.Generator):
    # Views into one shared array keep building 100k clips cheap; the writer copies them out.
    motion = rng.normal(size=(count * FRAMES, 56)).astype(np.float32)
    for i in range(count):
        frames = motion[i * FRAMES : (i + 1) * FRAMES]
        yield ("test" if i % 10 == 0 else "train"), Clip(f"c{i:06d}", 25.0, frames, frames)


def _best_open_time(path: Path, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        load_dataset(path)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    big = write_dataset(root / "big", _tiny_clips(NUM_CLIPS, rng), fps=25.0, expression_basis="flame")
    small = write_dataset(root / "small", _tiny_clips(100, rng), fps=25.0, expression_basis="flame")
    return big, small


@pytest.mark.slow
def test_open_time_does_not_grow_with_the_number_of_clips(datasets):
    big, small = datasets
    # Baseline measured in the same run: opening a 100-clip dataset. 1000x more clips must not cost
    # more than a few times as much (a parsed index would cost about 1000x).
    assert _best_open_time(big) < 5 * _best_open_time(small) + 0.005


@pytest.mark.slow
def test_opening_reads_no_array_into_memory(datasets):
    big, _ = datasets
    array_bytes = 2 * NUM_CLIPS * FRAMES * 56 * 4
    tracemalloc.start()
    dataset = load_dataset(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 256 * 1024 < array_bytes / 100
    assert all(isinstance(array, np.memmap) for array in dataset.arrays.values())
    assert isinstance(dataset.index, np.memmap) and isinstance(dataset.clip_id_array, np.memmap)
    assert len(dataset) == NUM_CLIPS and len(dataset.split("test")) == NUM_CLIPS // 10


@pytest.mark.slow
def test_any_clip_of_a_large_dataset_reads_back(datasets):
    big, _ = datasets
    dataset = load_dataset(big)
    clip = dataset.clip("c099999")
    assert isinstance(clip.listener_motion, np.memmap) and clip.num_frames == FRAMES
    np.testing.assert_array_equal(clip.listener_motion, dataset.arrays["listener_motion"][-FRAMES:])
    assert dataset.split("train")[0].clip_id == "c000001"
