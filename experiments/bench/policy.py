"""`dyadic bench policy`: closed-loop latency of the default VLA and its SFT training throughput.

Latency is the time of ``VLAAgent.act`` per frame at batch 1 while stepping ``dyadic_env/Listener-v0`` on
synthetic clips, for parallel and autoregressive decoding, with the key-value cache carried across frames and
without it (the K-frame observation window recomputed every frame), and for the ``sft_small`` model with its
nod gestures (cache only: a gesture model has no windowed policy). The model is the default architecture
(the ``sft_small`` config) with random weights: latency does not depend on the weights.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from experiments.bench import Figures, benchmark

SFT_CONFIG = "sft_small.yaml"  # a shipped config (experiments/configs/)


def sft_small_model(decoding: str, dataset: Any, gestures: bool = False) -> Any:
    """The ``sft_small`` architecture with random weights (timings do not depend on the weights)."""
    from agents.vla.factory import model_for_dataset
    from experiments.configs import read_config

    fields = read_config(SFT_CONFIG)
    keys = ("backbone", "head_hidden", "projector_hidden") + (("gesture_frames",) if gestures else ())
    return model_for_dataset(dataset, decoding=decoding, **{k: fields[k] for k in keys if k in fields}).eval()


def _latency(model: Any, dataset: Any, *, use_cache: bool, frames: int) -> dict[str, float]:
    import gymnasium as gym

    import dyadic_env  # noqa: F401  (registers the env)
    from agents.vla import VLAAgent

    env = gym.make("dyadic_env/Listener-v0", dataset=dataset, split="test")
    agent = VLAAgent(model, seed=0, use_cache=use_cache)
    times: list[float] = []
    episode = 0
    while len(times) < frames:
        observation, _ = env.reset(
            seed=episode,
            options={"clip_index": episode % len(env.unwrapped.clip_ids)},  # type: ignore[attr-defined]
        )
        agent.reset(seed=episode)
        done = False
        while not done and len(times) < frames:
            start = time.perf_counter()
            tokens = agent.act(observation)
            times.append(time.perf_counter() - start)
            observation, _, terminated, truncated, _ = env.step(tokens)
            done = terminated or truncated
        episode += 1
    env.close()
    ms = np.array(times[min(5, len(times) // 10) :]) * 1e3  # the first steps warm up allocators
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "fps": float(1e3 / ms.mean())}  # fmt: skip


def _training_fps(steps: int) -> tuple[float, int]:
    import torch

    from agents.vla.sft import ClipBatcher, SFTConfig, build_sft_model, training_loss
    from dyadic_env.data import load_dataset
    from experiments.configs import read_config

    fields = read_config(SFT_CONFIG)
    config = SFTConfig.from_dict({**fields, "output_dir": "/tmp/unused"})
    dataset = load_dataset(config.dataset)
    model = build_sft_model(config, dataset, None).train()
    batcher = ClipBatcher(dataset.split(config.train_split), model.processor, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    frames, elapsed = 0, 0.0
    for step in range(steps + 1):
        batch = batcher.batch(step)
        start = time.perf_counter()
        loss = training_loss(model, model, batch, config, step)[0]
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        if step:  # step 0 warms up
            elapsed += time.perf_counter() - start
            frames += int(batch["frame_mask"].sum())
    return frames / elapsed, sum(p.numel() for p in model.parameters())


def _batched_sampling(dataset: Any, *, rows: int) -> dict[str, float]:
    """Frames/s of batched closed-loop sampling (candidate collection and evaluation rollouts) with the
    ``sft_small`` gesture model, for each way of drawing tokens (:data:`agents.vla.decoding.DRAWS`)."""
    from agents.alignment.sampling import sample_trajectories
    from agents.vla.decoding import DRAWS

    model = sft_small_model("parallel", dataset, gestures=True)
    clips = list(dataset.split("test"))
    samples = max(1, rows // len(clips))
    figures: dict[str, float] = {"batched_rows": samples * len(clips)}
    for draw in DRAWS:
        sample_trajectories(model, clips[:1], 2, temperature=0.7, draw=draw)  # warm-up
        start = time.perf_counter()
        out = sample_trajectories(model, clips, samples, temperature=0.7, draw=draw, batch_size=rows)
        seconds = time.perf_counter() - start
        frames = sum(len(t) for per_clip in out for t in per_clip)
        figures[f"batched_{draw.replace('-', '_')}_frames_per_s"] = round(frames / seconds, 1)
    figures["inverse_cdf_over_multinomial"] = round(
        figures["batched_inverse_cdf_frames_per_s"] / figures["batched_multinomial_frames_per_s"], 2
    )
    return figures


@benchmark(
    "policy", help="VLA closed-loop latency (cache/no cache, parallel/autoregressive) and SFT frames/s"
)
def bench_policy(quick: bool = False) -> Figures:
    import torch

    from dyadic_env.data import load_dataset

    dataset = load_dataset("synthetic:tiny")
    figures: Figures = {"torch_threads": torch.get_num_threads()}
    for decoding, frames in (("parallel", 60 if quick else 400), ("autoregressive", 8 if quick else 40)):
        model = sft_small_model(decoding, dataset)
        for use_cache in (True, False):
            name = f"{decoding}_{'cache' if use_cache else 'window'}"
            for key, value in _latency(model, dataset, use_cache=use_cache, frames=frames).items():
                figures[f"{name}_{key}"] = round(value, 3)
    figures["parallel_over_autoregressive_fps"] = round(
        figures["parallel_cache_fps"] / figures["autoregressive_cache_fps"], 1
    )
    figures["cache_over_window_fps"] = round(
        figures["parallel_cache_fps"] / figures["parallel_window_fps"], 2
    )
    gestures = _latency(
        sft_small_model("parallel", dataset, gestures=True),
        dataset,
        use_cache=True,
        frames=60 if quick else 400,
    )
    for key, value in gestures.items():
        figures[f"parallel_gestures_cache_{key}"] = round(value, 3)
    figures["meets_30fps_p95_under_33ms"] = bool(
        max(figures["parallel_cache_p95_ms"], figures["parallel_gestures_cache_p95_ms"]) < 33.0
    )
    for key, value in _batched_sampling(dataset, rows=8 if quick else 64).items():
        figures[key] = value
    figures["batched_over_agent_fps"] = round(
        figures["batched_multinomial_frames_per_s"] / figures["parallel_gestures_cache_fps"], 1
    )
    fps, params = _training_fps(2 if quick else 8)
    figures["sft_train_frames_per_s"] = round(fps, 1)
    figures["params_millions"] = round(params / 1e6, 2)
    return figures
