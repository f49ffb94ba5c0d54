"""The VLA's exact trajectory log-probability inside trl's ``DPOTrainer``, nod decisions included.

trl scores a completion with a fused LM head: per-token log-probs of the flat token view. The listener's action
is more than its 56 tokens: with nod gestures (``gesture_frames > 0``) each frame also holds a decision (start a
nod or not) drawn from the onset head, and the tokens follow the nod's phase. The flat view cannot score that
decision, so plain trl DPO leaves *when to nod* to SFT, although engagement (responses after the speaker's
phrase ends) is where the best and worst of a rated group differ most (``docs/results/alignment.md``).

:func:`use_trajectory_logprobs` replaces the fused head of a policy (and its reference) with one that runs the
VLA's frame view, teacher-forced on the trajectory, and returns per-token log-probs whose sum is exactly
``log pi(A_{1:T} | S_{1:T})`` of paper eq. 11: each action token's log-prob, plus each frame's nod-decision
log-prob placed on that frame's first token. ``action_frames`` keeps the tokens of the first N frames only
(the nod decisions of every frame still count): a credit assignment that drops the token noise of later
frames, where a sampled listener only continues the expression it committed to. ``token_weight`` scales the
action tokens against the decisions instead (a weighted log-ratio, no longer eq. 11's exact sum).
``frame_window`` lets each frame see only the frames the sampler's cache keeps (the checkpoint's
``max_context_frames``): without it, frames after the window are scored under a longer past than they were
sampled with.

trl reads only ``log_probs`` of the reference and the policy's other outputs only as detached metrics (WPO's
``log_sum_sq_probs`` when it weights); on (B, T, 56, 256) logits those metrics cost as much as the network's
forward, so :func:`use_trajectory_logprobs` computes only the ``outputs`` asked for, without autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.utils import ModelOutput


@dataclass
class TrajectoryLogprobs(ModelOutput):
    """What trl's DPO reads of a fused forward: per-token values (B, L-1)."""

    log_probs: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    mean_logits: torch.Tensor | None = None
    is_top1: torch.Tensor | None = None
    log_sum_sq_probs: torch.Tensor | None = None


METRICS = ("entropy", "mean_logits", "is_top1", "log_sum_sq_probs")
"""The outputs besides ``log_probs`` that trl may read (all detached: metrics and WPO weights)."""


def use_trajectory_logprobs(
    model: Any,
    *,
    nod_decisions: bool = True,
    action_frames: int = 0,
    token_weight: float = 1.0,
    frame_window: int = 0,
    outputs: Sequence[str] = METRICS,
) -> None:
    """Make ``model(..., fused_lm_head=True)`` return the exact per-token log-probs (see the module docstring),
    with the metrics named in ``outputs`` (those not named are None: a reference needs none)."""
    unknown = sorted(set(outputs) - set(METRICS))
    if unknown:
        raise ValueError(f"outputs: unknown {unknown}; expected some of {list(METRICS)}")
    trl_forward = model.forward

    def forward(*args: Any, fused_lm_head: bool = False, labels: Any = None, **kwargs: Any) -> Any:
        if not fused_lm_head:
            return trl_forward(*args, labels=labels, **kwargs)
        return trajectory_token_logprobs(
            model,
            nod_decisions=nod_decisions,
            action_frames=action_frames,
            token_weight=token_weight,
            frame_window=frame_window,
            outputs=outputs,
            **kwargs,
        )

    model.forward = forward


def trajectory_token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    speaker_inputs: torch.Tensor,
    word_ids: torch.Tensor | None = None,
    word_mask: torch.Tensor | None = None,
    frame_mask: torch.Tensor | None = None,
    *,
    nod_decisions: bool = True,
    action_frames: int = 0,
    token_weight: float = 1.0,
    frame_window: int = 0,
    outputs: Sequence[str] = METRICS,
    **_: Any,
) -> TrajectoryLogprobs:
    """Per-token log-probs (B, L-1) of flat sequences ``input_ids`` under ``model`` (position p-1 scores token p),
    and the detached metrics named in ``outputs``."""
    from agents.vla.trl_support import actions_from_flat

    cfg = model.config
    actions, positions, valid = actions_from_flat(input_ids, cfg.num_bins, cfg.action_dim)
    b, t = speaker_inputs.shape[:2]
    pad = t - actions.shape[1]
    if pad > 0:
        actions = torch.cat([actions, actions.new_zeros(b, pad, actions.shape[2])], 1)
        positions = torch.cat([positions, positions.new_zeros(b, pad, positions.shape[2])], 1)
        valid = torch.cat([valid, valid.new_zeros(b, pad)], 1)
    mask = valid if frame_mask is None else frame_mask.bool() & valid
    out = model(
        speaker_inputs=speaker_inputs,
        actions=actions,
        word_ids=word_ids,
        word_mask=word_mask,
        frame_mask=mask,
        frame_window=frame_window,
    )
    logits = out.logits.float()
    log_p = torch.log_softmax(logits, -1)
    token = scored_action_logprobs(
        model, log_p, out.frame_hidden, actions, mask,
        nod_decisions=nod_decisions, action_frames=action_frames, token_weight=token_weight,
    )  # fmt: skip
    per_token = {"log_probs": token}
    with torch.no_grad():
        per_token |= {name: _METRIC[name](logits, log_p, actions) for name in outputs}
    return TrajectoryLogprobs(
        **{k: _to_flat(v, positions, mask, input_ids.shape[1]) for k, v in per_token.items()}
    )


_METRIC = {
    "entropy": lambda logits, log_p, actions: -(log_p.exp() * log_p).sum(-1),
    "mean_logits": lambda logits, log_p, actions: logits.mean(-1),
    "is_top1": lambda logits, log_p, actions: logits.argmax(-1) == actions,
    "log_sum_sq_probs": lambda logits, log_p, actions: torch.logsumexp(2 * log_p, -1),
}


def scored_action_logprobs(
    model: Any, log_p: torch.Tensor, frame_hidden: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
    *, nod_decisions: bool, action_frames: int, token_weight: float,
) -> torch.Tensor:  # fmt: skip
    """What DPO scores of each action token (B, T, 56), from the frame view's log-softmax ``log_p``: the token's
    log-prob (zero after ``action_frames`` when set) times ``token_weight``, plus, with ``nod_decisions``, the
    frame's nod-decision log-prob on its first token. Their sum is the trajectory's log-probability."""
    token = log_p.gather(-1, actions[..., None]).squeeze(-1)
    if action_frames:
        token = token * (torch.arange(token.shape[1], device=token.device) < action_frames)[None, :, None]
    token = token * token_weight
    if nod_decisions and model.vla.gestures:
        decisions = model.vla.gesture_logprobs(frame_hidden, actions, mask)
        token = torch.cat([token[..., :1] + decisions[..., None], token[..., 1:]], -1)
    return token


def _to_flat(values: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """Scatter per-action values (B, T, 56) to flat positions p - 1 of (B, L - 1); zeros elsewhere."""
    b = values.shape[0]
    flat = values.new_zeros(b, length)
    rows = torch.arange(b, device=values.device)[:, None, None].expand_as(positions)
    keep = mask[..., None].expand_as(positions)
    flat = flat.index_put((rows[keep], positions[keep] - 1), values[keep])
    return flat[:, :-1]
