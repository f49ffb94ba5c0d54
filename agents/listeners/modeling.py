"""``CodeListenerModel``: a motion VQ-VAE and a causal language model that predicts its codes.

The language model (a LLaMA-architecture decoder built from a config, or a local pretrained one) reads the
interleaved words and unit slots of :mod:`agents.listeners.sequences` and predicts each unit's listener code
at its slot; the VQ-VAE (:mod:`agents.listeners.vqvae`) turns codes back into frames. One class serves both
baselines; ``config.variant`` picks the speaker encoder and the identity handling.

``save_pretrained`` / ``from_pretrained`` keep the word tokenizer and the action tokenizer beside the weights,
so a checkpoint directory is a whole policy (``CodeListenerAgent.from_pretrained``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from agents.listeners.configuration import CodeListenerConfig
from agents.listeners.fusion import speaker_encoder
from agents.listeners.sequences import BOS
from agents.listeners.vqvae import MotionVQVAE
from agents.vla.processing import ACTION_TOKENIZER_FILE
from dyadic_env.tokenizer import ActionTokenizer


class CodeListenerModel(PreTrainedModel):
    """LM-listener or MMLHG (``config.variant``): :meth:`slot_logits` for the language model,
    :meth:`decode_codes` and :meth:`reconstruct` for the VQ-VAE.

    Attach ``word_tokenizer`` and ``action_tokenizer`` before saving a model that should act (training does).
    """

    config_class = CodeListenerConfig
    config: CodeListenerConfig
    base_model_prefix = "listener"
    main_input_name = "input_ids"
    _supports_sdpa = True
    identity_styles: torch.Tensor
    identity_mean: torch.Tensor
    identity_std: torch.Tensor
    listener_mean: torch.Tensor
    listener_std: torch.Tensor

    def __init__(self, config: CodeListenerConfig) -> None:
        super().__init__(config)
        self.vqvae = MotionVQVAE(config)
        for module in self.vqvae.modules():  # PyTorch's convolution init suits it; keep it out of post_init
            setattr(module, "_is_hf_initialized", True)  # noqa: B010
        backbone_config = AutoConfig.for_model(**config.backbone)
        backbone_config._attn_implementation = "sdpa"
        self.backbone = AutoModel.from_config(backbone_config)
        h, k = config.hidden_size, config.codebook_size
        self.speaker_encoder = speaker_encoder(config)
        self.code_embed = nn.Embedding(k + 1, h)  # the last row stands for "no previous code" (BOS)
        self.code_head = nn.Linear(h, k)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer("listener_mean", torch.tensor(config.listener_mean, dtype=torch.float32))
        self.register_buffer("listener_std", torch.tensor(config.listener_std, dtype=torch.float32))
        if config.style_dim:  # MMLHG: per training listener, the identity vector and the frames' mean and std
            self.register_buffer("identity_styles", torch.zeros(len(config.identities), config.style_dim))
            self.register_buffer("identity_mean", torch.zeros(len(config.identities), 56))
            self.register_buffer("identity_std", torch.ones(len(config.identities), 56))
        self.word_tokenizer: Any = None
        self.action_tokenizer: ActionTokenizer | None = None
        self.post_init()

    # --- the language model ------------------------------------------------------------------------------
    def slot_logits(
        self, batch: dict[str, torch.Tensor], speaker_keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Code logits (B, N, codebook) at every unit's slot of a :func:`~agents.listeners.sequences.collate`
        batch (zeros at padded units). ``speaker_keep`` (B, N) scales each unit's speaker input (dropout)."""
        embeds = self.backbone.get_input_embeddings()(batch["input_ids"])
        previous = batch["previous"].masked_fill(batch["previous"] == BOS, self.config.codebook_size)
        speaker = self.speaker_encoder(batch["speaker"].to(embeds.dtype))
        if speaker_keep is not None:
            speaker = speaker * speaker_keep[..., None].to(speaker.dtype)
        b_idx, u_idx = batch["unit_mask"].nonzero(as_tuple=True)
        positions = batch["slot_positions"][b_idx, u_idx]
        slot = self.code_embed(previous) + speaker
        embeds = self.dropout(embeds.index_put((b_idx, positions), slot[b_idx, u_idx].to(embeds.dtype)))
        hidden = self.backbone(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
        logits = hidden.new_zeros((*batch["unit_mask"].shape, self.config.codebook_size))
        return logits.index_put((b_idx, u_idx), self.code_head(self.dropout(hidden[b_idx, positions])))

    def lm_loss(
        self, batch: dict[str, torch.Tensor], speaker_keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy of the target codes, and the share predicted exactly (argmax)."""
        logits = self.slot_logits(batch, speaker_keep)
        targets = batch["targets"]
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        scored = targets != -100
        accuracy = (logits.argmax(-1) == targets)[scored].float().mean()
        return loss, accuracy

    # --- motion <-> codes ---------------------------------------------------------------------------------
    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames - self.listener_mean) / self.listener_std

    def denormalize(self, frames: torch.Tensor) -> torch.Tensor:
        return frames * self.listener_std + self.listener_mean

    def identity_style(self, identity: str | None = None) -> torch.Tensor | None:
        """The identity vector (1, style_dim) of a training listener, or their mean (``"mean"``, the default);
        None for a model without identities."""
        if not self.config.style_dim:
            return None
        name = identity or self.config.identity
        if name == "mean":
            return self.identity_styles.mean(0, keepdim=True)
        if name not in self.config.identities:
            raise ValueError(
                f"identity: expected 'mean' or a training listener ({', '.join(self.config.identities[:8])}"
                f"{', ...' * (len(self.config.identities) > 8)}), found {name!r}"
            )
        return self.identity_styles[self.config.identities.index(name)][None]

    def decode_codes(self, codes: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, N * unit, 56) in the data's units from codes (B, N)."""
        return self.denormalize(self.vqvae.decode_codes(codes, style))

    def encoder_input(self, frames: torch.Tensor, identity: str | None = None) -> torch.Tensor:
        """What the VQ-VAE encodes of frames (..., T, 56) in the data's units: the globally normalised frames;
        with identities, the frames normalised with their listener's statistics (a training listener's when
        ``identity`` names one, else the frames' own: :func:`identity_statistics`)."""
        if not self.config.style_dim:
            return self.normalize(frames)
        if identity in self.config.identities:
            row = self.config.identities.index(identity)
            mean, std = self.identity_mean[row], self.identity_std[row]
        else:
            mean, std = identity_statistics(frames.reshape(-1, 56), self.listener_std)
        return (frames - mean) / std

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, identity: str | None = None) -> np.ndarray:
        """The codes (N,) of a listener track (T, 56), padded with its last frame to whole units (``identity``:
        the listener's, for :meth:`encoder_input`)."""
        padded = torch.from_numpy(pad_to_units(frames, self.config.unit_frames)).to(self.listener_mean.device)
        x = self.encoder_input(padded, identity)[None]
        return self.vqvae.codebook.codes(self.vqvae.encode(x)[0].T).cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, frames: np.ndarray, identity: str | None = None) -> np.ndarray:
        """``frames`` (T, 56) through the VQ-VAE. With identities, a training listener's ``identity`` gives the
        normalisation and the identity vector (``"mean"``: the average identity vector); the track itself gives
        what ``identity`` does not."""
        codes = torch.from_numpy(self.encode_frames(frames, identity))[None].to(self.listener_mean.device)
        named = identity == "mean" or identity in self.config.identities
        style = self.identity_style(identity) if named else self.reference_style(frames)
        return self.decode_codes(codes, style)[0, : len(frames)].cpu().numpy()

    @torch.no_grad()
    def reference_style(self, frames: np.ndarray) -> torch.Tensor | None:
        """The identity vector (1, style_dim) read from a listener track (T, 56); None without identities."""
        if not self.config.style_dim:
            return None
        x = torch.from_numpy(np.array(frames, np.float32)).to(self.listener_mean.device)
        return self.vqvae.style_of(self.normalize(x)[None])

    # --- persistence ----------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Weights and config, plus the word tokenizer and ``action_tokenizer.json`` when attached."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.word_tokenizer is not None:
            self.word_tokenizer.save_pretrained(save_directory)
        if self.action_tokenizer is not None:
            self.action_tokenizer.save(Path(save_directory) / ACTION_TOKENIZER_FILE)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any
    ) -> CodeListenerModel:
        """Load a checkpoint directory (weights, config and its tokenizers)."""
        path = Path(pretrained_model_name_or_path)
        loaded: Any = super().from_pretrained(path, *args, output_loading_info=True, **kwargs)
        model: CodeListenerModel = loaded[0]
        info: dict[str, Any] = loaded[1]
        wrong = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys") and v}
        if (
            wrong
        ):  # a checkpoint of another version of the network: refuse rather than act with random weights
            raise ValueError(f"{path}: the weights do not fit this version of {model.config.variant} ({wrong}); "
                             "retrain it with `dyadic train`")  # fmt: skip
        if (path / ACTION_TOKENIZER_FILE).exists():
            model.action_tokenizer = ActionTokenizer.load(path / ACTION_TOKENIZER_FILE)
            model.word_tokenizer = AutoTokenizer.from_pretrained(path)
        return model


def reconstruction_errors(
    model: CodeListenerModel, tracks: Sequence[np.ndarray], identity: str | None = None
) -> dict[str, float]:
    """How well the model's VQ-VAE reconstructs listener ``tracks`` (each (T, 56); ``identity`` as in
    :meth:`CodeListenerModel.reconstruct`), against the action tokenizer's quantization of the same frames:
    ``vq_mse`` and ``tokenizer_mse`` (squared error per value, the data's units) and ``variance`` (the frames'
    per-dimension variance, averaged: what a constant face scores)."""
    if model.action_tokenizer is None:
        raise ValueError("model has no action tokenizer; load it with CodeListenerModel.from_pretrained(dir)")
    tokenizer, vq, tok = model.action_tokenizer, 0.0, 0.0
    frames = [np.asarray(t, np.float32) for t in tracks]
    for x in frames:
        vq += float(((model.reconstruct(x, identity) - x) ** 2).sum())
        tok += float(((tokenizer.decode(tokenizer.encode(x)) - x) ** 2).sum())
    n = sum(x.size for x in frames)
    variance = float(np.concatenate(frames).var(0).mean())
    return {"vq_mse": vq / n, "tokenizer_mse": tok / n, "variance": variance}


# AutoTokenizer reads config.json to find the tokenizer; with the type registered it knows the config.
AutoConfig.register(CodeListenerConfig.model_type, CodeListenerConfig, exist_ok=True)
AutoModel.register(CodeListenerConfig, CodeListenerModel, exist_ok=True)


IDENTITY_STD_FLOOR = 0.1
"""A listener's per-dimension std is floored at this share of the data's: a dimension a person barely moves
would otherwise have its noise scaled up to the range of a moving one."""


def identity_statistics(frames: torch.Tensor, data_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (floored, :data:`IDENTITY_STD_FLOOR`) of a listener's frames (N, 56)."""
    return frames.mean(0), torch.maximum(frames.std(0, unbiased=False), IDENTITY_STD_FLOOR * data_std)


def pad_to_units(frames: np.ndarray, unit_frames: int) -> np.ndarray:
    """``frames`` (T, 56) float32, its last frame repeated up to a whole number of units."""
    frames = np.array(frames, np.float32)  # a copy: torch wants writable memory, datasets are memory-mapped
    missing = -len(frames) % unit_frames
    return np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)]) if missing else frames
