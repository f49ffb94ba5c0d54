"""The SFT training loop: ``accelerate`` (``accelerate launch -m experiments.cli train sft ...`` runs it on several
GPUs), AdamW with warmup and cosine decay, gradient clipping, TensorBoard and tqdm, and checkpoints it resumes
from after a kill. All data randomness is a function of ``(seed, step)``, so a resumed run replays exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agents.vla.sft.checkpoints import (
    EMA_STATE,
    FINAL_DIR,
    WeightAverage,
    checkpoint_step,
    latest_checkpoint,
    load_trainer_state,
    save_atomically,
    save_checkpoint,
)
from agents.vla.sft.config import SFTConfig
from agents.vla.sft.data import ClipBatcher
from agents.vla.sft.objective import SFTLoss, evaluate_loss, training_loss
from agents.vla.sft.states import noisy_states, sampled_states

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.utils.tensorboard import SummaryWriter

    from agents.vla.modeling import VLAForListening
    from dyadic_env.data import DyadicDataset


@dataclass
class _Run:
    """The state of a training run between steps."""

    config: SFTConfig
    accelerator: Accelerator
    model: torch.nn.Module  # as accelerate prepared it
    unwrapped: VLAForListening  # the VLA itself
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    step: int
    average: WeightAverage | None
    batcher: ClipBatcher
    val: ClipBatcher | None
    writer: SummaryWriter | None  # on the main process only


def train_sft(config: SFTConfig, *, progress: bool = True) -> Path:
    """Run SFT; returns the directory of the final policy (``output_dir/final``)."""
    from tqdm.auto import tqdm

    run = _start(config)
    bar = tqdm(total=config.max_steps, initial=run.step, disable=not (progress and run.accelerator.is_main_process),
               desc="sft", dynamic_ncols=True)  # fmt: skip
    started, frames_seen, window_start = time.monotonic(), 0, time.monotonic()
    run.model.train()
    while run.step < config.max_steps:
        loss, scored, grad_norm, frames = _train_step(run)
        frames_seen += frames
        bar.update(1)
        if run.writer is not None and run.step % config.log_every == 0:
            accuracy = _token_accuracy(*scored)
            fps = frames_seen * run.accelerator.num_processes / (time.monotonic() - window_start)
            _log(run.writer, run.step, loss, {"charts/learning_rate": float(run.scheduler.get_last_lr()[0]),
                                              "charts/grad_norm": float(grad_norm), "charts/frames_per_second": fps,
                                              "charts/token_accuracy": accuracy})  # fmt: skip
            bar.set_postfix(loss=f"{float(loss.total.detach()):.3f}", acc=f"{accuracy:.2f}")
            frames_seen, window_start = 0, time.monotonic()
        if _end_of_step(run, started):
            break
    bar.close()
    return _finish(run)


def _start(config: SFTConfig) -> _Run:
    """Seed, load the data, build or resume the model, optimizer and scheduler, open the logs."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    from dyadic_env.data import load_dataset

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    # A batch without words leaves the word embeddings unused; DDP must not wait for their gradients.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp])
    set_seed(config.seed)
    dataset = load_dataset(config.dataset)
    if config.train_split not in dataset.splits:
        raise ValueError(
            f"train_split {config.train_split!r}: {dataset.path} has splits {list(dataset.splits)}"
        )
    resume_dir = latest_checkpoint(config.output_dir) if config.resume else None
    model = build_sft_model(config, dataset, resume_dir)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
        weight_decay=config.weight_decay, betas=(0.9, 0.95),
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(config))
    step = 0 if resume_dir is None else load_trainer_state(resume_dir, optimizer, scheduler)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(wrapped)
    average = _weight_average(unwrapped, config, resume_dir)
    batcher = ClipBatcher(dataset.split(config.train_split), model.processor, config,
                          accelerator.process_index, accelerator.num_processes)  # fmt: skip
    val = None
    if config.val_split and config.val_split in dataset.splits and len(dataset.split(config.val_split)):
        val = ClipBatcher(dataset.split(config.val_split), model.processor, config)
    writer = _open_writer(config, unwrapped, step) if accelerator.is_main_process else None
    return _Run(
        config, accelerator, wrapped, unwrapped, optimizer, scheduler, step, average, batcher, val, writer
    )


def _weight_average(
    unwrapped: VLAForListening, config: SFTConfig, resume_dir: Path | None
) -> WeightAverage | None:
    if not config.ema_decay:
        return None
    average = WeightAverage(unwrapped, config.ema_decay)
    if resume_dir is not None:
        if not (resume_dir / EMA_STATE).exists():
            raise ValueError(f"ema_decay: {resume_dir} was trained without it (no {EMA_STATE}); resume with "
                             f"ema_decay=0 or train into a new output_dir")  # fmt: skip
        average.load_state_dict(torch.load(resume_dir / EMA_STATE, weights_only=True))
    return average


def _open_writer(config: SFTConfig, unwrapped: VLAForListening, step: int) -> SummaryWriter:
    """TensorBoard's writer; a fresh run also records its config (``sft_config.json`` and the hparams text)."""
    from torch.utils.tensorboard import SummaryWriter

    out = Path(config.output_dir)
    writer = SummaryWriter(str(out / "tb"))
    if step == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft_config.json").write_text(json.dumps(asdict(config), indent=2))
        writer.add_text("hyperparameters", _markdown_table(asdict(config)))
        writer.add_text(
            "model",
            f"{_count_params(unwrapped) / 1e6:.2f} M parameters, decoding {unwrapped.config.decoding}",
        )
    return writer


def _train_step(run: _Run) -> tuple[SFTLoss, tuple[torch.Tensor, ...], torch.Tensor, int]:
    """One optimizer step: the loss, the scored (logits, actions, mask), the gradient norm and the frames seen."""
    config, model, unwrapped = run.config, run.model, run.unwrapped
    batch = {k: v.to(run.accelerator.device) for k, v in run.batcher.batch(run.step).items()}
    if config.self_states:
        batch["prev_listener"] = sampled_states(model, batch, unwrapped, config, run.step)
    if config.state_noise or config.pose_state_noise or config.state_offset or config.state_dropout:
        batch["prev_listener"] = noisy_states(batch["prev_listener"], unwrapped, config, run.step)
    loss, logits, actions, mask = training_loss(model, unwrapped, batch, config, run.step)
    run.optimizer.zero_grad(set_to_none=True)
    run.accelerator.backward(loss.total)
    grad_norm = (run.accelerator.clip_grad_norm_(model.parameters(), config.grad_clip) if config.grad_clip
                 else torch.tensor(0.0))  # fmt: skip
    run.optimizer.step()
    run.scheduler.step()
    if run.average is not None:
        run.average.update(run.step)
    run.step += 1
    return loss, (logits.detach(), actions, mask), grad_norm, int(batch["frame_mask"].sum())


def _end_of_step(run: _Run, started: float) -> bool:
    """Validation and checkpoints due after this step; True when the run is out of time (saved, must stop).
    ``started``: the run's start on ``time.monotonic``'s clock."""
    config, step = run.config, run.step
    if run.val is not None and config.eval_every and step % config.eval_every == 0 and run.writer is not None:
        _log_validation(run.writer, step, run.unwrapped, run.val, config, run.accelerator.device)
    out_of_time = bool(config.max_minutes and time.monotonic() - started > 60 * config.max_minutes)
    if (config.save_every and step % config.save_every == 0) or out_of_time:
        run.accelerator.wait_for_everyone()
        if run.accelerator.is_main_process:
            _save(run)
    if out_of_time:
        print(f"sft: stopping after {config.max_minutes} minutes at step {step}")
    return out_of_time


def _save(run: _Run) -> None:
    out = Path(run.config.output_dir)
    save_checkpoint(out, run.step, run.unwrapped, run.optimizer, run.scheduler, run.config, run.average)


def _finish(run: _Run) -> Path:
    """The last checkpoint, the final validation and the final policy (the weight average when kept)."""
    run.accelerator.wait_for_everyone()
    final = Path(run.config.output_dir) / FINAL_DIR
    if run.accelerator.is_main_process:
        last = latest_checkpoint(run.config.output_dir)
        if last is None or checkpoint_step(last) != run.step:
            _save(run)
        with run.average.applied() if run.average is not None else contextlib.nullcontext():
            if run.val is not None and run.writer is not None:
                _log_validation(
                    run.writer, run.step, run.unwrapped, run.val, run.config, run.accelerator.device
                )
            save_atomically(final, lambda d: run.unwrapped.save_pretrained(d))
        if run.writer is not None:
            run.writer.close()
    return final


def build_sft_model(config: SFTConfig, dataset: DyadicDataset, resume_dir: Path | None) -> VLAForListening:
    """The VLA to train: resumed from ``resume_dir``, loaded from ``init_from``, or fresh for the dataset."""
    from agents.vla.factory import model_for_dataset
    from agents.vla.modeling import VLAForListening

    source = resume_dir or (Path(config.init_from) if config.init_from else None)
    if source is not None:
        model = VLAForListening.from_pretrained(source)
        if model.processor is None:
            raise FileNotFoundError(f"{source}: checkpoint lacks the tokenizers (action_tokenizer.json)")
        fresh = config.vla_config()  # the decoding the config asks for (its defaults where unset)
        model.config.decode_mode = fresh.decode_mode
        model.config.decode_temperature = fresh.decode_temperature
        model.config.max_context_frames = config.max_frames
        return model
    return model_for_dataset(
        dataset, config.train_split, max_context_frames=config.max_frames,
        speaker_prediction=config.lambda_speaker > 0, seed=config.seed, **config.model,
    )  # fmt: skip


def lr_schedule(config: SFTConfig) -> Callable[[int], float]:
    """The learning-rate factor of each step: linear warmup, then cosine decay to 10% at ``max_steps``."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / max(1, config.warmup_steps)
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _token_accuracy(logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> float:
    hit = (logits.argmax(-1) == actions).float().mean(-1)
    return float((hit * mask).sum() / mask.sum().clamp(min=1))


def _log(
    writer: SummaryWriter, step: int, loss: SFTLoss, charts: dict[str, float], prefix: str = "losses/"
) -> None:
    for name, value in loss._asdict().items():
        writer.add_scalar(f"{prefix}{name}", float(value.detach()), step)
    for name, value in charts.items():
        writer.add_scalar(name, value, step)


def _log_validation(
    writer: SummaryWriter,
    step: int,
    model: VLAForListening,
    val: ClipBatcher,
    config: SFTConfig,
    device: torch.device,
) -> None:
    loss = evaluate_loss(model, val.eval_batches(config.batch_size), config, device)
    _log(writer, step, loss, {}, prefix="losses/val_")


def _count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _markdown_table(values: dict[str, Any]) -> str:
    return "|field|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in values.items())
