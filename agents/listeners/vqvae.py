"""A VQ-VAE over short windows of listener motion: one discrete code per ``unit_frames`` frames.

After LM-listener (whose VQ-VAE follows T2M-GPT): 1-D convolutions with dilated residual blocks halve time
``log2(unit_frames)`` times down to one vector per unit, which a codebook kept by exponential moving averages
quantizes (unused entries are reset to recent encoder outputs); the loss is smooth-L1 reconstruction plus a
velocity term and the commitment term.

Two choices are ours. The decoder is *causal*: the frames of unit ``u`` depend on codes ``<= u`` only, so a
listener can play a unit as soon as its code is drawn, window by window, without waiting for the future (the
original decodes whole clips offline). The encoder, used only on recorded listeners, sees the whole clip.

MMLHG's identity disentanglement (``style_dim > 0``): the encoder reads frames normalised with their
listener's own statistics (:meth:`~agents.listeners.CodeListenerModel.encoder_input`: instance normalisation
whose instance is the person), which strips the levels and scales a person's style lives in, so the codes keep
the motion; a style encoder turns a reference sequence of the listener into an identity vector, which re-scales
and shifts the decoder's channels (AdaIN's affine part). The decoder leaves out AdaIN's own normalisation:
statistics over time would read the future frames a causal decoder has not got.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from agents.listeners.configuration import CodeListenerConfig

DILATIONS = (1, 3)
"""Dilations of the residual blocks at every resolution (T2M-GPT uses 1, 3, 9 with longer windows)."""


class Quantized(NamedTuple):
    """Quantizer output: the straight-through vectors (B, D, N), codes (B, N), commitment loss, perplexity."""

    vectors: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    perplexity: torch.Tensor


class CausalConv(nn.Conv1d):
    """A 1-D convolution padded on the left only: output ``t`` reads inputs ``<= t``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x, (left, 0)))


class ResBlock(nn.Module):
    """``x + conv1(relu(conv3_dilated(relu(x))))``, causal or centred."""

    def __init__(self, width: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.conv: nn.Conv1d = (
            CausalConv(width, width, 3, dilation=dilation)
            if causal
            else nn.Conv1d(width, width, 3, dilation=dilation, padding=dilation)
        )
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


class EMACodebook(nn.Module):
    """Nearest-neighbour quantization into a codebook updated by exponential moving averages.

    ``decay`` smooths the updates; in training, an entry used less than ``reset_below`` times (in its moving
    count) is replaced by a random encoder output of the batch, so no code stays dead (T2M-GPT's ``ema_reset``).
    """

    embedding: torch.Tensor
    counts: torch.Tensor
    sums: torch.Tensor

    def __init__(self, size: int, dim: int, decay: float = 0.99, reset_below: float = 1.0) -> None:
        super().__init__()
        self.size, self.decay, self.reset_below = size, decay, reset_below
        self.register_buffer("embedding", torch.randn(size, dim) * 0.1)
        self.register_buffer("counts", torch.ones(size))
        self.register_buffer("sums", self.embedding.clone())

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest entry for every vector of ``z`` (N, D)."""
        distances = (z.pow(2).sum(1, keepdim=True) - 2 * z @ self.embedding.T
                     + self.embedding.pow(2).sum(1)[None])  # fmt: skip
        return distances.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.embedding)

    def forward(self, z: torch.Tensor) -> Quantized:
        """Quantize ``z`` (B, D, N); updates the codebook when training."""
        b, d, n = z.shape
        flat = z.permute(0, 2, 1).reshape(-1, d)
        codes = self.codes(flat.detach())
        if self.training:
            self._update(flat.detach(), codes)
        quantized = self.lookup(codes)
        commitment = F.mse_loss(flat, quantized.detach())
        one_hot = F.one_hot(codes, self.size).float().mean(0)
        perplexity = torch.exp(-(one_hot * torch.log(one_hot + 1e-10)).sum())
        straight = flat + (quantized - flat).detach()
        return Quantized(straight.view(b, n, d).permute(0, 2, 1), codes.view(b, n), commitment, perplexity)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        one_hot = F.one_hot(codes, self.size).to(flat.dtype)
        self.counts.mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)
        self.sums.mul_(self.decay).add_(one_hot.T @ flat, alpha=1 - self.decay)
        dead = self.counts < self.reset_below
        if dead.any():
            picks = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]
            self.sums[dead] = picks
            self.counts[dead] = 1.0
        self.embedding.copy_(self.sums / self.counts[:, None])


class UpBlock(nn.Module):
    """Causal residual blocks, then time doubled (nearest) and a causal convolution."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResBlock(width, d, True) for d in DILATIONS))
        self.conv = CausalConv(width, width, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(F.interpolate(self.blocks(h), scale_factor=2, mode="nearest")))


class MotionVQVAE(nn.Module):
    """Normalised listener frames (B, T, 56), T a multiple of ``unit_frames``, to codes (B, T / unit) and back.

    ``style`` (B, style_dim) is MMLHG's identity vector (:meth:`style_of`); None without identities.
    """

    def __init__(self, config: CodeListenerConfig) -> None:
        super().__init__()
        w, stages = config.vq_width, config.down_stages
        self.unit_frames, self.style_dim = config.unit_frames, config.style_dim
        self.encoder_in = nn.Conv1d(56, w, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(w, w, 4, stride=2, padding=1), *(ResBlock(w, d, False) for d in DILATIONS)
            )
            for _ in range(stages)
        )
        self.encoder_out = nn.Conv1d(w, config.code_dim, 3, padding=1)
        self.codebook = EMACodebook(config.codebook_size, config.code_dim)
        self.decoder_in = CausalConv(config.code_dim, w, 3)
        self.up = nn.ModuleList(UpBlock(w) for _ in range(stages))
        self.decoder_out = nn.Sequential(CausalConv(w, w, 3), nn.ReLU(), CausalConv(w, 56, 3))
        if config.style_dim:
            self.style_encoder = nn.Sequential(
                nn.Conv1d(56, w, 3, padding=1), nn.ReLU(), nn.Conv1d(w, w, 3, padding=1), nn.ReLU()
            )
            self.style_out = nn.Linear(2 * w, config.style_dim)
            self.modulation = nn.Linear(config.style_dim, 2 * w * (stages + 1))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Continuous unit vectors (B, code_dim, T / unit) before quantization."""
        if frames.shape[1] % self.unit_frames:
            raise ValueError(
                f"frames: expected a multiple of {self.unit_frames} frames, found {frames.shape[1]}"
            )
        h = F.relu(self.encoder_in(frames.transpose(1, 2)))
        for block in self.down:
            h = block(h)
        return self.encoder_out(F.relu(h))

    def decode(self, vectors: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, N * unit, 56) from unit vectors (B, code_dim, N); frame ``t`` reads units ``<= t // unit``."""
        films = self._films(style, vectors.shape[0])
        h = self._film(self.decoder_in(vectors), films, 0)
        for i, block in enumerate(self.up):
            h = self._film(block(h), films, i + 1)
        return self.decoder_out(F.relu(h)).transpose(1, 2)

    def decode_codes(self, codes: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, N * unit, 56) of codes (B, N)."""
        return self.decode(self.codebook.lookup(codes).transpose(1, 2), style)

    def forward(
        self, frames: torch.Tensor, style: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Quantized]:
        """The decoded frames (B, T, 56) of the encoder's input ``frames``, and the quantizer's output."""
        quantized = self.codebook(self.encode(frames))
        return self.decode(quantized.vectors, style), quantized

    def style_of(self, reference: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Identity vectors (B, style_dim) of normalised reference frames (B, T, 56) (``mask`` (B, T): real frames):
        the mean and standard deviation over time of convolutional features, projected."""
        h = self.style_encoder(reference.transpose(1, 2))
        weights = torch.ones_like(h[:, :1]) if mask is None else mask[:, None].to(h.dtype)
        total = weights.sum(-1).clamp(min=1.0)
        mean = (h * weights).sum(-1) / total
        std = (((h - mean[..., None]) ** 2 * weights).sum(-1) / total).clamp(min=1e-6).sqrt()
        return self.style_out(torch.cat([mean, std], -1))

    def _films(self, style: torch.Tensor | None, batch: int) -> list[torch.Tensor] | None:
        if not self.style_dim:
            return None
        if style is None:
            raise ValueError("this VQ-VAE decodes with an identity: pass style (B, style_dim), see style_of")
        return list(self.modulation(style.expand(batch, -1)).chunk(2 * len(self.up) + 2, dim=-1))

    @staticmethod
    def _film(h: torch.Tensor, films: list[torch.Tensor] | None, i: int) -> torch.Tensor:
        if films is None:
            return h
        return h * (1 + films[2 * i][..., None]) + films[2 * i + 1][..., None]


def vq_loss(
    recon: torch.Tensor, target: torch.Tensor, commitment: torch.Tensor, *, velocity: float, commit: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """LM-listener's VQ objective: smooth-L1 reconstruction, ``velocity`` x the same on frame-to-frame changes,
    ``commit`` x the commitment term. Returns (total, reconstruction)."""
    reconstruction = F.smooth_l1_loss(recon, target)
    moving = F.smooth_l1_loss(recon[:, 1:] - recon[:, :-1], target[:, 1:] - target[:, :-1])
    return reconstruction + velocity * moving + commit * commitment, reconstruction
