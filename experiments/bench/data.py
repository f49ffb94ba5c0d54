"""`dyadic bench data`: opening a 100,000-clip dataset against reading clips and loading arrays eagerly."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from experiments.bench import benchmark

FRAMES_PER_CLIP = 16


def _clips(count: int, seed: int) -> Iterator[tuple[str, Any]]:
    from dyadic_env.data import Clip, Word

    rng = np.random.default_rng(seed)
    block = rng.normal(size=(2, 4096, 56)).astype(np.float32)
    for i in range(count):
        start = (i * FRAMES_PER_CLIP) % (4096 - FRAMES_PER_CLIP)
        frames = block[:, start : start + FRAMES_PER_CLIP]
        words = (Word(0.0, 0.2, "hello"), Word(0.2, 0.5, "there"))
        yield ("test" if i % 10 == 0 else "train"), Clip(f"c{i:06d}", 25.0, frames[0], frames[1], words)


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere, where the RSS figures are skipped)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _rss_delta_mb(fn: Callable[[], object]) -> tuple[float, object]:
    before = _rss_bytes()
    kept = fn()  # keep the result alive while measuring
    return (_rss_bytes() - before) / 2**20, kept


@benchmark("data", help="open time and memory of a 100k-clip dataset vs reading a clip and eager loading")
def bench_data(quick: bool = False) -> dict[str, Any]:
    from dyadic_env.data import load_dataset, validate_dataset, write_dataset

    clips = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="dyadic-bench-data-") as tmp:
        start = time.perf_counter()
        big = write_dataset(Path(tmp) / "big", _clips(clips, 0), fps=25.0, expression_basis="flame")
        write_s = time.perf_counter() - start
        small = write_dataset(Path(tmp) / "small", _clips(100, 1), fps=25.0, expression_basis="flame")

        open_s = _median_seconds(lambda: load_dataset(big), 7)
        open_small_s = _median_seconds(lambda: load_dataset(small), 7)
        dataset = load_dataset(big)
        rng = np.random.default_rng(0)
        rows = rng.integers(0, len(dataset), 200)
        row_iter = iter(rows)

        def read_one_clip() -> None:
            clip = dataset.clip_at(int(next(row_iter)))
            np.array(clip.speaker_motion), np.array(clip.listener_motion)

        read_clip_s = _median_seconds(read_one_clip, len(rows))

        def eager() -> dict[str, np.ndarray]:
            return {name: np.load(big / f"{name}.npy") for name in ("speaker_motion", "listener_motion")}

        eager_s = _median_seconds(eager, 3)
        open_rss_mb, _ = _rss_delta_mb(lambda: load_dataset(big))
        eager_rss_mb, _ = _rss_delta_mb(eager)
        start = time.perf_counter()
        problems = validate_dataset(big)
        validate_s = time.perf_counter() - start
        array_mb = (
            sum(os.path.getsize(big / f"{n}.npy") for n in ("speaker_motion", "listener_motion")) / 2**20
        )
    return {
        "clips": clips, "frames_per_clip": FRAMES_PER_CLIP, "array_mb": round(array_mb, 1),
        "write_s": round(write_s, 2), "open_ms": round(open_s * 1e3, 3),
        "open_100_clips_ms": round(open_small_s * 1e3, 3), "open_vs_100_clips_ratio": round(open_s / open_small_s, 2),
        "read_one_clip_ms": round(read_clip_s * 1e3, 3), "open_vs_read_one_clip_ratio": round(open_s / read_clip_s, 2),
        "eager_load_ms": round(eager_s * 1e3, 1), "open_vs_eager_ratio": round(open_s / eager_s, 4),
        "open_rss_delta_mb": round(open_rss_mb, 2), "eager_rss_delta_mb": round(eager_rss_mb, 1),
        "validate_s": round(validate_s, 2), "validate_problems": len(problems),
    }  # fmt: skip
