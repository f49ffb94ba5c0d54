"""``VLAForListening``: the listener policy as a ``transformers`` model, serving SFT, env rollouts, DPO (trl) and
PPO (SB3). The network itself is :class:`~agents.vla.network.VLAModel` (``base_model``); this class adds the
Hugging Face plumbing (config, save/load with the tokenizers, LoRA) and the policy API (logits and
log-probabilities of given actions, windowed observations).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import ModelOutput

from agents.vla.configuration import VLAConfig
from agents.vla.heads import ActionHead
from agents.vla.inputs import FrameCache, FrameInputs
from agents.vla.network import VLAModel


@dataclass
class VLAOutput(ModelOutput):
    """Output of :meth:`VLAForListening.forward` on frame-structured inputs.

    Attributes:
        loss: the cross-entropy of ``labels`` (frame view: tokens (B, T, 56)) when given.
        logits: (B, T, 56, num_bins) action logits (frame view) or (B, L, num_bins) (flat view).
        frame_hidden: (B, T, H) hidden state of every frame's STATE token.
        past_key_values, attention_mask, positions: see :class:`FrameOutput`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    frame_hidden: torch.Tensor | None = None
    past_key_values: Any = None
    attention_mask: torch.Tensor | None = None
    positions: torch.Tensor | None = None


class VLAForListening(PreTrainedModel):
    """The listener policy: a ``PreTrainedModel`` serving SFT, env rollouts, DPO (trl) and PPO (SB3).

    Main entry points:

    - :meth:`action_logits` (B, T, 56, 256) for a teacher-forced batch of clips, and
      :meth:`step_logprobs` (B, T) / :meth:`sequence_logprobs` (B,) of given action tokens;
    - :meth:`window_logits` for a batch of independent windowed observations (stateless policies);
    - ``forward(input_ids=..., ...)`` and ``base_model`` give trl's flat view (see :class:`VLAModel`);
    - ``save_pretrained`` / ``from_pretrained`` also store the text tokenizer and ``action_tokenizer.json``
      (attach them as ``model.processor``).
    """

    config_class = VLAConfig
    base_model_prefix = "vla"
    main_input_name = "speaker_inputs"
    _supports_sdpa = True

    def __init__(self, config: VLAConfig) -> None:
        super().__init__(config)
        self.vla = VLAModel(config)
        self.processor: Any = None
        # Trainers (trl) set pad ids on it; the VLA decodes with its own loop, not `generate`.
        self.generation_config = GenerationConfig()
        self.post_init()
        if config.lora:
            self._inject_lora(config.lora)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, VLAModel) and module.action_low.device.type != "meta":
            module.reset_buffers()
        if isinstance(module, ActionHead):
            nn.init.normal_(module.query, std=self.config.initializer_range)
            if module.couple is not None:
                nn.init.zeros_(module.couple)
            if module.group_mask.device.type != "meta":
                module.reset_buffers()

    # --- LoRA --------------------------------------------------------------------------------------------
    def add_lora(
        self, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None
    ) -> None:
        """Add LoRA adapters (peft) to the backbone and freeze its other weights; the VLA's own modules train."""
        if self.config.lora:
            raise ValueError("this model already has LoRA adapters")
        settings = {"r": r, "alpha": alpha, "dropout": dropout,
                    "target_modules": target_modules or ["q_proj", "k_proj", "v_proj", "o_proj"]}  # fmt: skip
        self._inject_lora(settings)
        self.config.lora = settings

    def _inject_lora(self, settings: dict[str, Any]) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(
            r=int(settings["r"]), lora_alpha=int(settings["alpha"]), lora_dropout=float(settings["dropout"]),
            target_modules=list(settings["target_modules"]),
        )  # fmt: skip
        inject_adapter_in_model(lora, self.vla.backbone)
        for name, param in self.vla.backbone.named_parameters():
            param.requires_grad = "lora_" in name

    # --- Hugging Face plumbing ---------------------------------------------------------------------------
    def get_output_embeddings(self) -> nn.Linear:
        return self.vla.action_head.lm_head

    def get_input_embeddings(self) -> nn.Module:
        return self.vla.backbone.get_input_embeddings()

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save config and weights, plus the text tokenizer and ``action_tokenizer.json`` when attached."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.processor is not None:
            self.processor.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any
    ) -> VLAForListening:
        """Load a checkpoint directory (weights, config and, when present, the processor)."""
        from pathlib import Path

        from agents.vla.processing import VLAProcessor

        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        path = Path(pretrained_model_name_or_path)
        if VLAProcessor.exists(path):
            model.processor = VLAProcessor.from_pretrained(path, model.config)  # type: ignore[arg-type]
        return model

    # --- forward -------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        speaker_inputs: torch.Tensor | None = None,
        prev_listener: torch.Tensor | None = None,
        word_ids: torch.Tensor | None = None,
        word_mask: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        actions: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        past_key_values: Any = None,
        positions: torch.Tensor | None = None,
        use_cache: bool | None = None,
        head_mask: torch.Tensor | None = None,
        prev2_listener: torch.Tensor | None = None,
        frame_window: int = 0,
        **unused: Any,
    ) -> VLAOutput | CausalLMOutputWithPast:
        """Frame view (no ``input_ids``): logits (B, T, 56, bins); flat view (``input_ids``): (B, L, bins).

        In the frame view ``prev_listener`` defaults to the teacher-forced states of ``actions``; ``labels``
        (tokens (B, T, 56)) give a mean cross-entropy; with ``head_mask`` (B, T) only those frames are scored and
        the logits are packed (N, 56, bins); ``frame_window`` > 0 lets each frame see only that many frames back,
        as the sampler's cache does (see :meth:`~agents.vla.network.VLAModel.frames`). In the flat view
        ``labels`` (B, L) are shifted like a causal LM's (-100 ignored).
        """
        if input_ids is not None:
            hidden = self.vla(input_ids, attention_mask, speaker_inputs, word_ids, word_mask, frame_mask)
            logits = self.get_output_embeddings()(hidden.last_hidden_state)
            loss = None
            if labels is not None:
                loss = F.cross_entropy(
                    logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
                )
            return CausalLMOutputWithPast(loss=loss, logits=logits)
        if speaker_inputs is None:
            raise ValueError("forward needs speaker_inputs (frame view) or input_ids (flat view)")
        if prev_listener is None:
            if actions is None:
                raise ValueError("forward needs prev_listener or actions (teacher forcing) in the frame view")
            prev_listener = self.vla.previous_states(actions)
        inputs = FrameInputs(
            speaker_inputs, prev_listener, word_ids, word_mask, frame_mask, actions=actions,
            prev2_listener=prev2_listener,
        )  # fmt: skip
        cache = FrameCache(past_key_values, attention_mask, positions)
        out = self.vla.frames(
            inputs, cache, use_cache=bool(use_cache), head_mask=head_mask, frame_window=frame_window
        )
        logits = self.get_output_embeddings()(out.action_hidden)
        loss = None
        if labels is not None and head_mask is None:
            mask = (
                frame_mask.bool()
                if frame_mask is not None
                else torch.ones(labels.shape[:2], dtype=torch.bool)
            )
            loss = F.cross_entropy(logits[mask].flatten(0, 1), labels[mask].flatten())
        return VLAOutput(
            loss=loss, logits=logits, frame_hidden=out.frame_hidden, past_key_values=out.past_key_values,
            attention_mask=out.attention_mask, positions=out.positions,
        )  # fmt: skip

    # --- policy API -----------------------------------------------------------------------------------------
    def action_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher-forced logits (B, T, 56, bins) for a batch from ``VLAProcessor.collate``."""
        return self(**_frame_keys(batch)).logits

    def step_logprobs(
        self, batch: dict[str, torch.Tensor], actions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-frame log pi(a_t | context) (B, T), summed over the 56 dimensions; 0 on padded frames.

        ``actions`` (B, T, 56) default to ``batch["actions"]``; they are also the teacher-forced history, so
        this is the log-probability of the whole closed-loop trajectory factorised over frames.
        """
        if actions is not None:
            batch = {**batch, "actions": actions}
        out = self(**_frame_keys(batch))
        logp = torch.log_softmax(out.logits.float(), -1).gather(-1, batch["actions"][..., None]).squeeze(-1)
        per_frame = logp.sum(-1)
        if self.vla.gestures:
            per_frame = per_frame + self.vla.gesture_logprobs(
                out.frame_hidden, batch["actions"], batch["frame_mask"]
            )
        return per_frame * batch["frame_mask"].to(logp.dtype)

    def sequence_logprobs(
        self, batch: dict[str, torch.Tensor], actions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log pi(A_{1:T} | S_{1:T}) (B,), the quantity of paper eq. 11."""
        return self.step_logprobs(batch, actions).sum(-1)

    def window_logits(self, window: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, 56, bins) of the current (last) frame and its hidden state (B, H), from windows.

        ``window`` comes from ``VLAProcessor.observation_batch`` (a batch of env observations, each a window of
        K frames, independent of each other). For autoregressive and grouped-head models it must hold
        ``current_actions`` (B, 56): the logits are then teacher-forced on them (use :meth:`sample_window` to
        sample).
        """
        if self.vla.gestures:
            raise ValueError(
                "window_logits: a model with gestures (gesture_frames > 0) decodes with the cache only (VLAAgent "
                "with use_cache=True); its nod phase is not part of a window observation"
            )
        out = self(**_window_keys(window, self.vla.autoregressive or self.vla.action_head.grouped))
        return out.logits[:, -1], out.frame_hidden[:, -1]


def _frame_keys(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    keys = ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask", "actions")
    return {k: batch[k] for k in keys if k in batch}


def _window_keys(window: dict[str, torch.Tensor], coupled: bool) -> dict[str, Any]:
    keys = _frame_keys(window)
    if coupled:
        if "current_actions" not in window:
            raise ValueError(
                "window_logits on an autoregressive or grouped-head model needs window['current_actions'] (B, 56) "
                "to teacher-force "
                "the frame's tokens; sample with agents.vla.sample_window instead"
            )
        keys["actions"] = torch.cat([window["window_actions"][:, :-1], window["current_actions"][:, None]], 1)
    return keys
