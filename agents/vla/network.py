"""The listener VLA network (paper section III-C): speaker vision and words in, 56 action tokens a frame out.

Sequence layout, per frame ``t`` (all frames of a clip in one causal sequence)::

    [words heard in frame t] [VIS_t] [STATE_t]                        parallel decoding (default)
    [words heard in frame t] [VIS_t] [STATE_t] [a_t,0 ... a_t,55]     autoregressive (RT-2 style)

``VIS_t`` is ``MLP_vis(speaker input of frame t)`` (DINOv2+SigLIP features, or the speaker's motion frame);
``STATE_t`` embeds the listener's previous frame (decoded bin centres; zeros at ``t = 0``), which closes the
loop. Words are embedded with the backbone's token embeddings. Frame ``t``'s 56 tokens are read off the
hidden state of ``STATE_t`` by the action head (:mod:`agents.vla.heads`). So a frame costs two or three new
tokens and one forward pass with the key-value cache, and a whole clip trains in one pass. In autoregressive
mode the same head reads the hidden state before each action token instead, and the action tokens are inputs
(bin embedding plus dimension embedding).

The same network gives the flat, token-per-action view that trl's ``DPOTrainer`` needs (:meth:`VLAModel.forward`,
:mod:`agents.vla.trl_support`); its nod gestures are in :class:`agents.vla.gestures.GestureMixin`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers.modeling_outputs import BaseModelOutputWithPast

from agents.vla.configuration import VLAConfig
from agents.vla.gestures import GestureMixin
from agents.vla.heads import MLP, ActionHead
from agents.vla.inputs import FrameCache, FrameInputs
from agents.vla.trl_support import flat_view


@dataclass
class FrameOutput:
    """Output of :meth:`VLAModel.frames`.

    Attributes:
        frame_hidden: (B, T, H) the hidden state of each frame's STATE token (e.g. for a value head).
        positions: (B,) tokens seen per sample (the next position id), to pass back on the next call.
        action_hidden: (B, T, 56, head_hidden) the action head's features, one per dimension (``lm_head`` gives
            logits); packed (N, 56, head_hidden) with a ``head_mask``; None where the decoder must draw first.
        past_key_values: the backbone's cache when ``use_cache``.
        attention_mask: (B, past + new) the 2-D mask matching the cache, to pass back on the next call.
    """

    frame_hidden: torch.Tensor
    positions: torch.Tensor
    action_hidden: torch.Tensor | None = None
    past_key_values: Any = None
    attention_mask: torch.Tensor | None = None

    def cache(self) -> FrameCache:
        """The state to continue from on the next call."""
        return FrameCache(self.past_key_values, self.attention_mask, self.positions)


class _Layout(NamedTuple):
    """Where each piece of a block of frames sits in the new tokens (valid tokens packed to the left)."""

    frame_mask: torch.Tensor  # (B, T) bool
    word_mask: torch.Tensor  # (B, T, W) bool, words of valid frames only
    act_in: torch.Tensor  # (B, T) bool, frames that feed their action tokens (autoregressive)
    start: torch.Tensor  # (B, T) first token of each frame
    vis_pos: torch.Tensor  # (B, T) its VIS token
    state_pos: torch.Tensor  # (B, T) its STATE token
    length: torch.Tensor  # (B,) new tokens per sample
    new_len: int  # new tokens of the longest sample
    rows: torch.Tensor  # (B, 1) offset of each sample's row in the flattened (B * new_len) tokens


def _frame_window_mask(layout: _Layout, new_mask: torch.Tensor, window: int) -> torch.Tensor:
    """(B, 1, L, L) bool attention of a block of frames fed at once: causal, valid keys, and a query of frame t
    sees keys of frames >= t - window only. Every query sees itself, so padding rows get no NaN."""
    b, new_len = new_mask.shape
    ends = torch.cat([layout.start[:, 1:], layout.length[:, None]], dim=1).contiguous()
    pos = torch.arange(new_len, device=new_mask.device)
    frame = torch.searchsorted(ends, pos.expand(b, -1).contiguous(), right=True)  # (B, L) each token's frame
    causal = pos[:, None] >= pos[None, :]
    near = frame[:, None, :] >= frame[:, :, None] - window
    allowed = (causal & near & new_mask[:, None, :]) | torch.eye(new_len, dtype=torch.bool, device=pos.device)
    return allowed[:, None]


class VLAModel(GestureMixin, nn.Module):
    """Backbone, projector, state encoder and action head; ``VLAForListening.base_model``."""

    action_low: torch.Tensor
    action_width: torch.Tensor
    bin_centers: torch.Tensor
    speaker_mean: torch.Tensor
    speaker_std: torch.Tensor
    gesture_offsets: torch.Tensor

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.config = config
        backbone_config = AutoConfig.for_model(**config.backbone)
        backbone_config._attn_implementation = "sdpa"
        self.backbone = AutoModel.from_config(backbone_config)
        h, n = config.hidden_size, config.action_dim
        # The order of the modules below is the order of their random initialisation: keep it.
        self.projector = MLP(config.speaker_dim, config.projector_hidden, h)
        self.state_encoder = MLP(n, config.projector_hidden, h)
        self.action_head = ActionHead(
            h, config.head_hidden, n, config.num_bins, config.head_state, config.head_groups,
            config.head_velocity, config.gesture_frames,
        )  # fmt: skip
        self.gesture_head = nn.Linear(h, 1) if config.gesture_frames else None
        self.autoregressive = config.decoding == "autoregressive"
        self.speaker_head = nn.Linear(h, config.speaker_dim) if config.speaker_prediction else None
        if self.autoregressive:
            self.action_embed = nn.Embedding(config.num_bins, h)
            self.dim_embed = nn.Embedding(n, h)
        # Derived from the config, so not saved with the weights (see reset_buffers).
        for name, shape in (("action_low", (n,)), ("action_width", (n,)), ("bin_centers", (n, config.num_bins)),
                            ("speaker_mean", (config.speaker_dim,)), ("speaker_std", (config.speaker_dim,)),
                            ("gesture_offsets", (config.gesture_frames + 1,))):  # fmt: skip
            self.register_buffer(name, torch.zeros(shape), persistent=False)
        self.reset_buffers()

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Fill the constant buffers (bin geometry, input normalisation) from the config."""
        config = self.config
        device = self.action_low.device
        low = torch.tensor(config.action_low, dtype=torch.float32, device=device)
        width = (torch.tensor(config.action_high, dtype=torch.float32, device=device) - low) / config.num_bins
        self.action_low.copy_(low)
        self.action_width.copy_(width)
        self.bin_centers.copy_(
            low[:, None] + (torch.arange(config.num_bins, device=device) + 0.5) * width[:, None]
        )
        self.speaker_mean.copy_(torch.tensor(config.speaker_mean, dtype=torch.float32))
        self.speaker_std.copy_(torch.tensor(config.speaker_std, dtype=torch.float32))
        self.gesture_offsets.copy_(torch.tensor([0.0, *config.gesture_profile], dtype=torch.float32))

    # --- action tokens <-> continuous frames, inside the graph -------------------------------------------------
    def decode_actions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., 56) to bin centres (..., 56), like ``ActionTokenizer.decode``."""
        return self.action_low + (tokens.to(self.action_low.dtype) + 0.5) * self.action_width

    def encode_actions(self, frames: torch.Tensor) -> torch.Tensor:
        """Continuous frames (..., 56) to tokens, like ``ActionTokenizer.encode``."""
        scaled = (frames.to(self.action_low.dtype) - self.action_low) / self.action_width
        return scaled.floor().clamp(0, self.config.num_bins - 1).long()

    def normalized_speaker(self, speaker_inputs: torch.Tensor) -> torch.Tensor:
        """Speaker inputs as the projector sees them (standardised per dimension)."""
        return (speaker_inputs.float() - self.speaker_mean) / self.speaker_std

    def speaker_prediction_error(
        self, frame_hidden: torch.Tensor, speaker_inputs: torch.Tensor, frame_mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error of the speaker's next (standardised) input frame predicted from each frame's hidden
        state (``speaker_prediction``): to predict it the network must follow whether the speaker is talking."""
        if self.speaker_head is None:
            raise ValueError("this model has no speaker head; build it with speaker_prediction=True")
        target = self.normalized_speaker(speaker_inputs)[:, 1:]
        pairs = (frame_mask[:, 1:] & frame_mask[:, :-1]).to(target.dtype)
        error = (self.speaker_head(frame_hidden[:, :-1]) - target).pow(2).mean(-1)
        return (error * pairs).sum() / pairs.sum().clamp(min=1)

    # --- the listener's previous frames -----------------------------------------------------------------------
    def previous_states(self, actions: torch.Tensor) -> torch.Tensor:
        """Teacher-forced states: frame t sees the decoded frame t-1 (zeros at t = 0, as the env does)."""
        frames = self.decode_actions(actions)
        return torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)

    def observed_states(self, states: torch.Tensor) -> torch.Tensor:
        """The part of previous frames (..., 56) the network sees: all, or (``expression_state=False``) only the
        pose, the expression zeroed as in a frame before the episode starts."""
        if self.config.expression_state:
            return states
        pose = torch.arange(states.shape[-1], device=states.device) >= self.config.expression_dim
        return states * pose.to(states.dtype)

    def normalized_state(self, states: torch.Tensor) -> torch.Tensor:
        """States (..., 56) as the state encoder and the grouped head see them, each dimension in about [-1, 1]."""
        # Scale each dimension by the tokenizer's range so expression (about +-4) and rotations (about +-0.3 rad)
        # reach the encoder on the same footing.
        return 2.0 * (states - self.action_low) / (self.action_width * self.config.num_bins) - 1.0

    def last_steps(
        self, prev_listener: torch.Tensor, prev2_listener: torch.Tensor | None, prev_tokens: torch.Tensor
    ) -> torch.Tensor | None:
        """(B, T, 56) token change from each frame's ``prev2_listener`` to its ``prev_listener`` (None: no velocity)."""
        if not self.config.head_velocity:
            return None
        if prev2_listener is None:
            prev2_listener = torch.cat([prev_listener[:, :1], prev_listener[:, :-1]], dim=1)
        return prev_tokens - self.encode_actions(prev2_listener)

    # --- the frame-structured forward ------------------------------------------------------------------------
    def frames(
        self,
        inputs: FrameInputs,
        cache: FrameCache | None = None,
        *,
        use_cache: bool = False,
        head_mask: torch.Tensor | None = None,
        frame_window: int = 0,
    ) -> FrameOutput:
        """Run frames (B, T) through the network, optionally continuing ``cache`` (the state a previous call
        returned, :meth:`FrameOutput.cache`).

        Args:
            inputs: the frames (see :class:`~agents.vla.inputs.FrameInputs`).
            cache: what the previous call fed, or None to start.
            use_cache: return the cache to continue from.
            head_mask: (B, T) bool; when given, the action head runs only on these frames and ``action_hidden``
                is packed (N, 56, head_hidden) in row-major order (SFT uses it to score a subset of frames).
            frame_window: > 0 (without a cache): frame t attends only to frames t - frame_window .. t, what a
                cached decoder that keeps ``frame_window`` frames (``DecodeState.keep_last_frames``) sees, so a
                teacher-forced pass scores its closed-loop trajectories exactly (episode PPO).
        """
        cache = cache or FrameCache()
        prev_listener = self.observed_states(inputs.prev_listener)
        prev2_listener = (
            None if inputs.prev2_listener is None else self.observed_states(inputs.prev2_listener)
        )
        layout = self._layout(inputs)
        embeds = self._embed(inputs, prev_listener, layout)
        b, new_len = embeds.shape[:2]
        new_mask = torch.arange(new_len, device=embeds.device)[None, :] < layout.length[:, None]
        positions = cache.positions
        if positions is None:
            positions = torch.zeros(b, dtype=torch.long, device=embeds.device)
        position_ids = positions[:, None] + torch.arange(new_len, device=embeds.device)[None, :]
        full_mask = (
            new_mask.long()
            if cache.attention_mask is None
            else torch.cat([cache.attention_mask, new_mask.long()], 1)
        )
        backbone_mask = full_mask
        if frame_window > 0 and cache.attention_mask is None:
            backbone_mask = _frame_window_mask(layout, new_mask, frame_window)
        out = self.backbone(
            inputs_embeds=embeds, attention_mask=backbone_mask, position_ids=position_ids,
            past_key_values=cache.past_key_values, use_cache=use_cache,
        )  # fmt: skip
        hidden = out.last_hidden_state.reshape(b * new_len, self.config.hidden_size)
        frame_hidden = hidden[(layout.rows + layout.state_pos).clamp(max=b * new_len - 1)]
        action_hidden = self._action_features(
            inputs, prev_listener, prev2_listener, hidden, frame_hidden, layout, head_mask
        )
        return FrameOutput(
            action_hidden=action_hidden, frame_hidden=frame_hidden,
            past_key_values=out.past_key_values if use_cache else None,
            attention_mask=full_mask if use_cache else None, positions=positions + layout.length,
        )  # fmt: skip

    def _layout(self, inputs: FrameInputs) -> _Layout:
        """Token positions of every piece within the new block, valid tokens packed to the left."""
        speaker_inputs = inputs.speaker_inputs
        b, t = speaker_inputs.shape[:2]
        device = speaker_inputs.device
        frame_mask = inputs.frame_mask
        if frame_mask is None:
            frame_mask = torch.ones(b, t, dtype=torch.bool, device=device)
        frame_mask = frame_mask.bool()
        word_ids, word_mask = inputs.word_ids, inputs.word_mask
        if word_ids is None:
            word_ids = torch.zeros(b, t, 0, dtype=torch.long, device=device)
            word_mask = torch.zeros(b, t, 0, dtype=torch.bool, device=device)
        word_mask = (
            word_mask if word_mask is not None else torch.ones_like(word_ids, dtype=torch.bool)
        ).bool()
        word_mask = word_mask & frame_mask[..., None]
        n_act = self.config.action_dim if self.autoregressive else 0
        if self.autoregressive and inputs.actions is not None:
            action_inputs = inputs.action_inputs
            act_in = frame_mask if action_inputs is None else (action_inputs.bool() & frame_mask)
        else:
            act_in = torch.zeros_like(frame_mask)
        n_words = word_mask.sum(-1)
        block = (n_words + 2 + act_in.long() * n_act) * frame_mask
        start = torch.cumsum(block, dim=1) - block
        vis_pos = start + n_words
        length = block.sum(1)
        new_len = max(int(length.max()), 1)
        rows = (torch.arange(b, device=device) * new_len)[:, None]
        return _Layout(frame_mask, word_mask, act_in, start, vis_pos, vis_pos + 1, length, new_len, rows)

    def _embed(self, inputs: FrameInputs, prev_listener: torch.Tensor, layout: _Layout) -> torch.Tensor:
        """The new tokens' input embeddings (B, new_len, H): words, VIS, STATE and (autoregressive) actions."""
        frame_mask, word_mask, rows = layout.frame_mask, layout.word_mask, layout.rows
        b, h = frame_mask.shape[0], self.config.hidden_size
        device = inputs.speaker_inputs.device
        vis = self.projector(self.normalized_speaker(inputs.speaker_inputs))
        state = self.state_encoder(self.normalized_state(prev_listener.float()))
        index = [(rows + layout.vis_pos)[frame_mask], (rows + layout.state_pos)[frame_mask]]
        values = [vis[frame_mask], state[frame_mask]]
        word_ids = inputs.word_ids
        if word_ids is not None and word_ids.shape[-1] > 0:
            word_pos = layout.start[..., None] + torch.arange(word_ids.shape[-1], device=device)
            index.append((rows[..., None] + word_pos)[word_mask])
            values.append(self.backbone.get_input_embeddings()(word_ids[word_mask]))
        if self.autoregressive and bool(layout.act_in.any()):
            assert inputs.actions is not None  # act_in is all False without actions
            n_act = self.config.action_dim
            act_pos = layout.state_pos[..., None] + 1 + torch.arange(n_act, device=device)
            emb = self.action_embed(inputs.actions) + self.dim_embed.weight
            index.append((rows[..., None] + act_pos)[layout.act_in].reshape(-1))
            values.append(emb[layout.act_in].reshape(-1, h))
        flat_index = torch.cat(index)
        flat_values = torch.cat([v.to(vis.dtype) for v in values])
        embeds = torch.zeros(b * layout.new_len, h, dtype=vis.dtype, device=device)
        return embeds.index_copy(0, flat_index, flat_values).view(b, layout.new_len, h)

    def _action_features(
        self, inputs: FrameInputs, prev_listener: torch.Tensor, prev2_listener: torch.Tensor | None,
        hidden: torch.Tensor, frame_hidden: torch.Tensor, layout: _Layout, head_mask: torch.Tensor | None,
    ) -> torch.Tensor | None:  # fmt: skip
        """The action head's features of the frames (``head_mask``: of those only), or None where the decoder
        must draw something first (a grouped head's earlier groups, a gesture model's nod phase)."""
        actions, gesture_phases = inputs.actions, inputs.gesture_phases
        prev_tokens = self.encode_actions(prev_listener)
        last_steps = self.last_steps(prev_listener, prev2_listener, prev_tokens)
        select: Callable[[torch.Tensor], torch.Tensor] = (
            (lambda x: x) if head_mask is None else (lambda x: x[head_mask.bool()])
        )
        if self.autoregressive:
            n_act, state_pos = self.config.action_dim, layout.state_pos
            src = torch.cat(
                [
                    state_pos[..., None],
                    state_pos[..., None] + 1 + torch.arange(n_act - 1, device=hidden.device),
                ],
                -1,
            )
            src_hidden = hidden[(layout.rows[..., None] + src).clamp(max=hidden.shape[0] - 1)]
            return self.action_head.features(select(src_hidden), select(prev_tokens), per_dim=True)
        if self.action_head.grouped and actions is None:
            return None  # decoded group by group (sample_grouped)
        if self.gestures and gesture_phases is None and actions is None:
            return None  # the decoder samples the nod phase first (decode_frames)
        head_tokens = prev_tokens
        if self.gestures:
            if gesture_phases is None:
                assert actions is not None  # the branch above took the case with neither
                gesture_phases = self.gesture_targets(actions, layout.frame_mask)[1]
            first = torch.zeros_like(gesture_phases[:, :1])
            prev_phases = torch.cat([first, gesture_phases[:, :-1]], dim=1)
            head_tokens = self.gesture_hint(prev_listener, gesture_phases, prev_phases)
        current = None if actions is None else self.normalized_state(self.decode_actions(actions))
        return self.action_head.features(
            select(frame_hidden),
            select(head_tokens),
            current=None if current is None else select(current),
            last_steps=None if last_steps is None else select(last_steps),
            phases=None if gesture_phases is None else select(gesture_phases),
        )

    # --- closed-loop decoding pieces ---------------------------------------------------------------------------
    def sample_grouped(
        self, frame_hidden: torch.Tensor, prev_listener: torch.Tensor, sampler: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, 56) and their logits (B, 56, bins) of one frame, group by group (grouped action head)."""
        head = self.action_head
        prev_tokens = self.encode_actions(prev_listener)
        up_h = head.up(frame_hidden)
        tokens = torch.zeros_like(prev_tokens)
        current = torch.zeros_like(prev_listener, dtype=up_h.dtype)
        logits = up_h.new_zeros(*tokens.shape, self.config.num_bins)
        for dims in head.groups:
            logits[:, dims] = head.group_logits(up_h, prev_tokens, current, dims)
            tokens[:, dims] = sampler(logits[:, dims], dims=dims)
            current[:, dims] = self.normalized_state(self.decode_actions(tokens))[:, dims]
        return tokens, logits

    def action_step(self, token_hidden: torch.Tensor, prev_token: torch.Tensor, dim: int) -> torch.Tensor:
        """Logits (B, num_bins) of dimension ``dim`` from the hidden state before it (autoregressive decoding);
        ``prev_token`` (B,) is the dimension's token in the previous frame."""
        return self.action_head.step(token_hidden, prev_token, dim)

    def feed_action(
        self, token: torch.Tensor, dim: int, cache: FrameCache
    ) -> tuple[torch.Tensor, FrameCache]:
        """Feed one action token per sample (autoregressive) after ``cache``; returns the hidden state after it
        (B, H) and the cache that continues from it."""
        assert cache.attention_mask is not None and cache.positions is not None
        emb = (self.action_embed(token) + self.dim_embed.weight[dim])[:, None, :]
        mask = torch.cat([cache.attention_mask, torch.ones_like(cache.attention_mask[:, :1])], 1)
        out = self.backbone(
            inputs_embeds=emb, attention_mask=mask, position_ids=cache.positions[:, None],
            past_key_values=cache.past_key_values, use_cache=True,
        )  # fmt: skip
        return out.last_hidden_state[:, -1], FrameCache(cache.past_key_values, mask, cache.positions + 1)

    # --- the flat view for trl -------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        speaker_inputs: torch.Tensor | None = None,
        word_ids: torch.Tensor | None = None,
        word_mask: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        **unused: Any,
    ) -> BaseModelOutputWithPast:
        """The flat, token-per-action view that trl's fused LM head calls as ``model.base_model``; see
        :func:`agents.vla.trl_support.flat_view`. ``attention_mask`` is unused: the action tokens' frames are
        rebuilt from ``input_ids``."""
        return flat_view(self, input_ids, speaker_inputs, word_ids, word_mask, frame_mask)
