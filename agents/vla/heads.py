"""The VLA's small heads: the MLP of the visual projector and state encoder, and the action head.

The action head reads one frame's 56 action tokens off a hidden state (parallel decoding) or one token at a
time (autoregressive); its ``lm_head`` is the only part trl's fused log-prob kernel sees.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """Linear, GELU, Linear: the paper's ``MLP^vis`` projector and the state encoder."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ActionHead(nn.Module):
    """Per-dimension action logits: ``lm_head(norm(gelu(up(h) + query_j + prev_embed(prev_token_j) + c_j)))``.

    ``up(h)`` is computed once per frame and shared by the 56 dimensions; the learned query of dimension ``j``
    shifts it before the non-linearity, so each dimension reads its own features. The embedding of the
    dimension's previous token (the listener's last frame, which is in the context anyway) hands the head the
    exact bin to continue from, so smooth motion is cheap to learn. About ``56 * head_hidden * num_bins``
    multiply-adds a frame. ``lm_head`` (``Linear(head_hidden, num_bins)``) is the only part that trl's fused
    log-prob kernel sees.

    With ``groups > 1`` the dimensions are split into that many contiguous groups decoded in order, and
    ``c_j`` is a masked linear map of the current frame's values of the earlier groups (zero otherwise): the
    frame's tokens are then drawn from ``prod_g p(group g | context, groups < g)`` instead of 56 independent
    marginals, so a sampled face can commit to one response (a smile in every smile dimension) instead of
    mixing the responses the speaker allows. Training still scores all 56 tokens in one pass (teacher forcing
    gives the earlier groups); decoding runs the head once per group, the backbone once per frame.
    """

    group_mask: torch.Tensor

    def __init__(
        self, hidden: int, head_hidden: int, action_dim: int, num_bins: int, head_state: bool = True,
        groups: int = 1, velocity: int = 0, gesture_frames: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.velocity = velocity
        # One table per dimension: expression steps tend to reverse (noise), head steps to carry on (a nod).
        self.step_embed = nn.Embedding(action_dim * (2 * velocity + 1), head_hidden) if velocity else None
        # One table per dimension too: frame k of a nod moves the pitch one way and may raise the brows.
        self.phase_embed = (
            nn.Embedding(action_dim * (gesture_frames + 1), head_hidden) if gesture_frames else None
        )
        self.up = nn.Linear(hidden, head_hidden)
        self.query = nn.Parameter(torch.zeros(action_dim, head_hidden))
        self.prev_embed = nn.Embedding(num_bins, head_hidden) if head_state else None
        self.norm = nn.LayerNorm(head_hidden)
        self.lm_head = nn.Linear(head_hidden, num_bins)
        # Plain ints, not tensors: from_pretrained builds the module on the meta device.
        bounds = [round(action_dim * g / groups) for g in range(groups + 1)]
        self.groups = [list(range(a, b)) for a, b in pairwise(bounds)]
        # Zero at initialisation: a grouped head starts as the independent one.
        self.couple = nn.Parameter(torch.zeros(action_dim, head_hidden, action_dim)) if groups > 1 else None
        self.register_buffer("group_mask", torch.zeros(action_dim, action_dim), persistent=False)
        if self.group_mask.device.type != "meta":
            self.reset_buffers()

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """``group_mask[j, i]`` is 1 where dimension ``j``'s group comes after dimension ``i``'s."""
        group_of = torch.tensor(
            [g for g, dims in enumerate(self.groups) for _ in dims], device=self.group_mask.device
        )
        self.group_mask.copy_((group_of[:, None] > group_of[None, :]).float())

    @property
    def grouped(self) -> bool:
        return self.couple is not None

    def _coupling(self, current: torch.Tensor, dims: list[int] | slice = slice(None)) -> torch.Tensor:
        """(..., 56) normalised current values -> (..., len(dims), head_hidden) inputs from earlier groups."""
        assert self.couple is not None
        weight = self.couple[dims] * self.group_mask[dims][:, None, :]
        return torch.einsum("...i,dki->...dk", current.to(weight.dtype), weight)

    def features(
        self,
        h: torch.Tensor,
        prev_tokens: torch.Tensor,
        per_dim: bool = False,
        current: torch.Tensor | None = None,
        last_steps: torch.Tensor | None = None,
        phases: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``h`` (..., H) -> (..., 56, head_hidden); with ``per_dim``, ``h`` is already (..., 56, H).

        ``prev_tokens`` (..., 56) are the tokens of the listener's previous frame; ``current`` (..., 56) the
        normalised values of the frame being scored (teacher forcing; a grouped head needs them);
        ``last_steps`` (..., 56) the token change between the two previous frames (``velocity`` > 0);
        ``phases`` (...) the frame's phase in a nod (``gesture_frames`` > 0).
        """
        u = self.up(h) if per_dim else self.up(h).unsqueeze(-2)
        u = u + self.query
        if self.prev_embed is not None:
            u = u + self.prev_embed(prev_tokens)
        if self.step_embed is not None:
            if last_steps is None:
                raise ValueError("an action head with velocity needs the last step of each dimension")
            v = self.velocity
            table = torch.arange(last_steps.shape[-1], device=last_steps.device) * (2 * v + 1) + v
            u = u + self.step_embed(last_steps.clamp(-v, v) + table)
        if self.phase_embed is not None:
            if phases is None:
                raise ValueError("an action head with gestures needs each frame's phase in a nod")
            dims = prev_tokens.shape[-1]
            rows = phases[..., None] * dims + torch.arange(dims, device=phases.device)
            u = u + self.phase_embed(rows)
        if self.couple is not None:
            if current is None:
                raise ValueError(
                    "a grouped action head needs the frame's actions to score it (teacher forcing)"
                )
            u = u + self._coupling(current)
        return self.norm(F.gelu(u))

    def group_logits(
        self, up_h: torch.Tensor, prev_tokens: torch.Tensor, current: torch.Tensor, dims: list[int]
    ) -> torch.Tensor:
        """Logits (B, len(dims), bins) of one group from ``up(h)`` (B, head_hidden) and the groups before it."""
        u = up_h[:, None, :] + self.query[dims] + self._coupling(current, dims)
        if self.prev_embed is not None:
            u = u + self.prev_embed(prev_tokens[:, dims])
        return self.lm_head(self.norm(F.gelu(u)))

    def step(self, h: torch.Tensor, prev_token: torch.Tensor, dim: int) -> torch.Tensor:
        """Logits (B, num_bins) of one dimension from a hidden state (B, H) (autoregressive decoding)."""
        u = self.up(h) + self.query[dim]
        if self.prev_embed is not None:
            u = u + self.prev_embed(prev_token)
        return self.lm_head(self.norm(F.gelu(u)))
