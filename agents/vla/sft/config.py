"""``SFTConfig``: the settings of ``dyadic train sft``, one YAML file in ``experiments/configs/``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dyadic_env.config import config_from_dict

if TYPE_CHECKING:
    from agents.vla.configuration import VLAConfig

# VLAConfig arguments that the data or the other SFT settings fix, so a config cannot set them in ``model:``.
_SET_ELSEWHERE = {
    "speaker_dim": "the dataset's speaker input", "speaker_mean": "the dataset's speaker input",
    "speaker_std": "the dataset's speaker input", "action_low": "the action tokenizer",
    "action_high": "the action tokenizer", "num_bins": "the action tokenizer", "action_dim": "the action tokenizer",
    "text_pad_id": "the word tokenizer", "fps": "the dataset", "max_context_frames": "max_frames",
    "speaker_prediction": "lambda_speaker > 0",
}  # fmt: skip
LORA_KEYS = ("r", "alpha", "dropout", "target_modules")


def model_fields() -> list[str]:
    """What ``SFTConfig.model`` may set: every :class:`~agents.vla.VLAConfig` argument the data does not fix."""
    from agents.vla.configuration import VLAConfig

    names = inspect.signature(VLAConfig.__init__).parameters
    return sorted(n for n in names if n not in ("self", "kwargs", *_SET_ELSEWHERE))


@dataclass
class SFTConfig:
    """Configuration of ``dyadic train sft`` (one YAML file in ``experiments/configs/``)."""

    dataset: str = "synthetic:small"
    """Dataset directory or ``synthetic:PRESET``."""
    train_split: str = "train"
    """Split to train on."""
    val_split: str | None = "val"
    """Split for the validation loss (None or a missing split: none)."""
    output_dir: str = "runs/sft"
    """Run directory: checkpoints, ``final/`` (the trained policy) and TensorBoard logs (``tb/``)."""

    model: dict[str, Any] = field(default_factory=dict)
    """The network: :class:`~agents.vla.VLAConfig` fields (``decoding``, ``head_hidden``, ``gesture_frames``,
    ``expression_state``, ``decode_mode``, ``decode_temperature``, ...; unset ones keep VLAConfig's defaults), and
    how it is built: ``speaker_input`` may be ``auto`` (features when the dataset has them, the default),
    ``backbone`` overrides the from-scratch LLaMA's config, ``backbone_path`` names a local pretrained causal LM
    (its tokenizer is used) and ``lora: {r, alpha, dropout}`` puts adapters on it. The tokenizer bounds, speaker
    statistics and the mean nod are fitted on the data."""
    init_from: str | None = None
    """Start from this VLA checkpoint instead of a fresh model (``model`` then sets only the decoding)."""

    lambda_exp: float = 1.0
    """Weight of the expression cross-entropy (eq. 7)."""
    lambda_pose: float = 1.0
    """Weight of the pose cross-entropy (eq. 7)."""
    lambda_temp: float = 0.01
    """Weight of the temporal smoothness term (eqs. 8-9)."""
    lambda_speaker: float = 0.0
    """Weight of an auxiliary loss (not in the paper): predict the speaker's next input frame from each frame's
    hidden state, so the backbone learns when the speaker talks and pauses (0: off; adds a speaker head)."""
    lambda_gesture: float = 1.0
    """Weight of the nod-onset cross-entropy (models with ``model.gesture_frames`` > 0)."""
    loss_frames: float = 1.0
    """Fraction of frames the action head and loss run on (random disjoint pairs of consecutive frames, so eq.
    8 still sees neighbours). Consecutive frames are nearly redundant, and the head and loss over 56 x 256
    logits cost most of a step, so a fraction trains more clips a second (``dyadic bench policy``). Parallel
    decoding only."""
    state_noise: float = 0.0
    """Std of Gaussian noise added to each previous-frame state during training, in units of each dimension's
    tokenizer half-range (0: none). Teacher forcing otherwise rewards copying the last frame exactly; in closed
    loop the states carry the policy's own sampling noise."""
    pose_state_noise: float | None = None
    """``state_noise`` for the head and jaw pose states (None: the same as ``state_noise``). A nod is a bump of
    about 0.06 rad and the default noise on the pitch state is about 0.005 rad."""
    state_offset: float = 0.0
    """Std of one Gaussian offset per clip and expression dimension added to all of a clip's expression states
    (same units). A state that is off by an unknown constant still tells how the face moves, but not where it
    should sit: the expression level must come from the speaker's face and words, which pulls a closed loop
    that sampled a wrong level back to what the context calls for. Head and jaw pose get none: their last frame
    is what keeps them smooth. Too large an offset makes the listener hedge between responses."""
    state_dropout: float = 0.0
    """Probability that a clip's states are all zeroed (as before an episode's first frame), so the context
    pathway also learns to stand alone."""
    self_states: float = 0.0
    """Fraction of frames whose previous-frame state is the policy's own sample (drawn at the model's
    ``decode_temperature`` from a teacher-forced pass without gradient) instead of the data's, so training states
    carry the policy's own sampling noise as closed-loop ones do (two-pass scheduled sampling). Costs one more
    forward pass a step; applied before ``state_noise``/``state_dropout``. Near 1 the policy learns to distrust
    its own states and jitters."""

    learning_rate: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Linear warmup steps, then cosine decay to 10% at ``max_steps``."""
    max_steps: int = 2000
    """Optimizer steps."""
    batch_size: int = 8
    """Clips per step (over all processes)."""
    max_frames: int = 0
    """Train on random crops of at most this many frames (0: whole clips); a cached agent then keeps as many
    frames in its context (``VLAConfig.max_context_frames``)."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this (0: no clipping)."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the trainable weights (Polyak averaging) with this decay per step
    and write it as the final policy (0: off, the last weights). Its window is ``1 / (1 - ema_decay)`` steps;
    the decay ramps up as ``(1 + step) / (10 + step)`` so the start is not averaged with the initialisation.
    Checkpoints keep the raw weights (to resume from) and the average (``ema.pt``)."""

    seed: int = 0
    """Seeds the initialisation, the batch order and the crops."""
    log_every: int = 10
    """Steps between TensorBoard/progress updates."""
    eval_every: int = 250
    """Steps between validation losses (0: only at the end)."""
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
        checks = [
            (self.max_steps > 0, "max_steps", "a positive integer", self.max_steps),
            (self.batch_size > 0, "batch_size", "a positive integer", self.batch_size),
            (self.learning_rate > 0, "learning_rate", "a positive number", self.learning_rate),
            (self.warmup_steps >= 0, "warmup_steps", "an integer >= 0", self.warmup_steps),
            (self.max_frames >= 0, "max_frames", "an integer >= 0 (0: whole clips)", self.max_frames),
            (min(self.lambda_exp, self.lambda_pose, self.lambda_temp, self.lambda_speaker, self.lambda_gesture) >= 0,
             "lambda_*", "weights >= 0",
             (self.lambda_exp, self.lambda_pose, self.lambda_temp, self.lambda_speaker, self.lambda_gesture)),
            (self.grad_clip >= 0, "grad_clip", "a number >= 0", self.grad_clip),
            (0 <= self.ema_decay < 1, "ema_decay", "in [0, 1) (0: off)", self.ema_decay),
            (min(self.state_noise, self.state_offset, self.pose_state_noise or 0.0) >= 0,
             "state_noise/pose_state_noise/state_offset", "numbers >= 0",
             (self.state_noise, self.pose_state_noise, self.state_offset)),
            (0 <= self.state_dropout < 1, "state_dropout", "in [0, 1)", self.state_dropout),
            (0 <= self.self_states <= 1, "self_states", "in [0, 1]", self.self_states),
            (0 < self.loss_frames <= 1, "loss_frames", "in (0, 1]", self.loss_frames),
            (self.keep_checkpoints >= 1, "keep_checkpoints", "at least 1", self.keep_checkpoints),
            (self.log_every > 0, "log_every", "a positive integer", self.log_every),
        ]  # fmt: skip
        for ok, name, expected, found in checks:
            if not ok:
                raise ValueError(f"sft config: {name} must be {expected}, found {found!r}")
        self.vla_config()  # the model section's own checks, now rather than after loading the data

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SFTConfig:
        moved = sorted(set(values) & set(model_fields()))
        if moved:
            example = ", ".join(f"{k}: ..." for k in moved)
            raise ValueError(f"sft config: {', '.join(moved)} now belong to the model section: write "
                             f"`model: {{{example}}}` (on the command line: model.{moved[0]}=...)")  # fmt: skip
        if set(values) & {"lora_r", "lora_alpha", "lora_dropout"}:
            raise ValueError("sft config: lora_r, lora_alpha and lora_dropout are now written "
                             "`model: {lora: {r: 8, alpha: 16, dropout: 0.0}}`")  # fmt: skip
        return config_from_dict(cls, values, "sft config")

    def vla_config(self) -> VLAConfig:
        """The :class:`~agents.vla.VLAConfig` the ``model`` section describes, before fitting to the data (its
        checks run here: an unknown or fitted field, or a bad value, raises a ValueError naming it)."""
        from agents.vla.configuration import DEFAULT_BACKBONE, VLAConfig

        if not isinstance(self.model, Mapping):
            raise ValueError(f"sft config: model must be a mapping of VLAConfig fields, found {self.model!r}")
        fixed = sorted(set(self.model) & set(_SET_ELSEWHERE))
        if fixed:
            raise ValueError(f"sft config: model.{fixed[0]} is set by {_SET_ELSEWHERE[fixed[0]]}, not here")
        unknown = sorted(set(self.model) - set(model_fields()))
        if unknown:
            raise ValueError(
                f"sft config: unknown model fields {unknown}; known: {', '.join(model_fields())}"
            )
        settings = dict(self.model)
        self._check_build_settings(settings)
        settings["backbone"] = {**DEFAULT_BACKBONE, **(settings.get("backbone") or {})}
        if settings.get("speaker_input", "auto") == "auto":
            settings["speaker_input"] = "motion"  # decided when the data is loaded
        try:
            return VLAConfig(**settings)
        except (TypeError, ValueError) as e:
            raise ValueError(f"sft config: model: {e}") from None

    @staticmethod
    def _check_build_settings(settings: dict[str, Any]) -> None:
        lora = settings.get("lora")
        if lora is not None:
            rank = lora.get("r", 8) if isinstance(lora, Mapping) else None
            if not isinstance(rank, int) or rank < 1 or set(lora) - set(LORA_KEYS):
                raise ValueError(f"sft config: model.lora must be a mapping of {', '.join(LORA_KEYS)} with r >= 1, "
                                 f"found {lora!r}")  # fmt: skip
            if settings.get("backbone_path") is None:
                raise ValueError("sft config: model.lora needs model.backbone_path (adapters go on a pretrained "
                                 "backbone; a from-scratch one trains all its weights)")  # fmt: skip
        if settings.get("backbone") is not None and not isinstance(settings["backbone"], Mapping):
            raise ValueError(f"sft config: model.backbone must be a mapping, found {settings['backbone']!r}")
