"""Building a fresh VLA for a dataset: from scratch (default) or on a local pretrained backbone with LoRA."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.vla.configuration import DEFAULT_BACKBONE, VLAConfig
from agents.vla.modeling import VLAForListening
from agents.vla.processing import VLAProcessor
from agents.vla.text import train_word_tokenizer
from dyadic_env.data import Clip, DyadicDataset
from dyadic_env.envs.compatibility import data_card
from dyadic_env.tokenizer import ActionTokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Stop fitting statistics after this many frames: enough for means, quantiles and a vocabulary.
_STAT_FRAMES = 200_000


def speaker_statistics(clips: Sequence[Clip], speaker_input: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the speaker inputs (std floored so constant dims stay finite)."""
    arrays, seen = [], 0
    for clip in clips:
        x = clip.speaker_features if speaker_input == "features" else clip.speaker_motion
        arrays.append(np.asarray(x, np.float64))
        seen += len(arrays[-1])
        if seen >= _STAT_FRAMES:
            break
    data = np.concatenate(arrays)
    return data.mean(0), np.maximum(data.std(0), 1e-3)


def fit_action_tokenizer(clips: Sequence[Clip]) -> ActionTokenizer:
    """Fit the paper's 256-bin tokenizer on listener frames (used when the dataset has no tokenizer.json)."""
    frames, seen = [], 0
    for clip in clips:
        frames.append(np.asarray(clip.listener_motion))
        seen += clip.num_frames
        if seen >= _STAT_FRAMES:
            break
    return ActionTokenizer.fit(np.concatenate(frames))


def build_model(
    *,
    action_tokenizer: ActionTokenizer,
    text_tokenizer: PreTrainedTokenizerBase,
    speaker_input: str = "motion",
    speaker_mean: np.ndarray | None = None,
    speaker_std: np.ndarray | None = None,
    speaker_dim: int | None = None,
    backbone: dict[str, Any] | None = None,
    backbone_path: str | Path | None = None,
    lora: dict[str, Any] | None = None,
    fps: float = 25.0,
    seed: int = 0,
    **config_kwargs: Any,
) -> VLAForListening:
    """A new VLA with its processor attached.

    Args:
        action_tokenizer: bins of the listener actions.
        text_tokenizer: tokenizer of the speaker's words (ignored with ``backbone_path``: the backbone's own is
            loaded from there).
        speaker_input: ``"motion"`` or ``"features"``; ``speaker_dim`` defaults to the length of ``speaker_mean``.
        backbone: backbone config overrides for a from-scratch LLaMA (merged into the default).
        backbone_path: a local ``AutoModelForCausalLM`` checkpoint; its weights and tokenizer are used.
        lora: with ``backbone_path``, LoRA settings (``r``, ``alpha``, ``dropout``, ``target_modules``); the
            backbone's other weights are frozen.
        fps: the data's frame rate.
        seed: seeds the weight initialisation.
        config_kwargs: other :class:`VLAConfig` fields (``decoding``, ``head_hidden``, ...).
    """
    import torch

    torch.manual_seed(seed)
    pretrained = None
    if backbone_path is not None:
        pretrained, text_tokenizer, backbone_cfg = _load_backbone(Path(backbone_path))
    else:
        backbone_cfg = {**DEFAULT_BACKBONE, **(backbone or {})}
        backbone_cfg["vocab_size"] = len(text_tokenizer)
        backbone_cfg["pad_token_id"] = text_tokenizer.pad_token_id
    mean: np.ndarray = np.zeros(speaker_dim or 56) if speaker_mean is None else np.asarray(speaker_mean)
    std: np.ndarray = np.ones_like(mean) if speaker_std is None else np.asarray(speaker_std)
    config = VLAConfig(
        backbone=backbone_cfg, backbone_path=str(backbone_path) if backbone_path else None,
        speaker_input=speaker_input, speaker_dim=int(speaker_dim or len(mean)),
        speaker_mean=mean.tolist(), speaker_std=std.tolist(),
        action_low=action_tokenizer.low.tolist(), action_high=action_tokenizer.high.tolist(),
        num_bins=action_tokenizer.num_bins, action_dim=action_tokenizer.dim,
        text_pad_id=int(text_tokenizer.pad_token_id or 0), fps=fps, **config_kwargs,
    )  # fmt: skip
    model = VLAForListening(config)
    if pretrained is not None:
        missing, unexpected = model.vla.backbone.load_state_dict(pretrained.state_dict(), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{backbone_path}: backbone weights do not fit (missing {missing}, unexpected {unexpected})"
            )
        if lora:
            model.add_lora(**lora)
    model.processor = VLAProcessor(text_tokenizer, action_tokenizer, config)
    return model


def _load_backbone(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path}: no config.json; backbone_path must be a local causal LM checkpoint directory"
        )
    causal_lm = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        # LLaMA's tokenizer has none; padding positions are masked anyway, so the EOS id is a safe filler.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    decoder = causal_lm.get_decoder()
    cfg = decoder.config.to_dict()
    cfg["model_type"] = decoder.config.model_type
    return decoder, tokenizer, cfg


def model_for_dataset(
    dataset: DyadicDataset, split: str = "train", speaker_input: str = "auto", **kwargs: Any
) -> VLAForListening:
    """A fresh VLA fitted to a dataset: its tokenizer (or one fitted on ``split``), word vocabulary and input
    statistics. ``speaker_input="auto"`` uses features when the dataset has them."""
    clips = dataset.split(split)
    if len(clips) == 0:
        raise ValueError(f"split {split!r} of {dataset.path} has no clips to fit the model on")
    if speaker_input == "auto":
        speaker_input = "features" if dataset.feature_dim else "motion"
    if speaker_input == "features" and not dataset.feature_dim:
        raise ValueError(
            f"{dataset.path} has no speaker_features; add them with `dyadic data features` or use speaker_input=motion"
        )
    action_tokenizer = dataset.tokenizer() or fit_action_tokenizer(clips)
    text_tokenizer = train_word_tokenizer(w.text for c in clips for w in c.speaker_words)
    mean, std = speaker_statistics(clips, speaker_input)
    if kwargs.get("gesture_frames") and kwargs.get("gesture_profile") is None:
        kwargs["gesture_profile"] = _nod_profile(clips, kwargs)
    # The data card (basis, frame layout, tokenizer fingerprint) goes into config.json, so every checkpoint
    # derived from this model (SFT, DPO, PPO) refuses data of another basis (dyadic_env.envs.compatibility).
    kwargs.setdefault("data_card", data_card(dataset, action_tokenizer))
    return build_model(
        action_tokenizer=action_tokenizer, text_tokenizer=text_tokenizer, speaker_input=speaker_input,
        speaker_mean=mean, speaker_std=std, fps=dataset.fps, **kwargs,
    )  # fmt: skip


def _nod_profile(clips: Sequence[Clip], fields: dict[str, Any]) -> list[float]:
    """The training data's mean nod for a gesture model (``VLAConfig.gesture_profile``)."""
    from agents.vla.gestures import fit_nod_profile

    defaults = VLAConfig()
    dim = fields.get("gesture_dim")
    return fit_nod_profile(
        (c.listener_motion for c in clips), int(fields["gesture_frames"]),
        int(defaults.expression_dim if dim is None else dim),
        float(fields.get("gesture_threshold", defaults.gesture_threshold)),
    )  # fmt: skip
