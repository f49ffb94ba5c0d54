"""The configuration of the listener VLA (paper section III-C)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

ACTION_DECODERS = ("parallel", "autoregressive")
"""How the network produces a frame's 56 tokens (``VLAConfig.decoding``): all from one hidden state, or one
token at a time (RT-2 style)."""
SAMPLING_MODES = ("sample", "greedy", "mean", "mean_expression")
"""How tokens are drawn from the logits at decoding (``VLAConfig.decode_mode``, :class:`~agents.vla.decoding.Sampler`)."""
SPEAKER_INPUTS = ("motion", "features")

# The default backbone: a small LLaMA-architecture decoder trained from scratch (about 3 M parameters with
# the action head). Sized so the closed loop runs far above 30 frames/s and SFT on the `small` synthetic
# benchmark finishes in minutes on 2 CPU cores.
DEFAULT_BACKBONE: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 16384,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "attention_dropout": 0.0,
    "tie_word_embeddings": False,
}


class VLAConfig(PretrainedConfig):
    """Configuration of :class:`agents.vla.VLAForListening`.

    Args:
        backbone: the causal LM backbone's config as a dict (``model_type`` plus its fields); built with
            ``AutoConfig.for_model``. ``vocab_size`` must match the text tokenizer.
        backbone_path: local directory the pretrained backbone weights came from (informational; the weights
            are stored in the checkpoint).
        lora: LoRA settings (``r``, ``alpha``, ``dropout``, ``target_modules``) when the backbone carries peft
            adapters, else None.
        speaker_input: ``"features"`` (per-frame visual features such as DINOv2+SigLIP) or ``"motion"`` (the
            speaker's own 56-value frames when the data has no features).
        speaker_dim: width of one speaker input frame.
        speaker_mean, speaker_std: per-dimension normalisation of the speaker inputs (fitted on training data).
        action_low, action_high: the action tokenizer's clipping bounds (56 each); they define the bin centres
            used to decode states and soft actions inside the network.
        num_bins: bins per action dimension (256 as in the paper and RT-2).
        action_dim: values per frame (56); the first ``expression_dim`` are expression, the rest pose.
        decoding: the action decoder (:data:`ACTION_DECODERS`): ``"parallel"`` (all 56 tokens of a frame from one
            forward pass) or ``"autoregressive"`` (RT-2 style, one token at a time, bins as input tokens).
        head_hidden: width of the action head's per-dimension features.
        head_state: also hand the action head an embedding of each dimension's previous token.
        head_groups: 1 decodes the 56 dimensions of a frame independently (one head pass); ``k > 1`` splits them
            into ``k`` contiguous groups decoded in order, each conditioned on the earlier groups' values (a
            coherent face; ``k`` head passes a frame). Parallel decoding only.
        head_velocity: ``v > 0`` also hands the action head each dimension's last step (the token change
            between the two previous frames, clipped to +-v bins), so it can carry a movement on (a nod under
            way); 0: off. Parallel decoding with one head group only.
        gesture_frames: ``k > 0`` makes head nods discrete gestures (:mod:`agents.vla.gestures`): the network
            predicts at each frame whether a nod starts, and the action head reads the frame's phase in the nod
            (1..k, 0 outside one); decoding samples the onset and carries the phase. 0: off.
        gesture_dim: the action dimension the nods move (head pitch, positive down; default: the first pose
            dimension, ``expression_dim``).
        gesture_threshold: how far (in that dimension's units) a bump must rise above the frames ``k // 2``
            either side of its peak to count as a nod in the data.
        gesture_profile: the data's mean nod (``k`` values: the change of ``gesture_dim`` since the frame
            before the onset, at each frame of the nod), fitted by ``model_for_dataset``. During a nod the
            action head continues from the previous token moved along this profile, so it only has to learn
            to follow it (None: zeros).
        expression_state: whether the listener's own previous expression is part of the state. False: the
            network sees only its previous head and jaw pose, so its expression must come from the speaker's
            face and words, and the closed loop cannot lock onto a response it happened to start (the main
            per-clip FD error of a policy that sees it; measured in the issue 5 notes).
        projector_hidden: width of the visual projector's hidden layer.
        speaker_prediction: add a linear head that predicts the speaker's next input frame from each frame's
            hidden state (an auxiliary SFT task: ``SFTConfig.lambda_speaker``).
        text_pad_id: the text tokenizer's padding id.
        context_frames: frames a windowed (stateless) policy sees, e.g. for Stable-Baselines3.
        fps: frame rate the model was trained at (words are placed at the frame in which they end).
        max_context_frames: past frames a cached ``VLAAgent`` keeps attending to (0: all); SFT on crops sets
            it to the crop length so the closed loop never looks further back than training did.
        decode_mode, decode_temperature: the decoding a ``VLAAgent`` uses unless told otherwise (one of
            :data:`SAMPLING_MODES`; sampling temperature).
    """

    model_type = "dyadic_vla"

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        backbone_path: str | None = None,
        lora: dict[str, Any] | None = None,
        speaker_input: str = "motion",
        speaker_dim: int = 56,
        speaker_mean: list[float] | None = None,
        speaker_std: list[float] | None = None,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        num_bins: int = 256,
        action_dim: int = 56,
        expression_dim: int = 50,
        decoding: str = "parallel",
        head_hidden: int = 128,
        head_state: bool = True,
        head_groups: int = 1,
        head_velocity: int = 0,
        gesture_frames: int = 0,
        gesture_dim: int | None = None,
        gesture_threshold: float = 0.02,
        gesture_profile: list[float] | None = None,
        expression_state: bool = True,
        projector_hidden: int = 256,
        speaker_prediction: bool = False,
        text_pad_id: int = 0,
        context_frames: int = 32,
        fps: float = 25.0,
        initializer_range: float = 0.02,
        decode_mode: str = "sample",
        decode_temperature: float = 1.0,
        max_context_frames: int = 0,
        **kwargs: Any,
    ) -> None:
        self.backbone = dict(backbone if backbone is not None else DEFAULT_BACKBONE)
        self.backbone_path = backbone_path
        self.lora = dict(lora) if lora else None
        self.speaker_input = speaker_input
        self.speaker_dim = int(speaker_dim)
        self.speaker_mean = list(speaker_mean) if speaker_mean is not None else [0.0] * self.speaker_dim
        self.speaker_std = list(speaker_std) if speaker_std is not None else [1.0] * self.speaker_dim
        self.action_low = list(action_low) if action_low is not None else [-1.0] * action_dim
        self.action_high = list(action_high) if action_high is not None else [1.0] * action_dim
        self.num_bins = int(num_bins)
        self.action_dim = int(action_dim)
        self.expression_dim = int(expression_dim)
        self.decoding = decoding
        self.head_hidden = int(head_hidden)
        self.head_state = bool(head_state)
        self.head_groups = int(head_groups)
        self.head_velocity = int(head_velocity)
        self.gesture_frames = int(gesture_frames)
        self.gesture_dim = int(expression_dim if gesture_dim is None else gesture_dim)
        self.gesture_threshold = float(gesture_threshold)
        self.gesture_profile = (
            [float(v) for v in gesture_profile] if gesture_profile else [0.0] * self.gesture_frames
        )
        self.expression_state = bool(expression_state)
        self.projector_hidden = int(projector_hidden)
        self.speaker_prediction = bool(speaker_prediction)
        self.text_pad_id = int(text_pad_id)
        self.context_frames = int(context_frames)
        self.fps = float(fps)
        self.initializer_range = float(initializer_range)
        self.decode_mode = decode_mode
        self.decode_temperature = float(decode_temperature)
        self.max_context_frames = int(max_context_frames)
        super().__init__(**kwargs)
        self._validate()

    @property
    def hidden_size(self) -> int:
        return int(self.backbone["hidden_size"])

    def _validate(self) -> None:
        if self.decoding not in ACTION_DECODERS:
            raise ValueError(f"decoding: expected one of {ACTION_DECODERS}, found {self.decoding!r}")
        if self.speaker_input not in SPEAKER_INPUTS:
            raise ValueError(f"speaker_input: expected one of {SPEAKER_INPUTS}, found {self.speaker_input!r}")
        for name, n in (("speaker_mean", self.speaker_dim), ("speaker_std", self.speaker_dim),
                        ("action_low", self.action_dim), ("action_high", self.action_dim)):  # fmt: skip
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} values, found {len(getattr(self, name))}")
        if not 0 < self.expression_dim <= self.action_dim:
            raise ValueError(f"expression_dim must be in (0, {self.action_dim}], found {self.expression_dim}")
        if "model_type" not in self.backbone or "hidden_size" not in self.backbone:
            raise ValueError("backbone: expected a config dict with at least 'model_type' and 'hidden_size'")
        if self.decode_mode not in SAMPLING_MODES or not self.decode_temperature > 0:
            raise ValueError(
                f"decode_mode/decode_temperature: expected one of {SAMPLING_MODES} and a positive temperature, "
                f"found {self.decode_mode!r}, {self.decode_temperature}"
            )
        if not 1 <= self.head_groups <= self.action_dim:
            raise ValueError(f"head_groups must be in [1, {self.action_dim}], found {self.head_groups}")
        if self.head_groups > 1 and self.decoding != "parallel":
            raise ValueError(
                "head_groups > 1 groups the parallel head; autoregressive decoding is already coupled"
            )
        if self.head_velocity < 0 or (
            self.head_velocity and (self.decoding != "parallel" or self.head_groups > 1)
        ):
            raise ValueError(
                f"head_velocity must be >= 0 and needs parallel decoding with head_groups=1, found "
                f"{self.head_velocity} ({self.decoding}, head_groups={self.head_groups})"
            )
        if self.gesture_frames and (
            self.gesture_frames < 2 or self.decoding != "parallel" or self.head_groups > 1
            or not 0 <= self.gesture_dim < self.action_dim or not self.gesture_threshold > 0
            or len(self.gesture_profile) != self.gesture_frames
        ):  # fmt: skip
            raise ValueError(
                "gesture_frames must be 0 or >= 2 and needs parallel decoding with head_groups=1, a "
                f"gesture_dim in [0, {self.action_dim}), a positive gesture_threshold and one gesture_profile "
                f"value per frame; found gesture_frames={self.gesture_frames}, {self.decoding}, "
                f"head_groups={self.head_groups}, gesture_dim="
                f"{self.gesture_dim}, gesture_threshold={self.gesture_threshold}, "
                f"{len(self.gesture_profile)} gesture_profile values"
            )
        if min(self.speaker_std) <= 0:
            raise ValueError("speaker_std: every value must be positive")
