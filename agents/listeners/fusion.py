"""How each baseline reads the speaker's motion at a unit: the windows it sees, and the encoder into the LM.

At unit ``u`` (frames ``u*U .. u*U+U-1``, ``U = unit_frames``) the listener decides before it has seen any frame
after ``u*U``, so both read the speaker frames up to and including ``u*U``, as the env shows them (zeros
before the clip starts), normalised with the training statistics.

- LM-listener (``--include-speaker`` in its code): one linear map of the last ``U`` speaker frames, added to the
  unit's input (its ``extra_input_layers["mot"]``).
- MMLHG fuses three cues: the words (as text tokens, like LM-listener), the speaker's *emotion* and the
  speaker's *acoustics*. It has no audio here; the speaker's FLAME parameters stand in, as the seed paper's
  re-implementation did: emotion from the expression values averaged per unit over the last
  ``emotion_units`` units (emotion changes slowly), acoustics from the jaw and head pose and their
  frame-to-frame change over the last unit (a talking jaw and a nodding head are what prosody shows on a
  face). A learned gate mixes the two per hidden channel.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from agents.listeners.configuration import CodeListenerConfig
from agents.vla.heads import MLP
from dyadic_env.expression_basis import EXPRESSION, POSE


def speaker_windows(
    speaker: np.ndarray, num_units: int, config: CodeListenerConfig, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """Normalised speaker windows (num_units, speaker_frames, 56): for unit ``u`` the frames ending at ``u*U``
    (zeros before frame 0, then normalised, as the env's zero padding is)."""
    frames, unit = config.speaker_frames, config.unit_frames
    speaker = np.asarray(speaker, np.float32)
    padded = np.concatenate([np.zeros((frames - 1, speaker.shape[1]), np.float32), speaker])
    starts = np.arange(num_units) * unit
    rows = starts[:, None] + np.arange(frames)[None]
    rows = np.minimum(rows, len(padded) - 1)  # a last unit past the clip's end repeats its final frame
    return ((padded[rows] - mean) / std).astype(np.float32)


class WindowProjector(nn.Module):
    """LM-listener: a linear map of the flattened last unit of speaker frames."""

    def __init__(self, config: CodeListenerConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.speaker_frames * 56, config.hidden_size)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, N, frames, 56) -> (B, N, hidden)."""
        return self.proj(windows.flatten(2))


class MultimodalFusion(nn.Module):
    """MMLHG: an emotion encoder and an acoustics (pose dynamics) encoder, mixed by a learned gate."""

    def __init__(self, config: CodeListenerConfig) -> None:
        super().__init__()
        h, self.unit, self.units = config.hidden_size, config.unit_frames, config.emotion_units
        expression, pose = EXPRESSION.stop - EXPRESSION.start, POSE.stop - POSE.start
        self.emotion = MLP(self.units * expression, h, h)
        self.acoustics = MLP(self.unit * 2 * pose, h, h)
        self.gate = nn.Linear(2 * h, h)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, N, emotion_units * unit, 56) -> (B, N, hidden)."""
        b, n = windows.shape[:2]
        per_unit = windows[..., EXPRESSION].reshape(b, n, self.units, self.unit, -1).mean(3)
        emotion = self.emotion(per_unit.flatten(2))
        pose = windows[..., -self.unit - 1 :, POSE]
        dynamics = torch.cat([pose[..., 1:, :], pose[..., 1:, :] - pose[..., :-1, :]], -1)
        acoustics = self.acoustics(dynamics.flatten(2))
        gate = torch.sigmoid(self.gate(torch.cat([emotion, acoustics], -1)))
        return gate * emotion + (1 - gate) * acoustics


def speaker_encoder(config: CodeListenerConfig) -> nn.Module:
    return MultimodalFusion(config) if config.variant == "mmlhg" else WindowProjector(config)
