"""Head nods as discrete gestures: found in data for teacher forcing, carried as a phase when decoding.

A listener's nod is one decision (start now) followed by about half a second of motion. Drawn frame by frame
from 256-bin pitch distributions, the decision is spread thin: the policy shifts each frame's distribution by a
bin or two, so sampling noise starts nods anywhere and the speaker's pauses barely move them (issue 5 notes).
With gestures on (``VLAConfig.gesture_frames > 0``) the network instead predicts, at each frame, the
probability that a nod starts (``gesture_logits``), and its action head reads the nod's *phase*: 0 when
no nod is under way, ``k`` on its ``k``-th frame. Teacher forcing takes onsets and phases from the data's head
pitch (:func:`nod_onsets`); closed-loop decoding samples the onset and carries the phase (:func:`next_phase`).
:class:`GestureMixin` gives the network (:class:`~agents.vla.network.VLAModel`) its gesture methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from agents.vla.configuration import VLAConfig
    from agents.vla.heads import ActionHead


def fill_padding(values: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) values with each padded frame replaced by the last valid one before it (the first, if none)."""
    t = torch.arange(values.shape[1], device=values.device).expand_as(values)
    last_valid = torch.where(frame_mask, t, torch.zeros_like(t)).cummax(dim=1).values
    return values.gather(1, last_valid)


def nod_onsets(
    pitch: torch.Tensor, frame_mask: torch.Tensor, half_width: int, threshold: float
) -> torch.Tensor:
    """(B, T) bool: the frames where a nod starts in head pitch ``pitch`` (B, T) (positive = down).

    A nod is a bump: at its peak the pitch stands at least ``threshold`` above both frames ``half_width`` away,
    and the peak is the highest bump within ``half_width`` frames. It starts at the last frame of lowest pitch
    in the ``half_width`` frames before the peak. Looks at the whole clip (not causal): for training targets only.
    """
    x = fill_padding(pitch.float(), frame_mask)
    h = half_width
    padded = torch.cat([x[:, :1].expand(-1, h), x, x[:, -1:].expand(-1, h)], dim=1)
    bump = x - torch.maximum(padded[:, : x.shape[1]], padded[:, 2 * h :])
    local_max = F.max_pool1d(bump[:, None], 2 * h + 1, stride=1, padding=h)[:, 0]
    peaks = (bump >= threshold) & (bump >= local_max) & frame_mask
    # The onset: the last frame at the lowest pitch in [peak - h, peak] (where the rise begins).
    before = padded[:, : x.shape[1] + h].unfold(1, h + 1, 1)  # (B, T, h + 1): frames t - h .. t
    offset = -before.flip(-1).argmin(-1)  # <= 0
    start = (torch.arange(x.shape[1], device=x.device) + offset).clamp(min=0)
    onsets = torch.zeros_like(peaks)
    rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(start)
    onsets[rows[peaks], start[peaks]] = True
    return onsets & frame_mask


def phases_from_onsets(onsets: torch.Tensor, length: int) -> torch.Tensor:
    """(B, T) long phase of every frame: ``k`` on the ``k``-th frame of a nod (``k <= length``), else 0."""
    t = torch.arange(onsets.shape[1], device=onsets.device).expand_as(onsets)
    last = torch.where(onsets, t, torch.full_like(t, -(length + 1))).cummax(dim=1).values
    since = t - last
    return torch.where(since < length, since + 1, torch.zeros_like(since))


def may_start(prev_phase: torch.Tensor, length: int) -> torch.Tensor:
    """Whether a nod may start after a frame of phase ``prev_phase``: none under way, or it just ended."""
    return (prev_phase == 0) | (prev_phase >= length)


def onset_allowed(phases: torch.Tensor, length: int) -> torch.Tensor:
    """(B, T) bool: the frames of a phase track where a new nod may start (:func:`may_start`)."""
    return may_start(torch.cat([torch.zeros_like(phases[:, :1]), phases[:, :-1]], dim=1), length)


def decision_logprob(logits: torch.Tensor, onsets: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Log-probability of each nod decision (start or not) under its onset logit; 0 where none may start."""
    logits = logits.float()
    logp = torch.where(onsets, F.logsigmoid(logits), F.logsigmoid(-logits))
    return logp * allowed.to(logp.dtype)


def next_phase(phase: torch.Tensor, onset: torch.Tensor, length: int) -> torch.Tensor:
    """The phase (B,) after one frame: 1 on an onset, else one frame further into a nod or 0 once it ends."""
    carried = torch.where((phase > 0) & (phase < length), phase + 1, torch.zeros_like(phase))
    return torch.where(onset, torch.ones_like(phase), carried)


def fit_nod_profile(
    listener_motions: Iterable[np.ndarray], length: int, dim: int, threshold: float
) -> list[float]:
    """The data's mean nod: the change of dimension ``dim`` since the frame before each onset, at each of the
    ``length`` frames of a nod (zeros when the data holds no nods)."""
    paths = []
    for motion in listener_motions:
        pitch = torch.tensor(np.asarray(motion)[:, dim], dtype=torch.float32)[None]
        onsets = nod_onsets(pitch, torch.ones_like(pitch, dtype=torch.bool), length // 2, threshold)[0]
        for t in torch.nonzero(onsets).flatten().tolist():
            if t >= 1 and t + length <= pitch.shape[1]:
                paths.append((pitch[0, t : t + length] - pitch[0, t - 1]).numpy())
    if not paths:
        return [0.0] * length
    return [round(float(v), 6) for v in np.mean(paths, axis=0)]


class GestureMixin:
    """The nod-gesture methods of :class:`~agents.vla.network.VLAModel`, which provides the attributes below."""

    config: VLAConfig
    gesture_head: nn.Linear | None
    gesture_offsets: torch.Tensor  # (gesture_frames + 1,) the mean nod's offset at each phase, 0 first
    action_head: ActionHead

    if TYPE_CHECKING:  # defined by VLAModel

        def decode_actions(self, tokens: torch.Tensor) -> torch.Tensor: ...

        def encode_actions(self, frames: torch.Tensor) -> torch.Tensor: ...

        def observed_states(self, states: torch.Tensor) -> torch.Tensor: ...

        def last_steps(
            self, prev_listener: torch.Tensor, prev2_listener: torch.Tensor | None, prev_tokens: torch.Tensor
        ) -> torch.Tensor | None: ...

    @property
    def gestures(self) -> int:
        """Frames of a nod gesture (0: the model has no gestures)."""
        return int(self.config.gesture_frames)

    def gesture_logits(self, frame_hidden: torch.Tensor) -> torch.Tensor:
        """(B, T) logit that a nod starts at each frame, from the frames' hidden states."""
        if self.gesture_head is None:
            raise ValueError("this model has no gestures; build it with gesture_frames > 0")
        return self.gesture_head(frame_hidden).squeeze(-1)

    def gesture_targets(
        self, actions: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nod onsets (B, T) bool and phases (B, T) long found in action tokens (B, T, 56) (teacher forcing)."""
        config = self.config
        mask = torch.ones(actions.shape[:2], dtype=torch.bool, device=actions.device)
        if frame_mask is not None:
            mask = frame_mask.bool()
        pitch = self.decode_actions(actions)[..., config.gesture_dim]
        onsets = nod_onsets(pitch, mask, config.gesture_frames // 2, config.gesture_threshold)
        return onsets, phases_from_onsets(onsets, config.gesture_frames)

    def gesture_hint(
        self, prev_listener: torch.Tensor, phases: torch.Tensor, prev_phases: torch.Tensor
    ) -> torch.Tensor:
        """Tokens (..., 56) the action head continues from: the previous frame's, with the nod dimension moved
        along the data's mean nod from the previous frame's phase to this one's (``gesture_profile``)."""
        step = self.gesture_offsets[phases] - self.gesture_offsets[prev_phases]
        moved = prev_listener.clone()
        moved[..., self.config.gesture_dim] = moved[..., self.config.gesture_dim] + step.to(moved.dtype)
        return self.encode_actions(moved)

    def gesture_logprobs(
        self, frame_hidden: torch.Tensor, actions: torch.Tensor, frame_mask: torch.Tensor,
        targets: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """(B, T) log-probability of each frame's nod decision (start one or not) where one may start, else 0.
        ``targets``: the :meth:`gesture_targets` of ``actions`` when the caller has them already."""
        onsets, phases = self.gesture_targets(actions, frame_mask) if targets is None else targets
        return decision_logprob(
            self.gesture_logits(frame_hidden), onsets, onset_allowed(phases, self.gestures)
        )

    def gesture_head_features(
        self, frame_hidden: torch.Tensor, prev_listener: torch.Tensor, prev2_listener: torch.Tensor | None,
        phase: torch.Tensor, prev_phase: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """Action head features (B, 56, head_hidden) of one frame given its sampled nod phase (B,) and the
        previous frame's (B,)."""
        prev_listener = self.observed_states(prev_listener)
        if prev2_listener is not None:
            prev2_listener = self.observed_states(prev2_listener)
        prev_tokens = self.encode_actions(prev_listener)
        steps = self.last_steps(
            prev_listener[:, None],
            None if prev2_listener is None else prev2_listener[:, None],
            prev_tokens[:, None],
        )
        return self.action_head.features(
            frame_hidden, self.gesture_hint(prev_listener, phase, prev_phase),
            last_steps=None if steps is None else steps[:, 0], phases=phase,
        )  # fmt: skip
