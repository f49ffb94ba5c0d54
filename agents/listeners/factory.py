"""A fresh LM-listener or MMLHG fitted to a dataset: tokenizers, statistics, identities and the data card."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.listeners.configuration import DEFAULT_BACKBONE, CodeListenerConfig
from agents.listeners.modeling import CodeListenerModel
from agents.vla.factory import _load_backbone, fit_action_tokenizer, speaker_statistics
from agents.vla.text import train_word_tokenizer
from dyadic_env.data import DyadicDataset
from dyadic_env.envs.compatibility import data_card

# MMLHG's identity vector: wide enough for a listener's per-dimension levels and scales, small next to the
# decoder's 128 channels.
DEFAULT_STYLE_DIM = 32


def model_for_dataset(
    dataset: DyadicDataset, variant: str, *, split: str = "train", seed: int = 0, **fields: Any
) -> CodeListenerModel:
    """A new model for ``dataset``'s ``split``: ``fields`` are :class:`CodeListenerConfig` fields (``backbone``
    overrides the default LLaMA's settings; ``backbone_path`` loads a local pretrained causal LM and its
    tokenizer instead). The action tokenizer is the dataset's (or one fitted on ``split``), the word vocabulary
    and the normalisation statistics are fitted on ``split``, and the data card is recorded in the config."""
    import torch

    clips = dataset.split(split)
    if len(clips) == 0:
        raise ValueError(f"split {split!r} of {dataset.path} has no clips to fit the model on")
    action_tokenizer = dataset.tokenizer() or fit_action_tokenizer(clips)
    pretrained, backbone_path = None, fields.pop("backbone_path", None)
    if backbone_path is not None:
        pretrained, word_tokenizer, backbone = _load_backbone(Path(backbone_path))
    else:
        word_tokenizer = train_word_tokenizer(w.text for c in clips for w in c.speaker_words)
        overrides = fields.pop("backbone", None) or {}
        if not isinstance(overrides, Mapping):
            raise ValueError(f"model.backbone must be a mapping of LLaMA config fields, found {overrides!r}")
        backbone = {**DEFAULT_BACKBONE, **overrides, "vocab_size": len(word_tokenizer),
                    "pad_token_id": word_tokenizer.pad_token_id}  # fmt: skip
    listener_mean, listener_std = _listener_statistics(dataset, split)
    speaker_mean, speaker_std = speaker_statistics(clips, "motion")
    if variant == "mmlhg":
        fields.setdefault("style_dim", DEFAULT_STYLE_DIM)
        fields.setdefault("identities", sorted({c.listener_id for c in clips}))
    config = CodeListenerConfig(
        variant=variant, backbone=backbone, backbone_path=str(backbone_path) if backbone_path else None,
        listener_mean=listener_mean.tolist(), listener_std=listener_std.tolist(),
        speaker_mean=speaker_mean.tolist(), speaker_std=speaker_std.tolist(), fps=dataset.fps,
        data_card=data_card(dataset, action_tokenizer), **fields,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = CodeListenerModel(config)
    if pretrained is not None:
        missing, unexpected = model.backbone.load_state_dict(pretrained.state_dict(), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{backbone_path}: backbone weights do not fit (missing {missing}, unexpected {unexpected})"
            )
    if config.style_dim:
        _fill_identity_statistics(model, dataset, split)
    model.word_tokenizer, model.action_tokenizer = word_tokenizer, action_tokenizer
    return model


def _fill_identity_statistics(model: CodeListenerModel, dataset: DyadicDataset, split: str) -> None:
    """Each training listener's per-dimension statistics over all their frames (MMLHG's encoder input)."""
    import torch

    from agents.listeners.modeling import identity_statistics

    by_listener: dict[str, list[np.ndarray]] = {}
    for clip in dataset.split(split):
        by_listener.setdefault(clip.listener_id, []).append(np.asarray(clip.listener_motion, np.float32))
    with torch.no_grad():
        for row, name in enumerate(model.config.identities):
            frames = torch.from_numpy(np.concatenate(by_listener[name]))
            model.identity_mean[row], model.identity_std[row] = identity_statistics(
                frames, model.listener_std
            )


def _listener_statistics(dataset: DyadicDataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the split's listener frames (std floored so constant dims stay finite)."""
    frames = np.concatenate([np.asarray(c.listener_motion, np.float64) for c in dataset.split(split)])
    return frames.mean(0), np.maximum(frames.std(0), 1e-3)
