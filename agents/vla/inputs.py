"""What the VLA network takes: a block of frames (:class:`FrameInputs`) and a cache to continue (:class:`FrameCache`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class FrameInputs:
    """Frames (B, T) for :meth:`agents.vla.network.VLAModel.frames`.

    Attributes:
        speaker_inputs: (B, T, speaker_dim) raw speaker features or motion (normalised by the network).
        prev_listener: (B, T, 56) the listener's previous frame for each frame (continuous).
        word_ids, word_mask: (B, T, W) text-token ids of the words heard in each frame, valid ids first.
        frame_mask: (B, T) bool, False for padding or invalid frames (they take no tokens). Default: all valid.
        actions: (B, T, 56) tokens; autoregressive mode feeds them as inputs (teacher forcing), a grouped head
            and gestures read them too.
        action_inputs: (B, T) bool, which frames feed their actions (autoregressive; default: all valid frames
            when ``actions`` is given). A frame being decoded feeds none.
        prev2_listener: (B, T, 56) the frame before each ``prev_listener`` (a head with velocity reads the step
            between them). Default: the previous row of ``prev_listener`` (teacher forcing over a block of
            frames); the first frame of the block then gets a zero step, so a cached caller that feeds one frame
            at a time must pass it.
        gesture_phases: (B, T) each frame's phase in a nod (gesture models). Default: found in ``actions``
            (teacher forcing); with neither, the action head is not run and the decoder samples the phase. The
            frame before the block counts as phase 0.
    """

    speaker_inputs: torch.Tensor
    prev_listener: torch.Tensor
    word_ids: torch.Tensor | None = None
    word_mask: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None
    actions: torch.Tensor | None = None
    action_inputs: torch.Tensor | None = None
    prev2_listener: torch.Tensor | None = None
    gesture_phases: torch.Tensor | None = None


@dataclass
class FrameCache:
    """The backbone's state after the frames fed so far, to continue from (all None: nothing fed yet).

    Attributes:
        past_key_values: the backbone's key-value cache.
        attention_mask: (B, past) the 2-D mask matching the cache.
        positions: (B,) tokens seen per sample (the next position id).
    """

    past_key_values: Any = None
    attention_mask: torch.Tensor | None = None
    positions: torch.Tensor | None = None
