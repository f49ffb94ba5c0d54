"""The previous-frame states SFT trains on: the data's, perturbed (noise, offsets, dropout) or the policy's own.

Teacher forcing hands every frame the recorded previous frame, so a network can learn to copy it and ignore the
speaker; in closed loop the states carry the policy's own sampling noise. These perturbations close that gap.
All draws come from generators seeded by ``(seed, step)``, so a resumed run replays them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from agents.vla.sft.config import SFTConfig

if TYPE_CHECKING:
    from agents.vla.modeling import VLAForListening


def noisy_states(states: torch.Tensor, model: VLAForListening, config: SFTConfig, step: int) -> torch.Tensor:
    """``states`` (B, T, 56) with ``state_noise``/``pose_state_noise`` per frame, one ``state_offset`` per clip and
    expression dimension, and whole clips zeroed with probability ``state_dropout``."""
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


def sampled_states(
    model: nn.Module, batch: dict[str, torch.Tensor], unwrapped: VLAForListening, config: SFTConfig, step: int
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
        logits = model(**batch, head_mask=need).logits.float() / unwrapped.config.decode_temperature
    probs = torch.softmax(logits, -1).cpu()
    tokens = torch.multinomial(probs.flatten(0, -2), 1, generator=gen).view(probs.shape[:-1])
    later = states[:, 1:]
    later[pick.to(states.device)] = unwrapped.vla.decode_actions(tokens.to(states.device)).to(states.dtype)
    return states
