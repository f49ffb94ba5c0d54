"""SFT checkpoints a killed run resumes from (model, optimizer, scheduler, RNG, step), and the weight average.

Every directory is written as ``NAME.partial`` and renamed when complete, so a kill never leaves half a
checkpoint where a resume would find it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.vla.sft.config import SFTConfig

if TYPE_CHECKING:
    from agents.vla.modeling import VLAForListening

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
EMA_STATE = "ema.pt"
FINAL_DIR = "final"


class WeightAverage:
    """An exponential moving average of a model's trainable weights (``SFTConfig.ema_decay``)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average toward the current weights after optimizer step ``step`` (0-based)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for average, param in zip(self.shadow, self.params):
            average.lerp_(param.detach(), 1.0 - decay)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["shadow"]) != len(self.shadow):
            raise ValueError(f"{EMA_STATE}: {len(state['shadow'])} tensors, the model has {len(self.shadow)}")
        for average, saved in zip(self.shadow, state["shadow"]):
            average.copy_(saved)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own weights again after it."""
        own = [p.detach().clone() for p in self.params]
        self._load(self.shadow)
        try:
            yield
        finally:
            self._load(own)

    @torch.no_grad()
    def _load(self, values: list[torch.Tensor]) -> None:
        for param, value in zip(self.params, values):
            param.copy_(value)


def save_checkpoint(
    out: Path,
    step: int,
    model: VLAForListening,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: SFTConfig,
    average: WeightAverage | None = None,
) -> Path:
    """Write ``out/checkpoint-STEP`` atomically (model, tokenizers, optimizer, scheduler, RNG, step and the
    weight average if there is one)."""

    def write(d: Path) -> None:
        model.save_pretrained(d)
        if average is not None:
            torch.save(average.state_dict(), d / EMA_STATE)
        torch.save(optimizer.state_dict(), d / "optimizer.pt")
        torch.save(scheduler.state_dict(), d / "scheduler.pt")
        torch.save({"torch": torch.get_rng_state(), "numpy": np.random.get_state()}, d / "rng.pt")
        (d / TRAINER_STATE).write_text(json.dumps({"step": step, "config": asdict(config)}, indent=2))

    path = save_atomically(out / f"{CHECKPOINT_PREFIX}{step:07d}", write)
    old = sorted(out.glob(f"{CHECKPOINT_PREFIX}*"), key=checkpoint_step)[: -config.keep_checkpoints]
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)
    return path


def load_trainer_state(
    path: Path, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> int:
    """Restore the optimizer, scheduler and RNG states of checkpoint ``path``; returns its step."""
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    return int(json.loads((path / TRAINER_STATE).read_text())["step"])


def save_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """Run ``write`` on ``path.partial`` and rename it to ``path`` (replacing it) once it returns."""
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint directory was saved at."""
    return int(path.name[len(CHECKPOINT_PREFIX) :])


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint in a run directory, or None."""
    done = [p for p in Path(out).glob(f"{CHECKPOINT_PREFIX}*") if (p / TRAINER_STATE).exists() and p.is_dir()
            and p.name[len(CHECKPOINT_PREFIX) :].isdigit()]  # fmt: skip
    return max(done, key=checkpoint_step) if done else None
