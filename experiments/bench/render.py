"""`dyadic bench render`: face mesh evaluations/s, rendered frames/s and video rendering speed."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.bench import Figures, benchmark


def _motion(num_frames: int, seed: int = 0) -> np.ndarray:
    """Smooth, talking-like motion in the ict-arkit basis (values in the ranges the synthetic data uses)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None]
    frames = np.zeros((num_frames, 56), np.float32)
    phases = rng.uniform(0, 2 * np.pi, (1, 56))
    rates = rng.uniform(0.02, 0.15, (1, 56))
    wave = np.sin(rates * t + phases)
    frames[:, :50] = np.clip(0.3 + 0.3 * wave[:, :50], 0.0, 1.0)
    frames[:, 50:53] = 0.08 * wave[:, 50:53]
    frames[:, 53] = 0.12 + 0.12 * wave[:, 53]
    return frames


def _rate(fn, count: int, repeats: int = 2) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


@benchmark("render", help="face mesh evaluations/s, rendered frames/s, video render time vs clip duration")
def bench_render(quick: bool = False) -> Figures:
    import torch

    from dyadic_env.face.model import load_face_model
    from dyadic_env.render import Renderer, render_video

    fps = 25.0
    n_eval, n_render, video_s = (32, 8, 2.0) if quick else (256, 50, 10.0)
    model = load_face_model("ict-arkit")
    motion = _motion(max(n_eval, int(video_s * fps)))
    figures: Figures = {
        "mesh_vertices": model.num_vertices,
        "mesh_triangles": len(model.faces),
        "torch_threads": torch.get_num_threads(),
    }
    for batch in (1, 64):
        model.batch_size = batch
        model.vertices(motion[: min(batch, 8)])  # warm-up
        count = min(n_eval, 32) if batch == 1 else n_eval
        figures[f"mesh_evals_per_s_batch{batch}"] = _rate(lambda c=count: model.vertices(motion[:c]), count)
    model.batch_size = 64
    for size in (256, 512):
        with Renderer(size, size) as renderer:
            renderer.render_faces(motion[:2])  # warm-up: GL context, shaders, the model
            figures[f"faces_per_s_{size}"] = _rate(
                lambda r=renderer: r.render_faces(motion[:n_render]), n_render
            )
    num = int(video_s * fps)
    captions = [f"word {i // 10}" for i in range(num)]
    with tempfile.TemporaryDirectory() as tmp, Renderer(256, 256) as renderer:
        renderer.render_faces(motion[:2])
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        render_video(
            Path(tmp) / "pair.mp4", motion[:num], motion[::-1][:num], fps, captions, renderer=renderer
        )
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    figures["video_256_seconds"] = video_s
    figures["video_256_render_s"] = elapsed
    # Below 1 means a speaker|listener video renders faster than it plays.
    figures["video_256_time_over_duration"] = elapsed / video_s
    figures["video_256_pair_frames_per_s"] = num / elapsed
    # CPU seconds of this process (all its threads) per second of video: what the machine must supply,
    # whatever else runs on it; the load average says how busy it was (other processes slow wall time).
    figures["video_256_cpu_s_per_video_s"] = cpu / video_s
    figures["load_average_1m_before"] = load
    figures["cpu_count"] = os.cpu_count()
    return figures
