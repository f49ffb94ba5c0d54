"""The motion VQ-VAE: a round trip on a tiny case, a causal decoder, a codebook without dead entries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.listeners.configuration import CodeListenerConfig
from agents.listeners.vqvae import EMACodebook, MotionVQVAE, vq_loss


def _config(**fields):
    return CodeListenerConfig(vq_width=32, codebook_size=16, code_dim=8, unit_frames=8, **fields)


def _gesture_tracks(count: int, units: int, seed: int = 0) -> torch.Tensor:
    """Tracks of ``units`` units, each one of 4 gestures (a smooth bump along a random direction)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(4, 56)).astype(np.float32)
    bump = np.sin(np.linspace(0, np.pi, 8)).astype(np.float32)
    frames = directions[rng.integers(4, size=(count, units))][:, :, None, :] * bump[None, None, :, None]
    return torch.from_numpy(frames.reshape(count, units * 8, 56))


@pytest.mark.parametrize("style_dim", [0, 8], ids=["lm-listener", "mmlhg"])
def test_a_tiny_vq_vae_reconstructs_what_it_was_trained_on(style_dim):
    torch.manual_seed(0)
    config = _config(variant="mmlhg" if style_dim else "lm-listener", style_dim=style_dim)
    vqvae = MotionVQVAE(config)
    tracks = _gesture_tracks(16, 4)
    optimizer = torch.optim.Adam(vqvae.parameters(), lr=3e-3)
    for _ in range(150):
        style = vqvae.style_of(tracks) if style_dim else None
        recon, quantized = vqvae(tracks, style)
        loss, _ = vq_loss(recon, tracks, quantized.commitment, velocity=0.5, commit=0.02)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vqvae.eval()
    with torch.no_grad():
        recon, quantized = vqvae(tracks, vqvae.style_of(tracks) if style_dim else None)
    assert quantized.codes.shape == (16, 4)  # one code per 8 frames
    error = float(((recon - tracks) ** 2).mean())
    assert error < 0.2 * float(tracks.var()), error  # from discrete codes and a causal decoder
    assert float(quantized.perplexity) > 4  # several codes in use


def test_the_decoder_is_causal_so_units_decode_one_at_a_time():
    torch.manual_seed(0)
    vqvae = MotionVQVAE(_config()).eval()
    codes = torch.randint(16, (1, 12))
    with torch.no_grad():
        whole = vqvae.decode_codes(codes)
        prefix = vqvae.decode_codes(codes[:, :6])
        changed = codes.clone()
        changed[0, 7] = (changed[0, 7] + 1) % 16
        other = vqvae.decode_codes(changed)
    assert whole.shape == (1, 96, 56)
    torch.testing.assert_close(prefix, whole[:, :48])
    torch.testing.assert_close(other[:, :56], whole[:, :56])  # frames before unit 7 ignore its code
    assert not torch.allclose(other[:, 56:64], whole[:, 56:64])


def test_identity_models_need_an_identity_to_decode():
    vqvae = MotionVQVAE(_config(variant="mmlhg", style_dim=8)).eval()
    with pytest.raises(ValueError, match="decodes with an identity"):
        vqvae.decode_codes(torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="multiple of 8 frames"):
        vqvae.encode(torch.zeros(1, 12, 56))


def test_unused_codebook_entries_are_reset_to_encoder_outputs():
    torch.manual_seed(0)
    codebook = EMACodebook(8, 4)
    codebook.embedding.fill_(100.0)  # far from every input: one entry is nearest to all, the others unused
    codebook.sums.fill_(100.0)
    z = torch.randn(2, 4, 16)
    codebook(z)
    flat = z.permute(0, 2, 1).reshape(-1, 4)
    nearest = torch.cdist(codebook.embedding, flat).min(1).values
    assert int((nearest < 1e-5).sum()) == 7  # the 7 unused entries now sit on encoder outputs
    assert float(nearest.max()) > 10  # the used one moves by moving averages, slowly
