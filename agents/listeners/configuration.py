"""``CodeListenerConfig``: the configuration of the two code-predicting baselines, LM-listener and MMLHG."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from agents.listeners.names import VARIANTS

DECODE_MODES = ("sample", "greedy")

# A small LLaMA trained from scratch: a clip of `small` is about 30 code units and as many word tokens, so a
# few layers of width 128 fit it and train in minutes on 2 cores.
DEFAULT_BACKBONE: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "attention_dropout": 0.0,
    "tie_word_embeddings": False,
}


class CodeListenerConfig(PretrainedConfig):
    """Configuration of :class:`agents.listeners.CodeListenerModel`.

    Args:
        variant: which baseline (:data:`VARIANTS`); it picks the speaker encoder and whether the motion codes
            are identity-free (MMLHG's instance and adaptive instance normalisation).
        unit_frames: listener frames one motion code stands for (a power of 2: the VQ-VAE halves time
            ``log2(unit_frames)`` times).
        codebook_size, code_dim: the VQ-VAE's codebook (entries, width).
        vq_width: channels of the VQ-VAE's convolutions.
        style_dim: width of MMLHG's identity (style) vector; 0 without identities (LM-listener).
        identities: the training listeners' ids, one row each of the saved identity table (MMLHG).
        identity: the identity a policy answers with unless told otherwise: ``"mean"`` (the average training
            identity) or one of ``identities``.
        backbone: the causal LM's config as a dict (``model_type`` plus its fields, built with
            ``AutoConfig.for_model``); ``vocab_size`` matches the word tokenizer.
        backbone_path: the local directory a pretrained backbone came from (informational; its weights are
            stored in the checkpoint).
        emotion_units: MMLHG's emotion encoder reads the speaker's expression over this many units.
        max_words_per_unit: word tokens kept per unit (the most recent).
        max_context_units: units a policy's language model looks back over (its training crops' length).
        dropout: dropout on the language model's input embeddings and on its last hidden states (GPT-2, the
            original's backbone, drops 0.1 of its embeddings and residuals; a LLaMA has no dropout of its own).
        listener_mean, listener_std, speaker_mean, speaker_std: per-dimension normalisation of the 56-value
            frames, fitted on the training split.
        fps: the data's frame rate; ``data_card``: what the policy must be run on
            (:mod:`dyadic_env.envs.compatibility`).
        decode_mode, decode_temperature: how a policy draws its codes unless told otherwise.
    """

    model_type = "dyadic_code_listener"

    def __init__(
        self,
        variant: str = "lm-listener",
        unit_frames: int = 8,
        codebook_size: int = 256,
        code_dim: int = 64,
        vq_width: int = 128,
        style_dim: int = 0,
        identities: list[str] | None = None,
        identity: str = "mean",
        backbone: dict[str, Any] | None = None,
        backbone_path: str | None = None,
        emotion_units: int = 4,
        max_words_per_unit: int = 8,
        max_context_units: int = 32,
        dropout: float = 0.1,
        listener_mean: list[float] | None = None,
        listener_std: list[float] | None = None,
        speaker_mean: list[float] | None = None,
        speaker_std: list[float] | None = None,
        fps: float = 25.0,
        data_card: dict[str, Any] | None = None,
        decode_mode: str = "sample",
        decode_temperature: float = 1.0,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ) -> None:
        self.variant = variant
        self.unit_frames = int(unit_frames)
        self.codebook_size, self.code_dim, self.vq_width = int(codebook_size), int(code_dim), int(vq_width)
        self.style_dim = int(style_dim)
        self.identities = list(identities or [])
        self.identity = identity
        self.backbone = dict(backbone if backbone is not None else DEFAULT_BACKBONE)
        self.backbone_path = backbone_path
        self.emotion_units = int(emotion_units)
        self.max_words_per_unit = int(max_words_per_unit)
        self.max_context_units = int(max_context_units)
        self.dropout = float(dropout)
        for name, value, default in (("listener_mean", listener_mean, 0.0), ("listener_std", listener_std, 1.0),
                                     ("speaker_mean", speaker_mean, 0.0), ("speaker_std", speaker_std, 1.0)):  # fmt: skip
            setattr(self, name, [float(v) for v in value] if value is not None else [default] * 56)
        self.fps = float(fps)
        self.data_card = dict(data_card) if data_card else None
        self.decode_mode = decode_mode
        self.decode_temperature = float(decode_temperature)
        self.initializer_range = float(initializer_range)
        super().__init__(**kwargs)
        self._validate()

    @property
    def hidden_size(self) -> int:
        return int(self.backbone["hidden_size"])

    @property
    def down_stages(self) -> int:
        """How often the VQ-VAE halves time: ``log2(unit_frames)``."""
        return self.unit_frames.bit_length() - 1

    @property
    def speaker_frames(self) -> int:
        """Speaker frames one unit's speaker input covers, up to the unit's first frame."""
        units = self.emotion_units if self.variant == "mmlhg" else 1
        return units * self.unit_frames

    def _validate(self) -> None:
        checks = [
            (self.variant in VARIANTS, "variant", f"one of {VARIANTS}", self.variant),
            (self.unit_frames >= 2 and self.unit_frames & (self.unit_frames - 1) == 0, "unit_frames",
             "a power of 2 (2, 4, 8, 16)", self.unit_frames),
            (self.codebook_size >= 2 and self.code_dim >= 1 and self.vq_width >= 4, "codebook_size/code_dim/vq_width",
             "codebook_size >= 2, code_dim >= 1, vq_width >= 4",
             (self.codebook_size, self.code_dim, self.vq_width)),
            (self.style_dim >= 0 and (self.style_dim > 0) == (self.variant == "mmlhg"), "style_dim",
             "> 0 for mmlhg (its identity vector) and 0 for lm-listener", self.style_dim),
            (self.identity == "mean" or self.identity in self.identities, "identity",
             f"'mean' or one of the training listeners {self.identities[:5]}", self.identity),
            ("model_type" in self.backbone and "hidden_size" in self.backbone, "backbone",
             "a config dict with at least 'model_type' and 'hidden_size'", self.backbone),
            (0 <= self.dropout < 1, "dropout", "in [0, 1)", self.dropout),
            (min(self.emotion_units - 1, self.max_words_per_unit, self.max_context_units) >= 1,
             "emotion_units/max_words_per_unit/max_context_units", "at least 2, 1 and 1",
             (self.emotion_units, self.max_words_per_unit, self.max_context_units)),
            (all(len(v) == 56 for v in (self.listener_mean, self.listener_std, self.speaker_mean, self.speaker_std)),
             "listener_mean/listener_std/speaker_mean/speaker_std", "56 values each", len(self.listener_mean)),
            (min(self.listener_std + self.speaker_std) > 0, "listener_std/speaker_std", "positive values",
             min(self.listener_std + self.speaker_std)),
            (self.decode_mode in DECODE_MODES and self.decode_temperature > 0, "decode_mode/decode_temperature",
             f"one of {DECODE_MODES} and a positive temperature", (self.decode_mode, self.decode_temperature)),
        ]  # fmt: skip
        for ok, name, expected, found in checks:
            if not ok:
                raise ValueError(f"{self.variant} config: {name} must be {expected}, found {found!r}")
