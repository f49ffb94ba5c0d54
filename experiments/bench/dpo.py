"""`dyadic bench dpo`: seconds per DPO step with glibc's default allocator and with the CLI's
(:mod:`experiments.allocator`), each in a fresh process, in the same run.

The step is the benchmark's best DPO (``dpo_nods_weighted``: nod decisions, every frame's tokens weighted) on
the ``sft_small`` gesture model with random weights, 8 pairs a step, on the `small` benchmark's train clips:
chosen is the recorded listener, rejected the same listener 5 frames late (the step's cost does not depend on
which is better).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from experiments.allocator import OPT_OUT
from experiments.bench import Figures, benchmark

SETTINGS = {"beta": 0.5, "learning_rate": 3.0e-4, "num_epochs": 1, "batch_size": 8, "max_frames": 0,
            "nod_decisions": True, "action_frames": 0, "token_weight": 0.125}  # fmt: skip


def step_seconds(dataset_spec: str, steps: int) -> dict[str, float]:
    """Mean seconds of DPO steps after one warm-up step, and this process's peak resident memory (MiB)."""
    import resource

    import numpy as np
    import torch
    from transformers import TrainerCallback

    from agents.alignment.dpo import DPOTrainingConfig, TrajectoryPair, make_dpo_trainer
    from dyadic_env.data import load_dataset
    from experiments.bench.policy import sft_small_model

    torch.manual_seed(0)
    dataset = load_dataset(dataset_spec)
    model = sft_small_model("parallel", dataset, gestures=True).train()
    encode = model.processor.action_tokenizer.encode
    clips = list(dataset.split("train"))[: 8 * (steps + 1)]
    pairs: list[Any] = []
    for clip in clips:
        tokens = encode(np.asarray(clip.listener_motion))
        pairs.append(TrajectoryPair(clip.clip_id, tokens, np.roll(tokens, 5, axis=0)))
    config = DPOTrainingConfig.from_dict({**SETTINGS, "seed": 0, "extra_args": {"max_steps": steps + 1}})
    ends: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *_: Any, **__: Any) -> None:
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_dpo_trainer(model, pairs, dataset.clip, config, tmp)
        trainer.add_callback(Clock())
        trainer.train()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step_s": (ends[-1] - ends[0]) / (len(ends) - 1), "peak_rss_mib": peak_mib}


def _in_fresh_process(dataset_spec: str, steps: int, default_malloc: bool) -> dict[str, float]:
    code = (
        "import json\n"
        "from experiments.allocator import keep_large_allocations\n"
        "from experiments.bench.dpo import step_seconds\n"
        "keep_large_allocations()\n"
        f"print(json.dumps(step_seconds({dataset_spec!r}, {steps})))\n"
    )
    env = {**os.environ, OPT_OUT: "1" if default_malloc else "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"bench dpo: the measuring process failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@benchmark("dpo", help="seconds per DPO step with glibc's default allocator and with the CLI's")
def bench_dpo(quick: bool = False) -> Figures:
    import torch

    dataset, steps = ("synthetic:tiny", 1) if quick else ("synthetic:small", 4)
    figures: Figures = {"dataset": dataset, "steps": steps, "torch_threads": torch.get_num_threads()}
    for name, default in (("default_malloc", True), ("cli_malloc", False)):
        for key, value in _in_fresh_process(dataset, steps, default).items():
            figures[f"{name}_{key}"] = round(value, 3)
    figures["default_over_cli_step_s"] = round(
        figures["default_malloc_step_s"] / figures["cli_malloc_step_s"], 2
    )
    figures["cli_over_default_peak_rss"] = round(
        figures["cli_malloc_peak_rss_mib"] / figures["default_malloc_peak_rss_mib"], 2
    )
    return figures
