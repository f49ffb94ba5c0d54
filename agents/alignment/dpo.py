"""DPO (paper eq. 11) of the listener VLA through trl's ``DPOTrainer``.

For a speaker clip S and preferred / dispreferred listener trajectories A^w, A^l (T x 56 tokens):

    L = -log sigmoid( beta * [log pi(A^w|S) - log pi_ref(A^w|S)] - beta * [log pi(A^l|S) - log pi_ref(A^l|S)] )

with ``log pi(A|S) = sum_t sum_d log pi(a_{t,d} | S_{1:t}, A_{1:t-1})``, the closed-loop trajectory's log-probability
under teacher forcing. trl computes it: the VLA gives trl a flat token-per-action view (``agents.vla.trl_support``)
whose fused LM head scores exactly the policy's per-token log-probabilities, and the reference is a frozen copy of
the SFT policy (``ref_model``). ``loss_type`` picks trl's variants: ``sigmoid`` is eq. 11; ``ipo``, ``hinge`` and
``robust`` (label smoothing as the assumed flip rate) are checked against their formulas in the tests. trl logs
``rewards/chosen``, ``rewards/rejected``, ``rewards/margins`` and ``rewards/accuracies``; they go to TensorBoard.

This module sits in the agents layer, below human feedback: it takes any sequence of pair objects with
``clip_id``, ``chosen_tokens`` and ``rejected_tokens`` (``human_feedback.PreferencePair`` fits) and a way to look
clips up.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust", "sigmoid_norm", "exo_pair", "nca_pair", "bco_pair", "apo_zero",
              "apo_down", "sppo_hard", "discopop", "sft")  # fmt: skip


class PairLike(Protocol):
    """What DPO reads of a preference pair."""

    clip_id: str
    chosen_tokens: np.ndarray
    rejected_tokens: np.ndarray


@dataclass(frozen=True)
class TrajectoryPair:
    """A preference pair in memory: the clip and two ``(T, 56)`` token trajectories, chosen first, with each
    side's mean rating per criterion where known (a reward model's criteria head learns from them)."""

    clip_id: str
    chosen_tokens: np.ndarray
    rejected_tokens: np.ndarray
    margin: float = 0.0
    chosen_criteria: Mapping[str, float] = field(default_factory=dict)
    rejected_criteria: Mapping[str, float] = field(default_factory=dict)


@dataclass
class DPOTrainingConfig:
    """DPO settings (``dyadic train dpo --config experiments/configs/dpo_*.yaml``).

    Attributes:
        beta: strength of the implicit KL constraint (eq. 11).
        loss_type: trl loss(es): ``sigmoid`` (eq. 11), ``ipo``, ``hinge``, ``robust``, ... ; a list sums them.
        loss_weights: weights of the listed losses (default 1 each).
        label_smoothing: the ``robust`` loss's assumed label-flip rate (and cDPO's smoothing).
        learning_rate: AdamW peak learning rate.
        num_epochs: passes over the pairs.
        batch_size: pairs per step.
        gradient_accumulation_steps: steps accumulated per optimizer update.
        warmup_ratio: share of steps with linear warmup.
        lr_scheduler_type: transformers scheduler name.
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient clipping.
        precompute_ref_log_probs: compute the reference log-probs once before training (frees the reference).
        max_frames: train on the first ``max_frames`` frames of each trajectory (0: whole trajectories). The
            log-probabilities of a prefix are exact (the closed loop has no future), so this is eq. 11 on
            truncated trajectories, with the pair's label. Short prefixes are also a credit assignment: the
            policy conditions on its own past, so a sampled listener commits to a response in its first frames
            and then continues it; later frames carry the label's signal only through that commitment, while
            each adds 56 tokens of sampling noise to the log-ratio (prefix lengths were compared in the issue 7
            notes). With gestures the nods in a prefix are found in the prefix itself, so a
            nod cut by its end may go unseen.
        nod_decisions: score each frame's nod decision too (models with gestures), so DPO also learns *when to
            nod*; trl's token view cannot, see :mod:`agents.alignment.trajectory_logprobs`.
        action_frames: only the action tokens of the first N frames enter the log-ratio (0: all); with
            ``nod_decisions`` the decisions of every frame still count.
        token_weight: scales the action tokens' log-probs against the nod decisions' (1: eq. 11's exact sum).
            Below 1 the implicit reward is a weighted log-ratio: expression choices anywhere in a clip get credit
            (with ``action_frames: 0``) without their token noise drowning the decisions of when to nod.
        cache_window: score each frame with only the past the sampler's cache keeps (the checkpoint's
            ``max_context_frames``), so the log-ratio is that of the policy that samples the trajectories (off:
            every frame sees the whole past, as protocol alignment-v1's rows were trained).
        logging_steps: steps between logged metrics.
        seed: seeds trl/transformers (data order, dropout).
        num_threads: torch CPU threads (0 leaves torch's default).
    """

    beta: float = 0.1
    loss_type: str | list[str] = "sigmoid"
    loss_weights: list[float] | None = None
    label_smoothing: float = 0.0
    learning_rate: float = 5e-5
    num_epochs: float = 3.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precompute_ref_log_probs: bool = False
    max_frames: int = 0
    nod_decisions: bool = False
    action_frames: int = 0
    token_weight: float = 1.0
    cache_window: bool = False
    logging_steps: int = 5
    seed: int = 0
    num_threads: int = 0
    extra_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        types = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        unknown = [t for t in types if t not in LOSS_TYPES]
        if not types or unknown:
            raise ValueError(
                f"dpo config: loss_type {unknown or types} unknown; choose from {', '.join(LOSS_TYPES)}"
            )
        if self.loss_weights is not None and len(self.loss_weights) != len(types):
            raise ValueError(f"dpo config: {len(self.loss_weights)} loss_weights for {len(types)} loss types")
        if self.beta <= 0:
            raise ValueError(f"dpo config: beta must be > 0, found {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"dpo config: label_smoothing must be in [0, 0.5), found {self.label_smoothing}")
        if self.action_frames < 0:
            raise ValueError(f"dpo config: action_frames must be >= 0 (0: all), found {self.action_frames}")
        if not 0 < self.token_weight <= 1:
            raise ValueError(f"dpo config: token_weight must be in (0, 1], found {self.token_weight}")
        if self.max_frames < 0:
            raise ValueError(
                f"dpo config: max_frames must be >= 0 (0: whole trajectories), found {self.max_frames}"
            )
        if self.learning_rate <= 0 or self.num_epochs <= 0 or self.batch_size < 1:
            raise ValueError("dpo config: learning_rate and num_epochs must be > 0 and batch_size >= 1")

    @property
    def loss_types(self) -> list[str]:
        return [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DPOTrainingConfig:
        from dyadic_env.config import config_from_dict

        return config_from_dict(cls, values, "dpo config")


def preference_rows(pairs: Sequence[PairLike], max_frames: int = 0) -> list[dict[str, str]]:
    """trl preference rows (``clip_id``, ``prompt``, ``chosen``, ``rejected``), skipping identical trajectories.

    With ``max_frames`` > 0 trajectories are cut to their first ``max_frames`` frames.
    """
    from agents.vla.trl_support import preference_row

    rows = []
    cut = slice(0, max_frames or None)
    for pair in pairs:
        chosen, rejected = np.asarray(pair.chosen_tokens)[cut], np.asarray(pair.rejected_tokens)[cut]
        if chosen.shape != rejected.shape:
            raise ValueError(
                f"pair for clip {pair.clip_id!r}: chosen {chosen.shape} and rejected {rejected.shape} trajectories "
                "must have the same shape"
            )
        if np.array_equal(chosen, rejected):
            continue  # no preference signal, and DPO's gradient would be zero anyway
        rows.append(preference_row(pair.clip_id, chosen, rejected))
    return rows


def make_dpo_trainer(
    policy: Any,
    pairs: Sequence[PairLike],
    clips: Mapping[str, Any] | Callable[[str], Any],
    config: DPOTrainingConfig,
    output_dir: str | os.PathLike,
    *,
    log_dir: str | os.PathLike | None = None,
    reference: Any = None,
) -> Any:
    """A trl ``DPOTrainer`` for the VLA ``policy`` on ``pairs`` (reference: a frozen copy of ``policy``).

    Args:
        policy: a ``VLAForListening`` with its processor; trained in place.
        pairs: preference pairs (``clip_id``, ``chosen_tokens``, ``rejected_tokens``).
        clips: clip id -> ``Clip`` (a mapping or e.g. ``dataset.clip``).
        config: DPO settings.
        output_dir: trl's working directory.
        log_dir: TensorBoard directory (default ``output_dir/tb``).
        reference: the reference policy (default: a frozen deep copy of ``policy`` as it is now).
    """
    import datasets
    import torch
    from transformers.integrations import TensorBoardCallback
    from trl import DPOConfig, DPOTrainer

    from agents.vla.trl_support import VLAPreferenceCollator, build_preference_tokenizer

    if getattr(policy, "processor", None) is None:
        raise ValueError(
            "policy has no processor (tokenizers); load it with VLAForListening.from_pretrained(dir)"
        )
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    rows = preference_rows(pairs, config.max_frames)
    if not rows:
        raise ValueError(
            "DPO needs at least one preference pair whose chosen and rejected trajectories differ"
        )
    output_dir = Path(output_dir)
    ref = reference if reference is not None else copy.deepcopy(policy)
    ref.eval().requires_grad_(False)
    args = DPOConfig(
        output_dir=str(output_dir), beta=config.beta, loss_type=config.loss_types, loss_weights=config.loss_weights,
        label_smoothing=config.label_smoothing, learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler_type, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, precompute_ref_log_probs=config.precompute_ref_log_probs,
        logging_steps=config.logging_steps, seed=config.seed, data_seed=config.seed,
        # CPU-friendly and exact: fp32, no checkpointing; trajectories are long (56 tokens a frame): no cut.
        bf16=False, fp16=False, use_cpu=not torch.cuda.is_available(), gradient_checkpointing=False,
        max_length=None, remove_unused_columns=False, save_strategy="no", report_to="none",
        dataloader_num_workers=0, disable_tqdm=True, **config.extra_args,
    )  # fmt: skip
    writer = _summary_writer(log_dir or output_dir / "tb")
    trainer = DPOTrainer(
        model=policy, ref_model=None if config.precompute_ref_log_probs else ref, args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=build_preference_tokenizer(policy.config.num_bins),
        data_collator=_collator(VLAPreferenceCollator, policy, clips, config.max_frames),
        callbacks=[TensorBoardCallback(tb_writer=writer)],
    )  # fmt: skip
    if config.precompute_ref_log_probs and reference is not None:
        raise ValueError(
            "precompute_ref_log_probs uses the policy itself as reference; do not pass reference"
        )
    from transformers.trainer_callback import PrinterCallback

    # Metrics go to TensorBoard and dpo_log.jsonl; printing every logged step drowns pipeline logs.
    trainer.remove_callback(PrinterCallback)
    if config.nod_decisions or config.action_frames or config.token_weight != 1.0 or config.cache_window:
        from agents.alignment.trajectory_logprobs import METRICS, use_trajectory_logprobs

        # trl reads the policy's metrics (WPO's weights only when it weights) and only log-probs of the reference.
        policy_outputs = [m for m in METRICS if m != "log_sum_sq_probs" or trainer.use_weighting]
        for model, outputs in ((trainer.model, policy_outputs), (trainer.ref_model, [])):
            if model is not None:
                window = (
                    int(getattr(model.config, "max_context_frames", 0) or 0) if config.cache_window else 0
                )
                use_trajectory_logprobs(
                    model, nod_decisions=config.nod_decisions, action_frames=config.action_frames,
                    token_weight=config.token_weight, frame_window=window, outputs=outputs,
                )  # fmt: skip
    return trainer


def train_dpo(
    policy_path: str | os.PathLike,
    pairs: Sequence[PairLike],
    clips: Mapping[str, Any] | Callable[[str], Any],
    config: DPOTrainingConfig,
    out: str | os.PathLike,
    *,
    log_dir: str | os.PathLike | None = None,
) -> tuple[Path, dict[str, float]]:
    """DPO from the checkpoint at ``policy_path``; writes the aligned policy to ``out`` (atomically).

    Returns the checkpoint directory and the last logged trl metrics (``rewards/accuracies``, ...). ``out`` also
    holds ``dpo_config.json``, ``dpo_log.jsonl`` (every logged step) and, by default, TensorBoard logs (``tb/``).
    """
    from agents.vla import VLAForListening

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    policy = VLAForListening.from_pretrained(policy_path)
    trainer = make_dpo_trainer(
        policy, pairs, clips, config, partial / "trl", log_dir=log_dir or partial / "tb"
    )
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h or "rewards/accuracies" in h]
    policy.save_pretrained(partial)
    (partial / "dpo_config.json").write_text(
        json.dumps({**asdict(config), "policy": str(policy_path), "num_pairs": len(pairs)}, indent=1)
    )
    with (partial / "dpo_log.jsonl").open("w") as f:
        for entry in trainer.state.log_history:
            f.write(json.dumps(entry) + "\n")
    shutil.rmtree(partial / "trl", ignore_errors=True)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    last = history[-1] if history else {}
    return out, {k: float(v) for k, v in last.items() if isinstance(v, (int, float))}


def _collator(base: type, policy: Any, clips: Any, max_frames: int) -> Any:
    """The VLA's trl collator; with ``max_frames`` its speaker context is cut like the trajectories."""
    collator = base(policy.processor, clips, policy.config.num_bins)
    if not max_frames:
        return collator
    lookup = clips.__getitem__ if isinstance(clips, Mapping) else clips
    processor = policy.processor

    def context(clip_ids: Sequence[str], repeat: int = 1) -> dict[str, Any]:
        examples = [processor.clip_example(lookup(cid), length=max_frames) for cid in clip_ids]
        batch = processor.collate(examples * repeat)
        return {k: batch[k] for k in ("speaker_inputs", "word_ids", "word_mask", "frame_mask")}

    collator.context = context
    return collator


def _summary_writer(log_dir: str | os.PathLike) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))
