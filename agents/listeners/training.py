"""Training LM-listener and MMLHG: the VQ-VAE first, then the language model on its codes.

One step counter runs through both stages (``vq.steps`` VQ-VAE steps, then ``lm.steps`` language-model steps).
Checkpoints (``output_dir/checkpoint-STEP``: the model with its tokenizers, the stage's optimizer, the RNG
state and the step) are written atomically; a killed run resumes from the latest and, every batch and dropout
being a function of ``(seed, step)``, ends where an uninterrupted run would. TensorBoard logs go to
``output_dir/tb``: ``vq/*`` and ``lm/*`` per step, ``val/*`` (the VQ-VAE's reconstruction error next to the
action tokenizer's, the language model's validation loss).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.listeners.config import ListenerTrainConfig
from agents.listeners.data import ListenerBatches
from agents.listeners.factory import model_for_dataset
from agents.listeners.modeling import CodeListenerModel
from agents.listeners.sequences import BOS
from agents.listeners.vqvae import vq_loss
from agents.vla.sft.checkpoints import (
    CHECKPOINT_PREFIX,
    FINAL_DIR,
    TRAINER_STATE,
    checkpoint_step,
    latest_checkpoint,
    save_atomically,
)

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

BEST_DIR = "best"
"""The language model of the lowest validation loss so far (``lm.select_best``)."""
TRAINING_RECORD = "training.json"
"""Written beside the final policy: steps, training seconds (over every resumed session), threads, load."""


@dataclass
class _Run:
    """A training run between steps; the clocks count this session, ``earlier`` the sessions before a resume."""

    config: ListenerTrainConfig
    model: CodeListenerModel
    train: ListenerBatches
    val: ListenerBatches | None
    writer: SummaryWriter
    step: int
    resumed_from: Path | None
    best: tuple[float, int] | None  # the lowest validation loss of the language model, and its step
    earlier: tuple[float, float]  # wall and CPU seconds of the earlier sessions
    started: tuple[float, float] = field(default_factory=lambda: (time.monotonic(), time.process_time()))

    def seconds(self) -> float:
        return self.earlier[0] + time.monotonic() - self.started[0]

    def cpu_seconds(self) -> float:
        """CPU time of this process (all its threads), which a busy machine does not inflate as it does wall time."""
        return self.earlier[1] + time.process_time() - self.started[1]


def train_listener(config: ListenerTrainConfig, *, progress: bool = True) -> Path:
    """Train (or resume) a run; returns the directory of the final policy (``output_dir/final``)."""
    from tqdm.auto import tqdm

    run = _start(config)
    total = config.vq.steps + config.lm.steps
    bar = tqdm(total=total, initial=run.step, disable=not progress, desc=config.variant, dynamic_ncols=True)
    try:
        if run.step < config.vq.steps:
            _train_vq(run, bar)
        if run.step >= config.vq.steps and not _out_of_time(run):
            _train_lm(run, bar)
    finally:
        bar.close()
    return _finish(run)


def _start(config: ListenerTrainConfig) -> _Run:
    from torch.utils.tensorboard import SummaryWriter

    from dyadic_env.data import load_dataset

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    dataset = load_dataset(config.dataset)
    if config.train_split not in dataset.splits:
        raise ValueError(
            f"train_split {config.train_split!r}: {dataset.path} has splits {list(dataset.splits)}"
        )
    out = Path(config.output_dir)
    resume = latest_checkpoint(out) if config.resume else None
    step, earlier, best = 0, (0.0, 0.0), None  # type: tuple[int, tuple[float, float], tuple[float, int] | None]
    if resume is not None:
        model = CodeListenerModel.from_pretrained(resume)
        state = json.loads((resume / TRAINER_STATE).read_text())
        step, earlier = (
            int(state["step"]),
            (float(state.get("seconds", 0)), float(state.get("cpu_seconds", 0))),
        )
        best = (float(state["best"][0]), int(state["best"][1])) if state.get("best") else None
    else:
        fields = config.model_config_fields()
        model = model_for_dataset(
            dataset, config.variant, split=config.train_split, seed=config.seed, **fields
        )
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    train = ListenerBatches(dataset.split(config.train_split), model, config)
    val = None
    if config.val_split and config.val_split in dataset.splits and len(dataset.split(config.val_split)):
        val = ListenerBatches(dataset.split(config.val_split), model, config)
    writer = SummaryWriter(str(out / "tb"))
    if step == 0:
        params = sum(p.numel() for p in model.parameters())
        writer.add_text("model", f"{config.variant}: {params / 1e6:.2f} M parameters")
    return _Run(config, model, train, val, writer, step, resume, best, earlier)


def _train_vq(run: _Run, bar: Any) -> None:
    config, model = run.config, run.model
    optimizer = torch.optim.AdamW(model.vqvae.parameters(), lr=config.vq.learning_rate, betas=(0.9, 0.99))
    _resume_optimizer(run, optimizer)
    model.train()
    while run.step < config.vq.steps:
        inputs, targets, references = run.train.vq_batch(run.step)
        style = model.vqvae.style_of(references) if references is not None else None
        recon, quantized = model.vqvae(inputs, style)
        loss, reconstruction = vq_loss(recon, targets, quantized.commitment, velocity=config.vq.velocity,
                                       commit=config.vq.commit)  # fmt: skip
        _apply(
            optimizer, loss, _lr(config.vq.learning_rate, config.vq.warmup_steps, config.vq.steps, run.step)
        )
        run.step += 1
        bar.update(1)
        if run.step % config.log_every == 0:
            for name, value in (("loss", loss), ("reconstruction", reconstruction),
                                ("commitment", quantized.commitment), ("perplexity", quantized.perplexity)):  # fmt: skip
                run.writer.add_scalar(f"vq/{name}", float(value.detach()), run.step)
            bar.set_postfix(
                recon=f"{float(reconstruction.detach()):.3f}", ppl=f"{float(quantized.perplexity):.0f}"
            )
        # The stage's last checkpoint waits for the identity table (below).
        if _checkpoint_due(run, optimizer, final=run.step == config.vq.steps):
            return
    model.eval()
    if model.config.style_dim:
        with torch.no_grad():
            model.identity_styles.copy_(run.train.identity_table())
    _log_vq_error(run)
    _save(run, optimizer)


def _train_lm(run: _Run, bar: Any) -> None:
    config, model, lm = run.config, run.model, run.config.lm
    run.train.encode()
    if run.val is not None:
        run.val.encode()
    params = [p for name, p in model.named_parameters() if not name.startswith("vqvae.")]
    optimizer = torch.optim.AdamW(
        params, lr=lm.learning_rate, weight_decay=lm.weight_decay, betas=(0.9, 0.95)
    )
    _resume_optimizer(run, optimizer)
    model.train()
    model.vqvae.eval()  # frozen: its codebook must not move under the codes it gave
    total = config.vq.steps + lm.steps
    while run.step < total:
        batch = _corrupted(run.train.lm_batch(run.step), model.config.codebook_size, config, run.step)
        keep = batch.pop("speaker_keep")
        loss, accuracy = model.lm_loss(batch, keep)
        lm_step = run.step - config.vq.steps
        _apply(optimizer, loss, _lr(lm.learning_rate, lm.warmup_steps, lm.steps, lm_step))
        run.step += 1
        bar.update(1)
        if run.step % config.log_every == 0:
            run.writer.add_scalar("lm/loss", float(loss.detach()), run.step)
            run.writer.add_scalar("lm/code_accuracy", float(accuracy), run.step)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", acc=f"{float(accuracy):.2f}")
        if config.eval_every and (run.step - config.vq.steps) % config.eval_every == 0:
            _log_lm_validation(run)
        if _checkpoint_due(run, optimizer, final=run.step == total):
            return
    _log_lm_validation(run)
    _save(run, optimizer)


def _corrupted(
    batch: dict[str, torch.Tensor], codebook: int, config: ListenerTrainConfig, step: int
) -> dict[str, torch.Tensor]:
    """LM-listener's input noise: each previous code replaced by a random one with probability
    ``1 - code_keep``, each unit's speaker input dropped with probability ``1 - speaker_keep``."""
    generator = torch.Generator().manual_seed(
        int(np.random.SeedSequence([config.seed, step, 3]).generate_state(1)[0])
    )
    previous = batch["previous"]
    keep = torch.rand(previous.shape, generator=generator) < config.lm.code_keep
    noise = torch.randint(codebook, previous.shape, generator=generator)
    batch["previous"] = torch.where(keep | (previous == BOS), previous, noise)
    batch["speaker_keep"] = (torch.rand(previous.shape, generator=generator) < config.lm.speaker_keep).float()
    return batch


def _apply(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()


def _lr(peak: float, warmup: int, steps: int, step: int) -> float:
    """Linear warmup, then cosine decay to 10 % of ``peak`` at ``steps``."""
    if step < warmup:
        return peak * (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


# --- checkpoints and validation ---------------------------------------------------------------------------------
def _checkpoint_due(run: _Run, optimizer: torch.optim.Optimizer, *, final: bool) -> bool:
    """Save when due (not at a stage's ``final`` step: the stage saves itself); True when the run is out of time
    (saved, must stop)."""
    if final:
        return False
    late = _out_of_time(run)
    if (run.config.save_every and run.step % run.config.save_every == 0) or late:
        _save(run, optimizer)
    if late:
        print(f"{run.config.variant}: stopping after {run.config.max_minutes} minutes at step {run.step}")
    return late


def _out_of_time(run: _Run) -> bool:
    return bool(run.config.max_minutes and time.monotonic() - run.started[0] > 60 * run.config.max_minutes)


def _save(run: _Run, optimizer: torch.optim.Optimizer) -> None:
    out = Path(run.config.output_dir)

    def write(d: Path) -> None:
        run.model.save_pretrained(d)
        torch.save(optimizer.state_dict(), d / "optimizer.pt")
        torch.save({"torch": torch.get_rng_state()}, d / "rng.pt")
        state = {"step": run.step, "seconds": run.seconds(), "cpu_seconds": run.cpu_seconds(), "best": run.best,
                 "config": asdict(run.config)}  # fmt: skip
        (d / TRAINER_STATE).write_text(json.dumps(state, indent=2))

    save_atomically(out / f"{CHECKPOINT_PREFIX}{run.step:07d}", write)
    for stale in sorted(out.glob(f"{CHECKPOINT_PREFIX}*"), key=checkpoint_step)[
        : -run.config.keep_checkpoints
    ]:
        shutil.rmtree(stale, ignore_errors=True)


def _resume_optimizer(run: _Run, optimizer: torch.optim.Optimizer) -> None:
    """Restore the optimizer and RNG of the checkpoint the run resumed from, when it was saved in this stage."""
    source = run.resumed_from
    if source is None:
        return
    run.resumed_from = None  # once: the next stage starts with a fresh optimizer
    torch.set_rng_state(torch.load(source / "rng.pt", weights_only=False)["torch"])
    if run.step != run.config.vq.steps:  # a checkpoint at the end of the VQ stage holds the VQ optimizer
        optimizer.load_state_dict(torch.load(source / "optimizer.pt", weights_only=False))


def _log_vq_error(run: _Run) -> None:
    errors = (run.val or run.train).vq_error()
    run.writer.add_scalar("val/vq_mse", errors["vq_mse"], run.step)
    run.writer.add_scalar("val/tokenizer_mse", errors["tokenizer_mse"], run.step)


@torch.no_grad()
def _log_lm_validation(run: _Run) -> None:
    """The validation loss; with ``select_best``, a new lowest one saves the model as ``output_dir/best``."""
    if run.val is None:
        return
    was_training = run.model.training
    run.model.eval()
    losses = [run.model.lm_loss(b) for b in run.val.eval_batches(run.config.lm.batch_size)]
    loss = float(np.mean([float(loss) for loss, _ in losses]))
    run.writer.add_scalar("val/lm_loss", loss, run.step)
    run.writer.add_scalar("val/code_accuracy", float(np.mean([float(a) for _, a in losses])), run.step)
    if run.config.lm.select_best and (run.best is None or loss < run.best[0]):
        run.best = (loss, run.step)
        save_atomically(Path(run.config.output_dir) / BEST_DIR, lambda d: run.model.save_pretrained(d))
    run.model.train(was_training)
    run.model.vqvae.eval()


def _finish(run: _Run) -> Path:
    final = Path(run.config.output_dir) / FINAL_DIR
    run.model.eval()
    if run.step >= run.config.vq.steps + run.config.lm.steps:
        best = Path(run.config.output_dir) / BEST_DIR

        def write(d: Path) -> None:
            if run.best is not None and best.is_dir():
                shutil.copytree(best, d, dirs_exist_ok=True)
            else:
                run.model.save_pretrained(d)
            # How long training took, and how busy the machine was (a shared machine's times say little alone).
            record = {"variant": run.config.variant, "steps": run.step, "seconds": round(run.seconds(), 1),
                      "cpu_seconds": round(run.cpu_seconds(), 1),
                      "selected_step": run.best[1] if run.best else run.step,
                      "val_lm_loss": run.best[0] if run.best else None, "num_threads": torch.get_num_threads(),
                      "load_average_at_end": os.getloadavg()}  # fmt: skip
            (d / TRAINING_RECORD).write_text(json.dumps(record, indent=2))

        save_atomically(final, write)
    run.writer.close()
    return final
