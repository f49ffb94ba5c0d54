"""Supervised fine-tuning of the listener VLA (paper eqs. 7-9).

``L = lambda_exp * CE_exp + lambda_pose * CE_pose + lambda_temp * L_temp`` where, per clip, ``CE_exp`` is the
cross-entropy of the 50 expression tokens of a frame (mean over those dimensions) averaged over the clip's
frames (eq. 7), ``CE_pose`` the same over the 6 pose tokens, and ``L_temp`` (eq. 8) the mean over consecutive
frames of ``||a_{t+1} - a_t||^2`` (expression plus pose) of the *expected* continuous action
``a_t = sum_k softmax(logits_t)_k * bin_centre_k``, which keeps the term differentiable. Clip losses are
averaged over the batch (the ``1/N`` of eq. 8). Teacher forcing runs whole clips (or long crops) in one pass.

The trainer uses ``accelerate`` (``accelerate launch -m experiments.cli train sft ...`` runs it on several
GPUs), AdamW with warmup and cosine decay, gradient clipping, TensorBoard and tqdm, and writes checkpoints it
can resume from after a kill (model, optimizer, scheduler, RNG and step). All data randomness is a function of
``(seed, step)``, so a resumed run replays exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from agents.vla.decoding import DECODE_MODES

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
EMA_STATE = "ema.pt"
FINAL_DIR = "final"


class SFTLoss(NamedTuple):
    """The SFT objective and its parts (each a scalar tensor)."""

    total: torch.Tensor
    ce_expression: torch.Tensor
    ce_pose: torch.Tensor
    temporal: torch.Tensor
    speaker: torch.Tensor  # the auxiliary speaker prediction error (lambda_speaker; 0 when off)
    gesture: torch.Tensor  # the nod-onset cross-entropy (gesture models; 0 otherwise)


def soft_actions(logits: torch.Tensor, bin_centers: torch.Tensor) -> torch.Tensor:
    """Expected continuous action (..., D) under the logits (..., D, K): softmax-weighted bin centres."""
    return (torch.softmax(logits.float(), dim=-1) * bin_centers.float()).sum(-1)


def sft_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    frame_mask: torch.Tensor,
    bin_centers: torch.Tensor,
    *,
    lambda_exp: float = 1.0,
    lambda_pose: float = 1.0,
    lambda_temp: float = 0.0,
    expression_dim: int = 50,
) -> SFTLoss:
    """Paper eqs. 7-9 for a padded batch.

    Args:
        logits: (B, T, D, K) action logits.
        actions: (B, T, D) ground-truth tokens.
        frame_mask: (B, T) True on real frames.
        bin_centers: (D, K) continuous value of every token.
        lambda_exp, lambda_pose, lambda_temp: the weights of eq. 7 and eq. 9.
        expression_dim: the first ``expression_dim`` dimensions are expression, the rest pose.
    """
    d = logits.shape[2]
    logp = torch.log_softmax(logits.float(), dim=-1)
    ce = -logp.gather(-1, actions[..., None]).squeeze(-1)  # (B, T, D)
    m = frame_mask.to(ce.dtype)
    frames = m.sum(1).clamp(min=1)
    ce_exp = ((ce[..., :expression_dim].mean(-1) * m).sum(1) / frames).mean()
    ce_pose = (
        ((ce[..., expression_dim:].mean(-1) * m).sum(1) / frames).mean()
        if d > expression_dim
        else ce.new_zeros(())
    )
    if lambda_temp:
        # Expected action from the same log-softmax: one pass fewer over the (B, T, D, K) logits.
        soft = torch.einsum("btdk,dk->btd", logp.exp(), bin_centers.float())
        pair = m[:, 1:] * m[:, :-1]
        step = ((soft[:, 1:] - soft[:, :-1]) ** 2).sum(-1)
        per_clip = (step * pair).sum(1) / pair.sum(1).clamp(min=1)
        has_pairs = pair.sum(1) > 0
        temporal = per_clip[has_pairs].mean() if bool(has_pairs.any()) else ce.new_zeros(())
    else:
        temporal = ce.new_zeros(())
    total = lambda_exp * ce_exp + lambda_pose * ce_pose + lambda_temp * temporal
    return SFTLoss(total, ce_exp, ce_pose, temporal, ce.new_zeros(()), ce.new_zeros(()))


@dataclass
class SFTConfig:
    """Configuration of ``dyadic train sft`` (one YAML file in ``experiments/configs/``)."""

    dataset: str = "synthetic:small"
    """Dataset directory or ``synthetic:PRESET``."""
    train_split: str = "train"
    """Split to train on."""
    val_split: str | None = "val"
    """Split for the validation loss (None or a missing split: none)."""
    output_dir: str = "runs/sft"
    """Run directory: checkpoints, ``final/`` (the trained policy) and TensorBoard logs (``tb/``)."""

    decoding: str = "parallel"
    """``parallel`` (56 tokens of a frame in one pass) or ``autoregressive`` (RT-2 style)."""
    speaker_input: str = "auto"
    """``auto`` (features when the dataset has them), ``features`` or ``motion``."""
    backbone: dict[str, Any] = field(default_factory=dict)
    """Overrides of the from-scratch LLaMA config (hidden_size, num_hidden_layers, ...)."""
    backbone_path: str | None = None
    """A local pretrained causal LM directory (its tokenizer is used); None trains a small LLaMA from scratch."""
    lora_r: int = 0
    """LoRA rank for a pretrained backbone (0: fine-tune all its weights)."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """LoRA dropout."""
    head_hidden: int = 128
    """Width of the action head's per-dimension features."""
    head_state: bool = True
    """Give the action head an embedding of each dimension's previous token."""
    head_groups: int = 1
    """1: a frame's 56 tokens are independent given the context; k > 1: k groups decoded in order, each
    conditioned on the earlier ones (see ``VLAConfig.head_groups``). On the ``small`` benchmark 8 groups did not
    help: oracle 2.63 with ``sft_small`` (independent: 2.78-3.00 over 5 runs), 2.56 with the 0.3 offset (2.44-2.53)."""
    head_velocity: int = 0
    """> 0: the action head also sees each dimension's last step, clipped to +-this many bins (see
    ``VLAConfig.head_velocity``). With ``sft_small``, ``lambda_speaker=1`` and exact pose states
    (``pose_state_noise=0``), 8 bins taught the policy momentum (`dyadic diagnose` head-pitch slope +0.31-0.37 vs
    -0.01; data +0.58) and, teacher forced, to carry a nod on after a phrase end; in closed loop it still does
    not start nods there and the oracle did not move (3.00-3.11 over 3 seeds vs 3.04-3.14 without)."""
    expression_state: bool = True
    """False: the network never sees its own previous expression, only its previous head and jaw pose (see
    ``VLAConfig.expression_state``), so the face comes from the speaker's face and words. On ``small``'s test
    split (``sft_small_context.yaml``, ``mean_expression``, training seeds 0-2) FD fell from 0.40-0.43 to 0.30-0.33
    and L2 from 0.0078-0.0081 to 0.0064-0.0071, below the Mean baseline's 0.41 and 0.0073, with the oracle at
    3.24-3.28. Its sampled faces flicker, so it suits ``mean_expression`` decoding."""
    gesture_frames: int = 0
    """> 0: head nods become discrete gestures of this many frames: the network learns when a nod starts (a
    binary cross-entropy on the onsets found in the data, weighted by ``lambda_gesture``) and its action head
    reads the phase of the nod under way, continuing from the last frame moved along the data's mean nod;
    decoding draws the onset (see ``VLAConfig.gesture_frames``). 0: off. With ``sft_small`` and
    ``lambda_speaker=1``, 16 frames raised the oracle on ``small``'s test split from 3.04-3.14 to 3.32-3.40
    (sampled, 3 training seeds; engagement 2.06-2.13 vs 1.33-1.42): the policy now nods after the speaker's phrases.
    Without the mean nod to continue from, the head followed the phase only teacher forced (closed loop: the
    pitch rose to half a nod and stayed; oracle 3.24-3.33)."""
    lambda_gesture: float = 1.0
    """Weight of the nod-onset cross-entropy (gesture models)."""
    projector_hidden: int = 256
    """Width of the visual projector's hidden layer."""
    init_from: str | None = None
    """Start from this VLA checkpoint instead of a fresh model."""
    decode_mode: str = "sample"
    """Decoding stored with the policy for ``VLAAgent`` defaults (e.g. ``dyadic eval --policy``): one of
    :data:`~agents.vla.decoding.DECODE_MODES`."""
    decode_temperature: float = 1.0
    """Sampling temperature stored with the policy."""

    lambda_exp: float = 1.0
    """Weight of the expression cross-entropy (eq. 7)."""
    lambda_pose: float = 1.0
    """Weight of the pose cross-entropy (eq. 7)."""
    lambda_temp: float = 0.01
    """Weight of the temporal smoothness term (eqs. 8-9)."""
    lambda_speaker: float = 0.0
    """Weight of an auxiliary loss (not in the paper): predict the speaker's next input frame from each frame's
    hidden state, so the backbone learns when the speaker talks and pauses (0: off; adds a speaker head)."""
    loss_frames: float = 1.0
    """Fraction of frames the action head and loss run on (random disjoint pairs of consecutive frames, so eq.
    8 still sees neighbours). Consecutive frames are nearly redundant, and the head and loss over 56 x 256
    logits cost most of a step, so 0.25 trains about twice as many clips a second. Parallel decoding only."""
    state_noise: float = 0.0
    """Std of Gaussian noise added to each previous-frame state during training, in units of each dimension's
    tokenizer half-range (0: none). Teacher forcing otherwise rewards copying the last frame exactly; in closed
    loop the states carry the policy's own sampling noise."""
    pose_state_noise: float | None = None
    """``state_noise`` for the head and jaw pose states (None: the same as ``state_noise``). A nod is a bump of
    about 0.06 rad and the default noise on the pitch state is about 0.005 rad. Exact pose states (0.0) did not
    teach ``sft_small`` to nod after phrase ends (oracle 2.75 at 2,000 steps, 2.47 with dropout 0.3)."""
    state_offset: float = 0.0
    """Std of one Gaussian offset per clip and expression dimension added to all of a clip's expression states
    (same units). A state that is off by an unknown constant still tells how the face moves, but not where it
    should sit: the expression level must come from the speaker's face and words. In closed loop this pulls a
    listener that sampled a wrong level back to what the context calls for, instead of keeping it (the per-clip
    mean error that dominates FD). Head and jaw pose get none: their last frame is what keeps them smooth. The
    price of a large offset (0.3): the listener no longer commits to one response and its faces hedge (lower
    FD, weaker expressions; see ``experiments/configs/sft_small.yaml``)."""
    state_dropout: float = 0.0
    """Probability that a clip's states are all zeroed (as before an episode's first frame), so the context
    pathway also learns to stand alone."""
    self_states: float = 0.0
    """Fraction of frames whose previous-frame state is the policy's own sample (drawn at
    ``decode_temperature`` from a teacher-forced pass without gradient) instead of the data's, so training
    states carry the policy's own sampling noise as closed-loop ones do (two-pass scheduled sampling). Costs
    one more forward pass a step. Applied before ``state_noise``/``state_dropout``. With ``sft_small``,
    ``lambda_speaker=1 head_velocity=8 pose_state_noise=0``: 0.25 gave oracle 3.22/3.02/3.07 over 3 training
    seeds (3.00-3.11 without; noise between seeds about 0.2); 1.0 made the policy distrust its own states and
    jitter (naturalness 1.0, oracle 2.04)."""

    learning_rate: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Linear warmup steps, then cosine decay to 10% at ``max_steps``."""
    max_steps: int = 2000
    """Optimizer steps."""
    batch_size: int = 8
    """Clips per step (over all processes)."""
    max_frames: int = 0
    """Train on random crops of at most this many frames (0: whole clips)."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this (0: no clipping)."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the trainable weights (Polyak averaging) with this decay per step
    and write it as the final policy (0: off, the last weights). Its window is ``1 / (1 - ema_decay)`` steps;
    the decay ramps up as ``(1 + step) / (10 + step)`` so the start is not averaged with the initialisation.
    Checkpoints keep the raw weights (to resume from) and the average (``ema.pt``). With ``sft_small`` and
    ``lambda_speaker=1``, 0.99 narrowed the oracle's spread over 3 training seeds under ``mean_expression``
    decoding (3.19/3.12/3.16 vs 3.12/2.97/3.14) and left sampled decoding as it was (3.06-3.09 vs 3.04-3.14)."""

    seed: int = 0
    """Seeds the initialisation, the batch order and the crops."""
    log_every: int = 10
    """Steps between TensorBoard/progress updates."""
    eval_every: int = 250
    """Steps between validation losses (0: only at the end)."""
    save_every: int = 500
    """Steps between resumable checkpoints (0: only at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept (oldest deleted)."""
    resume: bool = True
    """Continue from the latest checkpoint in ``output_dir`` if there is one."""
    max_minutes: float = 0.0
    """Stop (and save) after this much wall time (0: no limit)."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    def __post_init__(self) -> None:
        from agents.vla.configuration import DECODING_MODES

        checks = [
            (self.decoding in DECODING_MODES, "decoding", f"one of {DECODING_MODES}", self.decoding),
            (self.speaker_input in ("auto", "features", "motion"), "speaker_input", "auto, features or motion",
             self.speaker_input),
            (self.max_steps > 0, "max_steps", "a positive integer", self.max_steps),
            (self.batch_size > 0, "batch_size", "a positive integer", self.batch_size),
            (self.learning_rate > 0, "learning_rate", "a positive number", self.learning_rate),
            (self.warmup_steps >= 0, "warmup_steps", "an integer >= 0", self.warmup_steps),
            (self.max_frames >= 0, "max_frames", "an integer >= 0 (0: whole clips)", self.max_frames),
            (min(self.lambda_exp, self.lambda_pose, self.lambda_temp, self.lambda_speaker, self.lambda_gesture) >= 0,
             "lambda_*", "weights >= 0",
             (self.lambda_exp, self.lambda_pose, self.lambda_temp, self.lambda_speaker, self.lambda_gesture)),
            (self.gesture_frames >= 0, "gesture_frames", "an integer >= 0 (0: off)", self.gesture_frames),
            (self.lora_r >= 0, "lora_r", "an integer >= 0", self.lora_r),
            (self.lora_r == 0 or self.backbone_path is not None, "lora_r", "0 unless backbone_path is set",
             self.lora_r),
            (self.grad_clip >= 0, "grad_clip", "a number >= 0", self.grad_clip),
            (0 <= self.ema_decay < 1, "ema_decay", "in [0, 1) (0: off)", self.ema_decay),
            (min(self.state_noise, self.state_offset, self.pose_state_noise or 0.0) >= 0,
             "state_noise/pose_state_noise/state_offset", "numbers >= 0",
             (self.state_noise, self.pose_state_noise, self.state_offset)),
            (0 <= self.state_dropout < 1, "state_dropout", "in [0, 1)", self.state_dropout),
            (0 <= self.self_states <= 1, "self_states", "in [0, 1]", self.self_states),
            (self.decode_mode in DECODE_MODES, "decode_mode", f"one of {DECODE_MODES}", self.decode_mode),
            (self.decode_temperature > 0, "decode_temperature", "a positive number", self.decode_temperature),
            (0 < self.loss_frames <= 1, "loss_frames", "in (0, 1]", self.loss_frames),
            (self.keep_checkpoints >= 1, "keep_checkpoints", "at least 1", self.keep_checkpoints),
            (self.log_every > 0, "log_every", "a positive integer", self.log_every),
        ]  # fmt: skip
        for ok, name, expected, found in checks:
            if not ok:
                raise ValueError(f"sft config: {name} must be {expected}, found {found!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SFTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"sft config: unknown fields {unknown}; known fields: {', '.join(sorted(known))}"
            )
        return cls(**values)


# --- data ------------------------------------------------------------------------------------------------------
class ClipBatcher:
    """Deterministic batches of clips (or crops) as a function of ``(seed, step)``; shards by process."""

    def __init__(self, clips: Any, processor: Any, config: SFTConfig, rank: int = 0, world: int = 1) -> None:
        self.clips, self.processor, self.config = clips, processor, config
        self.rank, self.world = rank, world
        self._examples: dict[int, dict[str, Any]] = {}
        self._orders: dict[int, np.ndarray] = {}

    def _clip_example(self, i: int) -> dict[str, Any]:
        # Tokens and words per clip are cached; speaker inputs stay memory-mapped until a crop is taken.
        if i not in self._examples:
            self._examples[i] = self.processor.clip_example(self.clips[i])
        return self._examples[i]

    def indices(self, step: int) -> list[int]:
        n, bs = len(self.clips), self.config.batch_size
        first = step * bs
        out = []
        for pos in range(first, first + bs):
            epoch, offset = divmod(pos, n)
            if epoch not in self._orders:
                self._orders = {epoch: np.random.default_rng([self.config.seed, epoch]).permutation(n)}
            out.append(int(self._orders[epoch][offset]))
        return out[self.rank :: self.world]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, step, 1])
        examples = []
        for i in self.indices(step):
            full = self._clip_example(i)
            t, crop = len(full["actions"]), self.config.max_frames
            start = int(rng.integers(0, t - crop + 1)) if crop and t > crop else 0
            end = start + crop if crop else t
            examples.append({
                "speaker_inputs": full["speaker_inputs"][start:end], "words": full["words"][start:end],
                "actions": full["actions"][start:end],
                "prev_frame": self.processor.action_tokenizer.decode(full["actions"][start - 1]) if start else None,
            })  # fmt: skip
        return self.processor.collate(examples)

    def eval_batches(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        idx = list(range(len(self.clips)))
        return [self.processor.collate([self._clip_example(i) for i in idx[s : s + batch_size]])
                for s in range(0, len(idx), batch_size)]  # fmt: skip


# --- the training loop -----------------------------------------------------------------------------------------
def train_sft(config: SFTConfig, *, progress: bool = True) -> Path:
    """Run SFT; returns the directory of the final policy (``output_dir/final``)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from dyadic_env.data import load_dataset

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    # A batch without words leaves the word embeddings unused; DDP must not wait for their gradients.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp])
    set_seed(config.seed)
    out = Path(config.output_dir)
    dataset = load_dataset(config.dataset)
    for split in [config.train_split]:
        if split not in dataset.splits:
            raise ValueError(f"train_split {split!r}: {dataset.path} has splits {list(dataset.splits)}")
    resume_dir = latest_checkpoint(out) if config.resume else None
    model = _make_model(config, dataset, resume_dir)
    processor = model.processor
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
        weight_decay=config.weight_decay, betas=(0.9, 0.95),
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    step = 0
    if resume_dir is not None:
        step = _load_trainer_state(resume_dir, optimizer, scheduler)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    average = WeightAverage(unwrapped, config.ema_decay) if config.ema_decay else None
    if average is not None and resume_dir is not None:
        if not (resume_dir / EMA_STATE).exists():
            raise ValueError(f"ema_decay: {resume_dir} was trained without it (no {EMA_STATE}); resume with "
                             f"ema_decay=0 or train into a new output_dir")  # fmt: skip
        average.load_state_dict(torch.load(resume_dir / EMA_STATE, weights_only=True))
    batcher = ClipBatcher(dataset.split(config.train_split), processor, config,
                          accelerator.process_index, accelerator.num_processes)  # fmt: skip
    val = None
    if config.val_split and config.val_split in dataset.splits and len(dataset.split(config.val_split)):
        val = ClipBatcher(dataset.split(config.val_split), processor, config)
    writer = SummaryWriter(str(out / "tb")) if accelerator.is_main_process else None
    if writer is not None and step == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft_config.json").write_text(json.dumps(asdict(config), indent=2))
        writer.add_text("hyperparameters", _markdown_table(asdict(config)))
        writer.add_text(
            "model",
            f"{_count_params(unwrapped) / 1e6:.2f} M parameters, decoding {unwrapped.config.decoding}",
        )
    bar = tqdm(total=config.max_steps, initial=step, disable=not (progress and accelerator.is_main_process),
               desc="sft", dynamic_ncols=True)  # fmt: skip
    started, frames_seen, window_start = time.monotonic(), 0, time.monotonic()
    model.train()
    while step < config.max_steps:
        batch = {k: v.to(accelerator.device) for k, v in batcher.batch(step).items()}
        if config.self_states:
            batch["prev_listener"] = _self_states(model, batch, unwrapped, config, step)
        if config.state_noise or config.pose_state_noise or config.state_offset or config.state_dropout:
            batch["prev_listener"] = _noisy_states(batch["prev_listener"], unwrapped, config, step)
        loss, logits, actions, mask = training_loss(model, unwrapped, batch, config, step)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss.total)
        grad_norm = (accelerator.clip_grad_norm_(model.parameters(), config.grad_clip) if config.grad_clip
                     else torch.tensor(0.0))  # fmt: skip
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update(step)
        step += 1
        frames_seen += int(batch["frame_mask"].sum())
        bar.update(1)
        if writer is not None and step % config.log_every == 0:
            elapsed = time.monotonic() - window_start
            accuracy = _token_accuracy(logits.detach(), actions, mask)
            _log(writer, step, loss, {"charts/learning_rate": float(scheduler.get_last_lr()[0]),
                                      "charts/grad_norm": float(grad_norm),
                                      "charts/frames_per_second": frames_seen * accelerator.num_processes / elapsed,
                                      "charts/token_accuracy": accuracy})  # fmt: skip
            bar.set_postfix(loss=f"{float(loss.total.detach()):.3f}", acc=f"{accuracy:.2f}")
            frames_seen, window_start = 0, time.monotonic()
        if val is not None and config.eval_every and step % config.eval_every == 0 and writer is not None:
            _log_validation(writer, step, unwrapped, val, config, accelerator.device)
        out_of_time = config.max_minutes and time.monotonic() - started > 60 * config.max_minutes
        if (config.save_every and step % config.save_every == 0) or out_of_time:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_checkpoint(out, step, unwrapped, optimizer, scheduler, config, average)
        if out_of_time:
            print(f"sft: stopping after {config.max_minutes} minutes at step {step}")
            break
    bar.close()
    accelerator.wait_for_everyone()
    final = out / FINAL_DIR
    if accelerator.is_main_process:
        last = latest_checkpoint(out)
        if last is None or _checkpoint_step(last) != step:
            save_checkpoint(out, step, unwrapped, optimizer, scheduler, config, average)
        with average.applied() if average is not None else contextlib.nullcontext():
            if val is not None and writer is not None:
                _log_validation(writer, step, unwrapped, val, config, accelerator.device)
            _save_atomically(final, lambda d: unwrapped.save_pretrained(d))
        if writer is not None:
            writer.close()
    return final


def _make_model(config: SFTConfig, dataset: Any, resume_dir: Path | None) -> Any:
    from agents.vla.factory import model_for_dataset
    from agents.vla.modeling import VLAForListening

    source = resume_dir or (Path(config.init_from) if config.init_from else None)
    if source is not None:
        model = VLAForListening.from_pretrained(source)
        if model.processor is None:
            raise FileNotFoundError(f"{source}: checkpoint lacks the tokenizers (action_tokenizer.json)")
        model.config.decode_mode = config.decode_mode
        model.config.decode_temperature = config.decode_temperature
        model.config.max_context_frames = config.max_frames
        return model
    lora = ({"r": config.lora_r, "alpha": config.lora_alpha, "dropout": config.lora_dropout}
            if config.lora_r else None)  # fmt: skip
    return model_for_dataset(
        dataset, config.train_split, speaker_input=config.speaker_input, backbone=config.backbone,
        backbone_path=config.backbone_path, lora=lora, decoding=config.decoding, head_hidden=config.head_hidden,
        head_state=config.head_state, head_groups=config.head_groups,
        head_velocity=config.head_velocity, gesture_frames=config.gesture_frames, decode_mode=config.decode_mode,
        expression_state=config.expression_state,
        decode_temperature=config.decode_temperature,
        max_context_frames=config.max_frames, projector_hidden=config.projector_hidden,
        speaker_prediction=config.lambda_speaker > 0, seed=config.seed,
    )  # fmt: skip


def training_loss(
    model: Any, unwrapped: Any, batch: dict[str, torch.Tensor], config: SFTConfig, step: int
) -> tuple[SFTLoss, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step's objective (eqs. 7-9 plus the speaker and nod-onset terms when on), with the scored logits,
    target tokens and mask. ``model`` may be wrapped (accelerate); ``unwrapped`` is the VLA itself."""
    logits, actions, mask, frame_hidden = _scored_frames(
        model, batch, config, step, unwrapped.vla.autoregressive
    )
    return _objective(unwrapped, logits, actions, mask, frame_hidden, batch, config), logits, actions, mask


def _objective(
    model: Any, logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor, frame_hidden: torch.Tensor,
    batch: dict[str, torch.Tensor], config: SFTConfig,
) -> SFTLoss:  # fmt: skip
    """Eqs. 7-9 on the scored frames, plus the speaker and nod-onset terms (on all frames) when on."""
    loss = sft_loss(
        logits, actions, mask, model.vla.bin_centers,
        lambda_exp=config.lambda_exp, lambda_pose=config.lambda_pose, lambda_temp=config.lambda_temp,
        expression_dim=model.config.expression_dim,
    )  # fmt: skip
    if config.lambda_speaker:
        loss = _with_speaker_loss(loss, model, frame_hidden, batch, config.lambda_speaker)
    if model.vla.gestures:
        loss = _with_gesture_loss(loss, model, frame_hidden, batch, config.lambda_gesture)
    return loss


def _scored_frames(
    model: Any, batch: dict[str, torch.Tensor], config: SFTConfig, step: int, autoregressive: bool
):
    """Logits, target tokens and frame mask to score: all frames, or disjoint random pairs of neighbours."""
    if config.loss_frames >= 1 or autoregressive:
        out = model(**batch)
        return out.logits, batch["actions"], batch["frame_mask"], out.frame_hidden
    head_mask = _pair_mask(
        batch["frame_mask"], config.loss_frames, np.random.default_rng([config.seed, step, 2])
    )
    out = model(**batch, head_mask=head_mask.to(batch["actions"].device))
    pairs = out.logits.shape[0] // 2
    actions = batch["actions"][head_mask].view(pairs, 2, -1)
    logits = out.logits.view(pairs, 2, *out.logits.shape[1:])
    return logits, actions, torch.ones(pairs, 2, dtype=torch.bool), out.frame_hidden


def _with_speaker_loss(
    loss: SFTLoss, model: Any, frame_hidden: torch.Tensor, batch: dict[str, torch.Tensor], weight: float
) -> SFTLoss:
    error = model.vla.speaker_prediction_error(
        frame_hidden, batch["speaker_inputs"], batch["frame_mask"].bool()
    )
    return loss._replace(total=loss.total + weight * error, speaker=error)


def _with_gesture_loss(
    loss: SFTLoss, model: Any, frame_hidden: torch.Tensor, batch: dict[str, torch.Tensor], weight: float
) -> SFTLoss:
    """Add the mean negative log-likelihood of the data's nod decisions (start or not, where one may start)."""
    from agents.vla.gestures import onset_allowed

    targets = model.vla.gesture_targets(batch["actions"], batch["frame_mask"])
    logp = model.vla.gesture_logprobs(frame_hidden, batch["actions"], batch["frame_mask"], targets)
    phases = targets[1]
    scored = (onset_allowed(phases, model.vla.gestures) & batch["frame_mask"].bool()).to(logp.dtype)
    error = -(logp * scored).sum() / scored.sum().clamp(min=1)
    return loss._replace(total=loss.total + weight * error, gesture=error)


def _pair_mask(frame_mask: torch.Tensor, fraction: float, rng: np.random.Generator) -> torch.Tensor:
    """(B, T) mask of disjoint pairs (2i+o, 2i+o+1) covering about ``fraction`` of each clip's frames."""
    mask = torch.zeros_like(frame_mask, dtype=torch.bool)
    for b, length in enumerate(frame_mask.sum(1).tolist()):
        offset = int(rng.integers(0, 2)) if length > 2 else 0
        slots = (length - offset) // 2
        if slots < 1:
            continue
        chosen = rng.choice(slots, size=max(1, min(slots, round(fraction * length / 2))), replace=False)
        for i in chosen:
            mask[b, offset + 2 * i : offset + 2 * i + 2] = True
    return mask


def _lr_lambda(config: SFTConfig):
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / max(1, config.warmup_steps)
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _noisy_states(states: torch.Tensor, model: Any, config: SFTConfig, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    b, _, d = states.shape
    expression = (torch.arange(d) < model.config.expression_dim).float()
    pose_noise = config.state_noise if config.pose_state_noise is None else config.pose_state_noise
    noise = (config.state_noise * expression + pose_noise * (1 - expression)) * torch.randn(
        states.shape, generator=gen
    )
    noise = noise + config.state_offset * expression * torch.randn(b, 1, d, generator=gen)
    half_range = model.vla.action_width * model.config.num_bins / 2
    keep = (torch.rand(b, 1, 1, generator=gen) >= config.state_dropout).to(states.device, states.dtype)
    return keep * (states + half_range * noise.to(states.device))


def _self_states(
    model: Any, batch: dict[str, torch.Tensor], unwrapped: Any, config: SFTConfig, step: int
) -> torch.Tensor:
    """``prev_listener`` with a ``self_states`` fraction of frames replaced by the policy's own previous sample.

    The head runs only on the frames whose sample is used, so the extra pass costs about ``self_states`` of one.
    Autoregressive and grouped heads score each dimension given the frame's true other values, so their
    samples are drawn dimension by dimension from those conditionals (close to, not exactly, the policy's).
    """
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step + 17)
    states = batch["prev_listener"].clone()
    valid = batch["frame_mask"].bool().cpu()
    pick = (torch.rand(valid[:, 1:].shape, generator=gen) < config.self_states) & valid[:, 1:] & valid[:, :-1]
    if not pick.any():
        return states
    need = torch.cat([pick, torch.zeros_like(pick[:, :1])], 1).to(states.device)  # frame t-1 of each pick
    with torch.no_grad():
        logits = model(**batch, head_mask=need).logits.float() / config.decode_temperature
    probs = torch.softmax(logits, -1).cpu()
    tokens = torch.multinomial(probs.flatten(0, -2), 1, generator=gen).view(probs.shape[:-1])
    later = states[:, 1:]
    later[pick.to(states.device)] = unwrapped.vla.decode_actions(tokens.to(states.device)).to(states.dtype)
    return states


def _token_accuracy(logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> float:
    hit = (logits.argmax(-1) == actions).float().mean(-1)
    return float((hit * mask).sum() / mask.sum().clamp(min=1))


def _log(writer: Any, step: int, loss: SFTLoss, charts: dict[str, float], prefix: str = "losses/") -> None:
    for name, value in loss._asdict().items():
        writer.add_scalar(f"{prefix}{name}", float(value.detach()), step)
    for name, value in charts.items():
        writer.add_scalar(name, value, step)


@torch.no_grad()
def evaluate_loss(
    model: Any, batches: list[dict[str, torch.Tensor]], config: SFTConfig, device: Any = "cpu"
) -> SFTLoss:
    """Mean SFT loss parts over batches (teacher forcing, whole clips)."""
    was_training = model.training
    model.eval()
    parts = []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        parts.append(
            _objective(
                model, out.logits, batch["actions"], batch["frame_mask"], out.frame_hidden, batch, config
            )
        )
    model.train(was_training)
    return SFTLoss(*(torch.stack([getattr(p, f) for p in parts]).mean() for f in SFTLoss._fields))


def _log_validation(
    writer: Any, step: int, model: Any, val: ClipBatcher, config: SFTConfig, device: Any
) -> None:
    loss = evaluate_loss(model, val.eval_batches(config.batch_size), config, device)
    _log(writer, step, loss, {}, prefix="losses/val_")


# --- checkpoints -----------------------------------------------------------------------------------------------
def save_checkpoint(
    out: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
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

    path = _save_atomically(out / f"{CHECKPOINT_PREFIX}{step:07d}", write)
    old = sorted(out.glob(f"{CHECKPOINT_PREFIX}*"), key=_checkpoint_step)[: -config.keep_checkpoints]
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)
    return path


class WeightAverage:
    """An exponential moving average of a model's trainable weights (``SFTConfig.ema_decay``)."""

    def __init__(self, model: Any, decay: float) -> None:
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


def _save_atomically(path: Path, write: Any) -> Path:
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def _checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX) :])


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint in a run directory, or None."""
    done = [p for p in Path(out).glob(f"{CHECKPOINT_PREFIX}*") if (p / TRAINER_STATE).exists() and p.is_dir()
            and p.name[len(CHECKPOINT_PREFIX) :].isdigit()]  # fmt: skip
    return max(done, key=_checkpoint_step) if done else None


def _load_trainer_state(path: Path, optimizer: Any, scheduler: Any) -> int:
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    return int(json.loads((path / TRAINER_STATE).read_text())["step"])


def _count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _markdown_table(values: dict[str, Any]) -> str:
    return "|field|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in values.items())
