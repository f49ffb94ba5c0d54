"""The SFT objective (paper eqs. 7-9) plus the auxiliary speaker and nod-onset terms.

``L = lambda_exp * CE_exp + lambda_pose * CE_pose + lambda_temp * L_temp`` where, per clip, ``CE_exp`` is the
cross-entropy of the 50 expression tokens of a frame (mean over those dimensions) averaged over the clip's
frames (eq. 7), ``CE_pose`` the same over the 6 pose tokens, and ``L_temp`` (eq. 8) the mean over consecutive
frames of ``||a_{t+1} - a_t||^2`` (expression plus pose) of the *expected* continuous action
``a_t = sum_k softmax(logits_t)_k * bin_centre_k``, which keeps the term differentiable. Clip losses are
averaged over the batch (the ``1/N`` of eq. 8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import nn

from agents.vla.gestures import onset_allowed
from agents.vla.sft.config import SFTConfig

if TYPE_CHECKING:
    from agents.vla.modeling import VLAForListening


class SFTLoss(NamedTuple):
    """The SFT objective and its parts (each a scalar tensor)."""

    total: torch.Tensor
    ce_expression: torch.Tensor
    ce_pose: torch.Tensor
    temporal: torch.Tensor
    speaker: torch.Tensor  # the auxiliary speaker prediction error (lambda_speaker; 0 when off)
    gesture: torch.Tensor  # the nod-onset cross-entropy (gesture models; 0 otherwise)


class ScoredFrames(NamedTuple):
    """What one step scores: logits (B, T, 56, bins), target tokens (B, T, 56), their frame mask (B, T) and
    the hidden state of every frame (B, T', H) for the speaker and nod-onset terms."""

    logits: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    frame_hidden: torch.Tensor


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
    temporal = _temporal(logp, m, bin_centers) if lambda_temp else ce.new_zeros(())
    total = lambda_exp * ce_exp + lambda_pose * ce_pose + lambda_temp * temporal
    return SFTLoss(total, ce_exp, ce_pose, temporal, ce.new_zeros(()), ce.new_zeros(()))


def _temporal(logp: torch.Tensor, m: torch.Tensor, bin_centers: torch.Tensor) -> torch.Tensor:
    """Eq. 8: the mean squared step of the expected action between consecutive real frames, averaged over clips."""
    # Expected action from the same log-softmax: one pass fewer over the (B, T, D, K) logits.
    soft = torch.einsum("btdk,dk->btd", logp.exp(), bin_centers.float())
    pair = m[:, 1:] * m[:, :-1]
    step = ((soft[:, 1:] - soft[:, :-1]) ** 2).sum(-1)
    per_clip = (step * pair).sum(1) / pair.sum(1).clamp(min=1)
    has_pairs = pair.sum(1) > 0
    return per_clip[has_pairs].mean() if bool(has_pairs.any()) else logp.new_zeros(())


def training_loss(
    model: nn.Module, unwrapped: VLAForListening, batch: dict[str, torch.Tensor], config: SFTConfig, step: int
) -> tuple[SFTLoss, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step's objective (eqs. 7-9 plus the speaker and nod-onset terms when on), with the scored logits,
    target tokens and mask. ``model`` may be wrapped (accelerate); ``unwrapped`` is the VLA itself."""
    scored = scored_frames(model, batch, config, step, unwrapped.vla.autoregressive)
    loss = objective(unwrapped, scored, batch, config)
    return loss, scored.logits, scored.actions, scored.mask


def objective(
    model: VLAForListening, scored: ScoredFrames, batch: dict[str, torch.Tensor], config: SFTConfig
) -> SFTLoss:
    """Eqs. 7-9 on the scored frames, plus the speaker and nod-onset terms (on all frames) when on."""
    loss = sft_loss(
        scored.logits, scored.actions, scored.mask, model.vla.bin_centers,
        lambda_exp=config.lambda_exp, lambda_pose=config.lambda_pose, lambda_temp=config.lambda_temp,
        expression_dim=model.config.expression_dim,
    )  # fmt: skip
    if config.lambda_speaker:
        mask = batch["frame_mask"].bool()
        error = model.vla.speaker_prediction_error(scored.frame_hidden, batch["speaker_inputs"], mask)
        loss = loss._replace(total=loss.total + config.lambda_speaker * error, speaker=error)
    if model.vla.gestures:
        error = _nod_onset_error(model, scored.frame_hidden, batch)
        loss = loss._replace(total=loss.total + config.lambda_gesture * error, gesture=error)
    return loss


def scored_frames(
    model: nn.Module, batch: dict[str, torch.Tensor], config: SFTConfig, step: int, autoregressive: bool
) -> ScoredFrames:
    """Logits, target tokens and frame mask to score: all frames, or disjoint random pairs of neighbours."""
    if config.loss_frames >= 1 or autoregressive:
        out = model(**batch)
        return ScoredFrames(out.logits, batch["actions"], batch["frame_mask"], out.frame_hidden)
    head_mask = pair_mask(
        batch["frame_mask"], config.loss_frames, np.random.default_rng([config.seed, step, 2])
    )
    out = model(**batch, head_mask=head_mask.to(batch["actions"].device))
    pairs = out.logits.shape[0] // 2
    actions = batch["actions"][head_mask].view(pairs, 2, -1)
    logits = out.logits.view(pairs, 2, *out.logits.shape[1:])
    return ScoredFrames(logits, actions, torch.ones(pairs, 2, dtype=torch.bool), out.frame_hidden)


def _nod_onset_error(
    model: VLAForListening, frame_hidden: torch.Tensor, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """The mean negative log-likelihood of the data's nod decisions (start or not, where one may start)."""
    targets = model.vla.gesture_targets(batch["actions"], batch["frame_mask"])
    logp = model.vla.gesture_logprobs(frame_hidden, batch["actions"], batch["frame_mask"], targets)
    phases = targets[1]
    scored = (onset_allowed(phases, model.vla.gestures) & batch["frame_mask"].bool()).to(logp.dtype)
    return -(logp * scored).sum() / scored.sum().clamp(min=1)


def pair_mask(frame_mask: torch.Tensor, fraction: float, rng: np.random.Generator) -> torch.Tensor:
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


@torch.no_grad()
def evaluate_loss(
    model: VLAForListening,
    batches: list[dict[str, torch.Tensor]],
    config: SFTConfig,
    device: str | torch.device = "cpu",
) -> SFTLoss:
    """Mean SFT loss parts over batches (teacher forcing, whole clips)."""
    was_training = model.training
    model.eval()
    parts = []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        scored = ScoredFrames(out.logits, batch["actions"], batch["frame_mask"], out.frame_hidden)
        parts.append(objective(model, scored, batch, config))
    model.train(was_training)
    return SFTLoss(*(torch.stack([getattr(p, f) for p in parts]).mean() for f in SFTLoss._fields))
