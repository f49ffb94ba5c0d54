"""The listener VLA network (paper section III-C): speaker vision and words in, 56 action tokens a frame out.

Sequence layout, per frame ``t`` (all frames of a clip in one causal sequence)::

    [words heard in frame t] [VIS_t] [STATE_t]                        parallel decoding (default)
    [words heard in frame t] [VIS_t] [STATE_t] [a_t,0 ... a_t,55]     autoregressive (RT-2 style)

``VIS_t`` is ``MLP_vis(speaker input of frame t)`` (DINOv2+SigLIP features, or the speaker's motion frame);
``STATE_t`` embeds the listener's previous frame (decoded bin centres; zeros at ``t = 0``), which closes the
loop. Words are embedded with the backbone's token embeddings. Frame ``t``'s 56 tokens are read off the
hidden state of ``STATE_t`` by an action head: one small MLP shared by all dimensions, conditioned on a
learned query per dimension, then one linear map to the 256 bins (``get_output_embeddings()``). So a frame
costs two or three new tokens and one forward pass with the key-value cache, and a whole clip trains in one
pass. In autoregressive mode the same head reads the hidden state before each action token instead, and the
action tokens are inputs (bin embedding plus dimension embedding).

The same network gives the flat, token-per-action view that trl's ``DPOTrainer`` needs (see
:meth:`VLAModel.forward` and :mod:`agents.vla.trl_support`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, GenerationConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils import ModelOutput

from agents.vla.configuration import VLAConfig


class MLP(nn.Module):
    """Linear, GELU, Linear: the paper's ``MLP^vis`` projector and the state encoder."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ActionHead(nn.Module):
    """Per-dimension action logits: ``lm_head(norm(gelu(up(h) + query_j + prev_embed(prev_token_j) + c_j)))``.

    ``up(h)`` is computed once per frame and shared by the 56 dimensions; the learned query of dimension ``j``
    shifts it before the non-linearity, so each dimension reads its own features. The embedding of the
    dimension's previous token (the listener's last frame, which is in the context anyway) hands the head the
    exact bin to continue from, so smooth motion is cheap to learn. About ``56 * head_hidden * num_bins``
    multiply-adds a frame. ``lm_head`` (``Linear(head_hidden, num_bins)``) is the only part that trl's fused
    log-prob kernel sees.

    With ``groups > 1`` the dimensions are split into that many contiguous groups decoded in order, and
    ``c_j`` is a masked linear map of the current frame's values of the earlier groups (zero otherwise): the
    frame's tokens are then drawn from ``prod_g p(group g | context, groups < g)`` instead of 56 independent
    marginals, so a sampled face can commit to one response (a smile in every smile dimension) instead of
    mixing the responses the speaker allows. Training still scores all 56 tokens in one pass (teacher forcing
    gives the earlier groups); decoding runs the head once per group, the backbone once per frame.
    """

    group_mask: torch.Tensor

    def __init__(
        self, hidden: int, head_hidden: int, action_dim: int, num_bins: int, head_state: bool = True,
        groups: int = 1, velocity: int = 0, gesture_frames: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.velocity = velocity
        # One table per dimension: expression steps tend to reverse (noise), head steps to carry on (a nod).
        self.step_embed = nn.Embedding(action_dim * (2 * velocity + 1), head_hidden) if velocity else None
        # One table per dimension too: frame k of a nod moves the pitch one way and may raise the brows.
        self.phase_embed = (
            nn.Embedding(action_dim * (gesture_frames + 1), head_hidden) if gesture_frames else None
        )
        self.up = nn.Linear(hidden, head_hidden)
        self.query = nn.Parameter(torch.zeros(action_dim, head_hidden))
        self.prev_embed = nn.Embedding(num_bins, head_hidden) if head_state else None
        self.norm = nn.LayerNorm(head_hidden)
        self.lm_head = nn.Linear(head_hidden, num_bins)
        # Plain ints, not tensors: from_pretrained builds the module on the meta device.
        bounds = [round(action_dim * g / groups) for g in range(groups + 1)]
        self.groups = [list(range(a, b)) for a, b in pairwise(bounds)]
        # Zero at initialisation: a grouped head starts as the independent one.
        self.couple = nn.Parameter(torch.zeros(action_dim, head_hidden, action_dim)) if groups > 1 else None
        self.register_buffer("group_mask", torch.zeros(action_dim, action_dim), persistent=False)
        if self.group_mask.device.type != "meta":
            self.reset_buffers()

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """``group_mask[j, i]`` is 1 where dimension ``j``'s group comes after dimension ``i``'s."""
        group_of = torch.tensor(
            [g for g, dims in enumerate(self.groups) for _ in dims], device=self.group_mask.device
        )
        self.group_mask.copy_((group_of[:, None] > group_of[None, :]).float())

    @property
    def grouped(self) -> bool:
        return self.couple is not None

    def _coupling(self, current: torch.Tensor, dims: list[int] | slice = slice(None)) -> torch.Tensor:
        """(..., 56) normalised current values -> (..., len(dims), head_hidden) inputs from earlier groups."""
        assert self.couple is not None
        weight = self.couple[dims] * self.group_mask[dims][:, None, :]
        return torch.einsum("...i,dki->...dk", current.to(weight.dtype), weight)

    def features(
        self,
        h: torch.Tensor,
        prev_tokens: torch.Tensor,
        per_dim: bool = False,
        current: torch.Tensor | None = None,
        last_steps: torch.Tensor | None = None,
        phases: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``h`` (..., H) -> (..., 56, head_hidden); with ``per_dim``, ``h`` is already (..., 56, H).

        ``prev_tokens`` (..., 56) are the tokens of the listener's previous frame; ``current`` (..., 56) the
        normalised values of the frame being scored (teacher forcing; a grouped head needs them);
        ``last_steps`` (..., 56) the token change between the two previous frames (``velocity`` > 0);
        ``phases`` (...) the frame's phase in a nod (``gesture_frames`` > 0).
        """
        u = self.up(h) if per_dim else self.up(h).unsqueeze(-2)
        u = u + self.query
        if self.prev_embed is not None:
            u = u + self.prev_embed(prev_tokens)
        if self.step_embed is not None:
            if last_steps is None:
                raise ValueError("an action head with velocity needs the last step of each dimension")
            v = self.velocity
            table = torch.arange(last_steps.shape[-1], device=last_steps.device) * (2 * v + 1) + v
            u = u + self.step_embed(last_steps.clamp(-v, v) + table)
        if self.phase_embed is not None:
            if phases is None:
                raise ValueError("an action head with gestures needs each frame's phase in a nod")
            dims = prev_tokens.shape[-1]
            rows = phases[..., None] * dims + torch.arange(dims, device=phases.device)
            u = u + self.phase_embed(rows)
        if self.couple is not None:
            if current is None:
                raise ValueError(
                    "a grouped action head needs the frame's actions to score it (teacher forcing)"
                )
            u = u + self._coupling(current)
        return self.norm(F.gelu(u))

    def group_logits(
        self, up_h: torch.Tensor, prev_tokens: torch.Tensor, current: torch.Tensor, dims: list[int]
    ) -> torch.Tensor:
        """Logits (B, len(dims), bins) of one group from ``up(h)`` (B, head_hidden) and the groups before it."""
        u = up_h[:, None, :] + self.query[dims] + self._coupling(current, dims)
        if self.prev_embed is not None:
            u = u + self.prev_embed(prev_tokens[:, dims])
        return self.lm_head(self.norm(F.gelu(u)))

    def step(self, h: torch.Tensor, prev_token: torch.Tensor, dim: int) -> torch.Tensor:
        """Logits (B, num_bins) of one dimension from a hidden state (B, H) (autoregressive decoding)."""
        u = self.up(h) + self.query[dim]
        if self.prev_embed is not None:
            u = u + self.prev_embed(prev_token)
        return self.lm_head(self.norm(F.gelu(u)))


@dataclass
class FrameOutput(ModelOutput):
    """Output of :meth:`VLAModel.frames`.

    Attributes:
        action_hidden: (B, T, 56, head_hidden) the action head's features, one per dimension (``lm_head`` gives logits).
        frame_hidden: (B, T, H) the hidden state of each frame's STATE token (e.g. for a value head).
        past_key_values: the backbone's cache when ``use_cache``.
        attention_mask: (B, past + new) the 2-D mask matching the cache, to pass back on the next call.
        positions: (B,) tokens seen per sample (the next position id), to pass back on the next call.
    """

    action_hidden: torch.Tensor | None = None
    frame_hidden: torch.Tensor | None = None
    past_key_values: Any = None
    attention_mask: torch.Tensor | None = None
    positions: torch.Tensor | None = None


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


class VLAModel(nn.Module):
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

    @property
    def gestures(self) -> int:
        """Frames of a nod gesture (0: the model has no gestures)."""
        return self.config.gesture_frames

    def gesture_logits(self, frame_hidden: torch.Tensor) -> torch.Tensor:
        """(B, T) logit that a nod starts at each frame, from the frames' hidden states."""
        if self.gesture_head is None:
            raise ValueError("this model has no gestures; build it with gesture_frames > 0")
        return self.gesture_head(frame_hidden).squeeze(-1)

    def gesture_targets(
        self, actions: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nod onsets (B, T) bool and phases (B, T) long found in action tokens (B, T, 56) (teacher forcing)."""
        from agents.vla.gestures import nod_onsets, phases_from_onsets

        config = self.config
        mask = torch.ones(actions.shape[:2], dtype=torch.bool, device=actions.device)
        if frame_mask is not None:
            mask = frame_mask.bool()
        pitch = self.decode_actions(actions)[..., config.gesture_dim]
        onsets = nod_onsets(pitch, mask, config.gesture_frames // 2, config.gesture_threshold)
        return onsets, phases_from_onsets(onsets, config.gesture_frames)

    def gesture_hint(
        self, prev_listener: torch.Tensor, phases: torch.Tensor, prev_phases: torch.Tensor
    ) -> torch.Tensor:
        """Tokens (..., 56) the action head continues from: the previous frame's, with the nod dimension moved
        along the data's mean nod from the previous frame's phase to this one's (``gesture_profile``)."""
        step = self.gesture_offsets[phases] - self.gesture_offsets[prev_phases]
        moved = prev_listener.clone()
        moved[..., self.config.gesture_dim] = moved[..., self.config.gesture_dim] + step.to(moved.dtype)
        return self.encode_actions(moved)

    def gesture_logprobs(
        self, frame_hidden: torch.Tensor, actions: torch.Tensor, frame_mask: torch.Tensor,
        targets: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """(B, T) log-probability of each frame's nod decision (start one or not) where one may start, else 0.
        ``targets``: the :meth:`gesture_targets` of ``actions`` when the caller has them already."""
        from agents.vla.gestures import decision_logprob, onset_allowed

        onsets, phases = self.gesture_targets(actions, frame_mask) if targets is None else targets
        return decision_logprob(
            self.gesture_logits(frame_hidden), onsets, onset_allowed(phases, self.gestures)
        )

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

    def _normalized_state(self, states: torch.Tensor) -> torch.Tensor:
        # Scale each dimension by the tokenizer's range so expression (about +-4) and rotations (about +-0.3 rad)
        # reach the encoder on the same footing.
        return 2.0 * (states - self.action_low) / (self.action_width * self.config.num_bins) - 1.0

    # --- the frame-structured forward ------------------------------------------------------------------------
    def frames(
        self,
        speaker_inputs: torch.Tensor,
        prev_listener: torch.Tensor,
        word_ids: torch.Tensor | None = None,
        word_mask: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        actions: torch.Tensor | None = None,
        action_inputs: torch.Tensor | None = None,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        use_cache: bool = False,
        head_mask: torch.Tensor | None = None,
        prev2_listener: torch.Tensor | None = None,
        gesture_phases: torch.Tensor | None = None,
    ) -> FrameOutput:
        """Run frames (B, T) through the network, optionally continuing a cache.

        Args:
            speaker_inputs: (B, T, speaker_dim) raw speaker features or motion (normalised here).
            prev_listener: (B, T, 56) the listener's previous frame for each frame (continuous).
            word_ids, word_mask: (B, T, W) text-token ids of the words heard in each frame, valid ids first.
            frame_mask: (B, T) bool, False for padding or invalid frames (they take no tokens).
            actions: (B, T, 56) tokens; autoregressive mode feeds them as inputs (teacher forcing).
            action_inputs: (B, T) bool, which frames feed their actions (autoregressive; default: all valid
                frames when ``actions`` is given). A frame being decoded feeds none.
            past_key_values, attention_mask, positions: the state returned by the previous call.
            use_cache: return the cache to continue from.
            head_mask: (B, T) bool; when given, the action head runs only on these frames and ``action_hidden``
                is packed (N, 56, head_hidden) in row-major order (SFT uses it to score a subset of frames).
            prev2_listener: (B, T, 56) the frame before each ``prev_listener`` (a head with velocity reads the
                step between them). Default: the previous row of ``prev_listener`` (teacher forcing over a
                block of frames); the first frame of the block then gets a zero step, so a cached caller that
                feeds one frame at a time must pass it.
            gesture_phases: (B, T) each frame's phase in a nod (gesture models). Default: found in ``actions``
                (teacher forcing); with neither, ``action_hidden`` is None and the decoder samples the phase.
                The frame before the block counts as phase 0.
        """
        b, t = speaker_inputs.shape[:2]
        device = speaker_inputs.device
        prev_listener = self.observed_states(prev_listener)
        if prev2_listener is not None:
            prev2_listener = self.observed_states(prev2_listener)
        if frame_mask is None:
            frame_mask = torch.ones(b, t, dtype=torch.bool, device=device)
        frame_mask = frame_mask.bool()
        if word_ids is None:
            word_ids = torch.zeros(b, t, 0, dtype=torch.long, device=device)
            word_mask = torch.zeros(b, t, 0, dtype=torch.bool, device=device)
        word_mask = (
            word_mask if word_mask is not None else torch.ones_like(word_ids, dtype=torch.bool)
        ).bool()
        word_mask = word_mask & frame_mask[..., None]
        n_act = self.config.action_dim if self.autoregressive else 0
        if self.autoregressive and actions is not None:
            act_in = frame_mask if action_inputs is None else (action_inputs.bool() & frame_mask)
        else:
            act_in = torch.zeros_like(frame_mask)

        # Token positions of every piece within the new block, valid tokens packed to the left.
        n_words = word_mask.sum(-1)
        block = (n_words + 2 + act_in.long() * n_act) * frame_mask
        start = torch.cumsum(block, dim=1) - block
        vis_pos = start + n_words
        state_pos = vis_pos + 1
        length = block.sum(1)
        new_len = max(int(length.max()), 1)
        rows = (torch.arange(b, device=device) * new_len)[:, None]

        h = self.config.hidden_size
        x = self.normalized_speaker(speaker_inputs)
        vis = self.projector(x)
        state = self.state_encoder(self._normalized_state(prev_listener.float()))
        index = [(rows + vis_pos)[frame_mask], (rows + state_pos)[frame_mask]]
        values = [vis[frame_mask], state[frame_mask]]
        if word_ids.shape[-1] > 0:
            word_pos = start[..., None] + torch.arange(word_ids.shape[-1], device=device)
            index.append((rows[..., None] + word_pos)[word_mask])
            values.append(self.backbone.get_input_embeddings()(word_ids[word_mask]))
        if self.autoregressive and bool(act_in.any()):
            act_pos = state_pos[..., None] + 1 + torch.arange(n_act, device=device)
            emb = self.action_embed(actions) + self.dim_embed.weight
            index.append((rows[..., None] + act_pos)[act_in].reshape(-1))
            values.append(emb[act_in].reshape(-1, h))
        flat_index = torch.cat(index)
        flat_values = torch.cat([v.to(vis.dtype) for v in values])
        embeds = torch.zeros(b * new_len, h, dtype=vis.dtype, device=device).index_copy(
            0, flat_index, flat_values
        )
        embeds = embeds.view(b, new_len, h)

        new_mask = torch.arange(new_len, device=device)[None, :] < length[:, None]
        if positions is None:
            positions = torch.zeros(b, dtype=torch.long, device=device)
        position_ids = positions[:, None] + torch.arange(new_len, device=device)[None, :]
        full_mask = (
            new_mask.long() if attention_mask is None else torch.cat([attention_mask, new_mask.long()], 1)
        )
        out = self.backbone(
            inputs_embeds=embeds, attention_mask=full_mask, position_ids=position_ids,
            past_key_values=past_key_values, use_cache=use_cache,
        )  # fmt: skip
        hidden = out.last_hidden_state.reshape(b * new_len, h)
        last = b * new_len - 1
        frame_hidden = hidden[(rows + state_pos).clamp(max=last)]
        prev_tokens = self.encode_actions(prev_listener)
        last_steps = self.last_steps(prev_listener, prev2_listener, prev_tokens)
        select = (lambda x: x) if head_mask is None else (lambda x: x[head_mask.bool()])
        if self.autoregressive:
            src = torch.cat(
                [state_pos[..., None], state_pos[..., None] + 1 + torch.arange(n_act - 1, device=device)], -1
            )
            src_hidden = hidden[(rows[..., None] + src).clamp(max=last)]
            action_hidden = self.action_head.features(select(src_hidden), select(prev_tokens), per_dim=True)
        elif self.action_head.grouped and actions is None:
            action_hidden = None  # decoded group by group (sample_grouped)
        elif self.gestures and gesture_phases is None and actions is None:
            action_hidden = None  # the decoder samples the nod phase first (decode_frames)
        else:
            head_tokens = prev_tokens
            if self.gestures:
                if gesture_phases is None:
                    assert actions is not None  # the branch above took the case with neither
                    gesture_phases = self.gesture_targets(actions, frame_mask)[1]
                first = torch.zeros_like(gesture_phases[:, :1])
                prev_phases = torch.cat([first, gesture_phases[:, :-1]], dim=1)
                head_tokens = self.gesture_hint(prev_listener, gesture_phases, prev_phases)
            current = None if actions is None else self._normalized_state(self.decode_actions(actions))
            action_hidden = self.action_head.features(
                select(frame_hidden),
                select(head_tokens),
                current=None if current is None else select(current),
                last_steps=None if last_steps is None else select(last_steps),
                phases=None if gesture_phases is None else select(gesture_phases),
            )
        return FrameOutput(
            action_hidden=action_hidden, frame_hidden=frame_hidden,
            past_key_values=out.past_key_values if use_cache else None,
            attention_mask=full_mask if use_cache else None, positions=positions + length,
        )  # fmt: skip

    def last_steps(
        self, prev_listener: torch.Tensor, prev2_listener: torch.Tensor | None, prev_tokens: torch.Tensor
    ) -> torch.Tensor | None:
        """(B, T, 56) token change from each frame's ``prev2_listener`` to its ``prev_listener`` (None: no velocity)."""
        if not self.config.head_velocity:
            return None
        if prev2_listener is None:
            prev2_listener = torch.cat([prev_listener[:, :1], prev_listener[:, :-1]], dim=1)
        return prev_tokens - self.encode_actions(prev2_listener)

    def gesture_head_features(
        self, frame_hidden: torch.Tensor, prev_listener: torch.Tensor, prev2_listener: torch.Tensor | None,
        phase: torch.Tensor, prev_phase: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """Action head features (B, 56, head_hidden) of one frame given its sampled nod phase (B,) and the
        previous frame's (B,)."""
        prev_listener = self.observed_states(prev_listener)
        if prev2_listener is not None:
            prev2_listener = self.observed_states(prev2_listener)
        prev_tokens = self.encode_actions(prev_listener)
        steps = self.last_steps(
            prev_listener[:, None],
            None if prev2_listener is None else prev2_listener[:, None],
            prev_tokens[:, None],
        )
        return self.action_head.features(
            frame_hidden, self.gesture_hint(prev_listener, phase, prev_phase),
            last_steps=None if steps is None else steps[:, 0], phases=phase,
        )  # fmt: skip

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
            current[:, dims] = self._normalized_state(self.decode_actions(tokens))[:, dims]
        return tokens, logits

    def action_step(self, token_hidden: torch.Tensor, prev_token: torch.Tensor, dim: int) -> torch.Tensor:
        """Logits (B, num_bins) of dimension ``dim`` from the hidden state before it (autoregressive decoding);
        ``prev_token`` (B,) is the dimension's token in the previous frame."""
        return self.action_head.step(token_hidden, prev_token, dim)

    def feed_action(self, token: torch.Tensor, dim: int, past_key_values: Any, attention_mask: torch.Tensor,
                    positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Feed one action token per sample (autoregressive); returns (hidden (B, H), mask, positions)."""
        emb = (self.action_embed(token) + self.dim_embed.weight[dim])[:, None, :]
        mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], 1)
        out = self.backbone(
            inputs_embeds=emb, attention_mask=mask, position_ids=positions[:, None],
            past_key_values=past_key_values, use_cache=True,
        )  # fmt: skip
        return out.last_hidden_state[:, -1], mask, positions + 1

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
        """The flat, token-per-action view (what trl's fused LM head calls as ``model.base_model``).

        ``input_ids`` (B, L) holds a prompt of special tokens and, in order, the clip's action tokens (ids
        ``< num_bins``: frame 0's 56 tokens, then frame 1's, ...); see :mod:`agents.vla.trl_support`. The
        speaker context comes as extra keys (``speaker_inputs``, ``word_ids``, ``word_mask``, ``frame_mask``,
        frames (B, T)). Returns ``last_hidden_state`` (B, L, H) whose position ``p - 1`` holds the action head
        features that ``get_output_embeddings()`` turns into the logits of the action token at ``p``; other
        positions are zeros. So ``log_softmax(lm_head(h[:, :-1]))`` scored at ``input_ids[:, 1:]`` is exactly
        the policy's log-probability of every action token. With nod gestures the tokens are scored given the
        nods found in them (:meth:`gesture_targets`); the nod decisions' own log-probabilities are not in this
        view, so trl's DPO tunes the tokens given the nods and leaves when to nod to SFT.
        """
        if speaker_inputs is None:
            raise ValueError(
                "VLAModel.forward (flat view) needs speaker_inputs (B, T, d) besides input_ids; build the batch "
                "with agents.vla.trl_support.VLAPreferenceCollator"
            )
        actions, positions, valid = _actions_from_flat(
            input_ids, self.config.num_bins, self.config.action_dim
        )
        b, t = speaker_inputs.shape[:2]
        if actions.shape[1] > t:
            raise ValueError(
                f"input_ids hold {actions.shape[1]} frames of actions but speaker_inputs only {t} frames"
            )
        if actions.shape[1] < t:
            pad = actions.new_zeros(b, t - actions.shape[1], actions.shape[2])
            actions = torch.cat([actions, pad], 1)
            positions = torch.cat([positions, positions.new_zeros(pad.shape)], 1)
            valid = torch.cat([valid, valid.new_zeros(b, pad.shape[1])], 1)
        fm = valid if frame_mask is None else (frame_mask.bool() & valid)
        if frame_mask is not None and bool((frame_mask.bool() != valid).any()):
            raise ValueError(
                "frame_mask disagrees with the number of action tokens (56 per frame) in input_ids"
            )
        out = self.frames(
            speaker_inputs, self.previous_states(actions), word_ids, word_mask, fm, actions=actions,
        )  # fmt: skip
        action_hidden = out.action_hidden
        assert action_hidden is not None
        h = action_hidden.shape[-1]
        flat = action_hidden.new_zeros(b * input_ids.shape[1], h)
        rows = (torch.arange(b, device=input_ids.device) * input_ids.shape[1])[:, None, None]
        target = (rows + positions - 1)[fm].reshape(-1)
        flat = flat.index_copy(0, target, action_hidden[fm].reshape(-1, h))
        return BaseModelOutputWithPast(last_hidden_state=flat.view(b, input_ids.shape[1], h))


def _actions_from_flat(input_ids: torch.Tensor, num_bins: int, action_dim: int):
    """Action tokens (B, T, 56), their positions in ``input_ids`` and a frame mask from a flat sequence."""
    is_action = input_ids < num_bins
    counts = is_action.sum(1)
    if bool((counts % action_dim != 0).any()):
        bad = int(counts[counts % action_dim != 0][0])
        raise ValueError(
            f"flat input_ids must hold whole frames of {action_dim} action tokens; found {bad} tokens"
        )
    if bool((counts == 0).any()):
        raise ValueError("flat input_ids: a sequence holds no action tokens (ids below num_bins)")
    t = int(counts.max()) // action_dim
    b, n = input_ids.shape[0], t * action_dim
    # Stable sort puts action positions first, in order.
    order = torch.sort((~is_action).long(), dim=1, stable=True).indices[:, :n]
    valid_tok = torch.arange(n, device=input_ids.device)[None, :] < counts[:, None]
    positions = torch.where(valid_tok, order, torch.zeros_like(order))
    actions = torch.where(valid_tok, input_ids.gather(1, order), torch.zeros_like(order))
    valid = torch.arange(t, device=input_ids.device)[None, :] < (counts // action_dim)[:, None]
    return actions.view(b, t, action_dim), positions.view(b, t, action_dim), valid


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

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> None:
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
        **unused: Any,
    ) -> VLAOutput | CausalLMOutputWithPast:
        """Frame view (no ``input_ids``): logits (B, T, 56, bins); flat view (``input_ids``): (B, L, bins).

        In the frame view ``prev_listener`` defaults to the teacher-forced states of ``actions``; ``labels``
        (tokens (B, T, 56)) give a mean cross-entropy; with ``head_mask`` (B, T) only those frames are scored and
        the logits are packed (N, 56, bins). In the flat view ``labels`` (B, L) are shifted like a causal LM's
        (-100 ignored).
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
        out = self.vla.frames(
            speaker_inputs, prev_listener, word_ids, word_mask, frame_mask, actions=actions,
            past_key_values=past_key_values, attention_mask=attention_mask, positions=positions,
            use_cache=bool(use_cache), head_mask=head_mask, prev2_listener=prev2_listener,
        )  # fmt: skip
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
