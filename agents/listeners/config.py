"""``ListenerTrainConfig``: the settings of ``dyadic train lm-listener`` and ``dyadic train mmlhg``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.listeners.configuration import CodeListenerConfig
from agents.listeners.names import VARIANTS
from dyadic_env.config import config_from_dict

# CodeListenerConfig fields that the data or the training settings fix, so ``model:`` cannot set them.
_SET_ELSEWHERE = {
    "variant": "the command (dyadic train lm-listener / mmlhg)", "identities": "the training split's listeners",
    "listener_mean": "the training data", "listener_std": "the training data", "speaker_mean": "the training data",
    "speaker_std": "the training data", "fps": "the dataset", "data_card": "the dataset",
    "max_context_units": "lm.crop_units",
}  # fmt: skip


def model_fields() -> list[str]:
    """What ``ListenerTrainConfig.model`` may set: the :class:`CodeListenerConfig` arguments the data does not
    fix, and ``backbone_path``."""
    names = inspect.signature(CodeListenerConfig.__init__).parameters
    return sorted(n for n in names if n not in ("self", "kwargs", *_SET_ELSEWHERE))


@dataclass
class VQTraining:
    """The first stage: the motion VQ-VAE on random crops of the training listeners."""

    steps: int = 1500
    """Optimizer steps."""
    batch_size: int = 32
    """Crops per step."""
    crop_frames: int = 64
    """Frames per crop (a multiple of ``unit_frames``)."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (warmup, then cosine decay to 10 %)."""
    warmup_steps: int = 50
    """Linear warmup steps."""
    velocity: float = 0.5
    """Weight of the frame-to-frame change term of the reconstruction loss."""
    commit: float = 0.02
    """Weight of the commitment term."""


@dataclass
class LMTraining:
    """The second stage: the language model on the codes of the training listeners."""

    steps: int = 2000
    """Optimizer steps."""
    batch_size: int = 16
    """Crops per step."""
    crop_units: int = 32
    """Units per crop; a policy then looks back as far (``max_context_units``)."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (warmup, then cosine decay to 10 %)."""
    warmup_steps: int = 50
    """Linear warmup steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    select_best: bool = True
    """Make the final policy the language model of the lowest validation loss (checked every ``eval_every``
    steps), as LM-listener keeps its best checkpoint; False (or no validation split): the last."""
    code_keep: float = 0.5
    """Probability that a slot's previous code is the true one; otherwise a random code (LM-listener's
    ``pkeep``)."""
    speaker_keep: float = 0.5
    """Probability that a unit's speaker input is kept; otherwise zeroed (LM-listener's ``speaker_pkeep``)."""


@dataclass
class ListenerTrainConfig:
    """Configuration of ``dyadic train lm-listener`` / ``mmlhg`` (one YAML file in ``experiments/configs/``)."""

    variant: str = "lm-listener"
    """Which baseline: ``lm-listener`` or ``mmlhg`` (the command sets it)."""
    dataset: str = "synthetic:small"
    """Dataset directory or ``synthetic:PRESET``."""
    train_split: str = "train"
    """Split to train on."""
    val_split: str | None = "val"
    """Split for the validation losses (None or a missing split: none)."""
    output_dir: str = "runs/lm_listener"
    """Run directory: checkpoints, ``final/`` (the trained policy) and TensorBoard logs (``tb/``)."""
    model: dict[str, Any] = field(default_factory=dict)
    """:class:`~agents.listeners.CodeListenerConfig` fields (``unit_frames``, ``codebook_size``, ``backbone``,
    ``style_dim``, ``decode_temperature``, ...) and ``backbone_path`` (a local pretrained causal LM)."""
    vq: VQTraining = field(default_factory=VQTraining)
    """The VQ-VAE stage."""
    lm: LMTraining = field(default_factory=LMTraining)
    """The language-model stage."""
    seed: int = 0
    """Seeds the initialisation, the crops and the dropouts."""
    log_every: int = 25
    """Steps between TensorBoard and progress updates."""
    eval_every: int = 500
    """Steps between validation losses (0: only at the end of each stage)."""
    save_every: int = 500
    """Steps between resumable checkpoints (0: only at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept (oldest deleted)."""
    resume: bool = True
    """Continue from the latest checkpoint in ``output_dir`` if there is one."""
    max_minutes: float = 0.0
    """Stop (and save) after this much wall time (0: no limit)."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""

    def __post_init__(self) -> None:
        vq, lm = self.vq, self.lm
        checks = [
            (self.variant in VARIANTS, "variant", f"one of {VARIANTS}", self.variant),
            (min(vq.steps, lm.steps) >= 1, "vq.steps/lm.steps", "positive integers", (vq.steps, lm.steps)),
            (min(vq.batch_size, lm.batch_size, lm.crop_units) >= 1, "batch sizes/lm.crop_units",
             "positive integers", (vq.batch_size, lm.batch_size, lm.crop_units)),
            (vq.learning_rate > 0 and lm.learning_rate > 0, "learning rates", "positive",
             (vq.learning_rate, lm.learning_rate)),
            (min(vq.velocity, vq.commit, lm.weight_decay, vq.warmup_steps, lm.warmup_steps) >= 0,
             "velocity/commit/weight_decay/warmup_steps", ">= 0",
             (vq.velocity, vq.commit, lm.weight_decay, vq.warmup_steps, lm.warmup_steps)),
            (0 < lm.code_keep <= 1 and 0 < lm.speaker_keep <= 1, "lm.code_keep/lm.speaker_keep", "in (0, 1]",
             (lm.code_keep, lm.speaker_keep)),
            (self.log_every > 0 and self.keep_checkpoints >= 1, "log_every/keep_checkpoints", "positive",
             (self.log_every, self.keep_checkpoints)),
            (min(self.eval_every, self.save_every, self.max_minutes, self.num_threads) >= 0,
             "eval_every/save_every/max_minutes/num_threads", ">= 0",
             (self.eval_every, self.save_every, self.max_minutes, self.num_threads)),
        ]  # fmt: skip
        for ok, name, expected, found in checks:
            if not ok:
                raise ValueError(f"{self.variant} config: {name} must be {expected}, found {found!r}")
        self.model_config_fields()  # the model section's own checks, now rather than after loading the data

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], variant: str | None = None) -> ListenerTrainConfig:
        """From a YAML file's fields; ``variant`` (the command's) must agree with the file's when both say."""
        values = dict(values)
        if variant is not None:
            if values.get("variant", variant) != variant:
                raise ValueError(f"{variant} config: the file is for variant {values['variant']!r}; use "
                                 f"`dyadic train {values['variant']}` or another config")  # fmt: skip
            values["variant"] = variant
        return config_from_dict(cls, values, f"{values.get('variant', 'listener')} config")

    def model_config_fields(self) -> dict[str, Any]:
        """The ``model`` section checked: unknown or data-fitted fields, and a crop that is not whole units,
        raise a ValueError naming them. Returns the fields with ``max_context_units`` added."""
        if not isinstance(self.model, Mapping):
            raise ValueError(
                f"{self.variant} config: model must be a mapping of fields, found {self.model!r}"
            )
        fixed = sorted(set(self.model) & set(_SET_ELSEWHERE))
        if fixed:
            raise ValueError(
                f"{self.variant} config: model.{fixed[0]} is set by {_SET_ELSEWHERE[fixed[0]]}, not here"
            )
        unknown = sorted(set(self.model) - {*model_fields(), "backbone_path"})
        if unknown:
            raise ValueError(
                f"{self.variant} config: unknown model fields {unknown}; known: {', '.join(model_fields())}"
            )
        unit = int(self.model.get("unit_frames", 8))
        if self.vq.crop_frames < unit or self.vq.crop_frames % unit:
            raise ValueError(f"{self.variant} config: vq.crop_frames must be a positive multiple of unit_frames "
                             f"({unit}), found {self.vq.crop_frames}")  # fmt: skip
        return {**self.model, "max_context_units": self.lm.crop_units}
