"""Closed-loop decoding of the VLA: one frame at a time with a key-value cache, parallel or autoregressive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from agents.vla.configuration import SAMPLING_MODES
from agents.vla.inputs import FrameCache, FrameInputs

if TYPE_CHECKING:
    from agents.vla.modeling import VLAForListening
    from agents.vla.network import FrameOutput, VLAModel

DRAWS = ("multinomial", "inverse-cdf")
"""How a token is drawn from its categorical: the same distribution, other random streams. ``multinomial`` (torch's,
one exponential per bin) is the default that results so far used; ``inverse-cdf`` (one uniform per token) makes
batched sampling about twice as fast on a CPU (``dyadic bench policy``)."""

# The older name of SAMPLING_MODES (experiments/evaluation.py and experiments/pipelines/evaluation.py read it).
DECODE_MODES = SAMPLING_MODES


@dataclass
class DecodeState(FrameCache):
    """What carries over between frames: the backbone's cache (:class:`~agents.vla.inputs.FrameCache`), the
    cache slots each decoded frame took and, for gesture models, each row's phase in a nod."""

    frame_tokens: list[int] | None = None  # cache slots taken by each decoded frame, oldest first
    gesture_phase: torch.Tensor | None = None  # (B,) each row's phase in a nod (gesture models)
    frame_hidden: torch.Tensor | None = None  # (B, H) the last decoded frame's hidden state

    def keep_last_frames(self, frames: int) -> None:
        """Evict the oldest frames' cache slots so at most ``frames`` frames stay.

        Keys keep their rotary positions, so the attention of later frames to the kept ones is unchanged; the
        model then never attends further back than it was trained to (e.g. SFT on crops). Every row of a batch
        gets the same number of slots per decoded frame (padding is masked), so this works for any batch size.
        """
        if self.frame_tokens is None or len(self.frame_tokens) <= frames or self.past_key_values is None:
            return
        drop = sum(self.frame_tokens[:-frames])
        self.frame_tokens = self.frame_tokens[-frames:]
        for layer in self.past_key_values.layers:
            layer.keys, layer.values = layer.keys[:, :, drop:], layer.values[:, :, drop:]
        assert self.attention_mask is not None
        self.attention_mask = self.attention_mask[:, drop:]


@dataclass
class Sampler:
    """How tokens are drawn from logits.

    ``mode`` is ``"sample"`` (at ``temperature``), ``"greedy"`` (the most likely bin of each dimension),
    ``"mean"`` (the bin nearest the expected value, i.e. the rounded expected bin index: the soft-decoded
    action of eq. 8, deterministic and smooth) or ``"mean_expression"`` (the first ``expression_dim``
    dimensions by their expected value, the head pose sampled at ``temperature``). ``greedy=True`` is
    shorthand for ``mode="greedy"``.

    Why ``mean_expression``: a sampled listener commits to one of the responses its data shows for the whole
    clip, so L2 and per-clip FD pay the unpredictable part twice (its own and the truth's); the expected
    expression pays it once. Sampling the head keeps it alive (a head decoded by its mean freezes). The price:
    the expected expression barely moves (measured in the issue 5 notes; `dyadic eval --decode` compares them).
    """

    temperature: float = 1.0
    greedy: bool = False
    generator: torch.Generator | None = None
    mode: str = "sample"
    expression_dim: int = 50
    draw: str = "multinomial"

    def __post_init__(self) -> None:
        if self.greedy:
            self.mode = "greedy"
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"mode: expected one of {SAMPLING_MODES}, found {self.mode!r}")
        if self.draw not in DRAWS:
            raise ValueError(f"draw: expected one of {DRAWS}, found {self.draw!r}")
        self.greedy = self.mode == "greedy"
        if self.mode in ("sample", "mean_expression") and not self.temperature > 0:
            raise ValueError(f"temperature must be positive (or use greedy=True), found {self.temperature}")

    def __call__(self, logits: torch.Tensor, dims: Any = None) -> torch.Tensor:
        """Tokens (..., D) from logits (..., D, bins) of the action dimensions ``dims`` (default 0..D-1)."""
        if self.mode != "mean_expression":
            return self._draw(logits, self.mode)
        index = torch.arange(logits.shape[-2]) if dims is None else torch.as_tensor(dims).reshape(-1)
        expression = (index < self.expression_dim).to(logits.device)
        # Drawing every dimension keeps the pose's random draws those of mode "sample" (common random numbers).
        return torch.where(expression, self._draw(logits, "mean"), self._draw(logits, "sample"))

    def onsets(self, logits: torch.Tensor) -> torch.Tensor:
        """Whether a nod starts (bool, same shape as ``logits``): drawn at temperature 1 when sampling (sharpening
        a rare event's probability would all but remove it), or where it is more likely than not."""
        if self.mode in ("greedy", "mean"):
            return logits > 0
        return torch.bernoulli(torch.sigmoid(logits.float()), generator=self.generator).bool()

    def _draw(self, logits: torch.Tensor, mode: str) -> torch.Tensor:
        if mode == "greedy":
            return logits.argmax(-1)
        if mode == "mean":
            probs = torch.softmax(logits.float(), dim=-1)
            index = torch.arange(logits.shape[-1], dtype=probs.dtype, device=probs.device)
            return (probs * index).sum(-1).round().long()
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        if self.draw == "multinomial":
            return torch.multinomial(flat, 1, generator=self.generator).view(probs.shape[:-1])
        # Inverse CDF: one uniform per token where multinomial's one-sample path draws one exponential per bin.
        cdf = flat.cumsum(-1)
        u = torch.rand(flat.shape[0], 1, generator=self.generator, dtype=cdf.dtype, device=cdf.device)
        index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=flat.shape[-1] - 1)
        return index.view(probs.shape[:-1])


def _logprob(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)


@torch.no_grad()
def decode_frames(
    model: VLAForListening, inputs: dict[str, torch.Tensor], state: DecodeState, sampler: Sampler
) -> tuple[torch.Tensor, torch.Tensor, DecodeState]:
    """Feed frames (B, T) after ``state`` and sample the last frame's 56 tokens.

    ``inputs`` holds ``speaker_inputs``, ``prev_listener``, ``word_ids``, ``word_mask``, ``frame_mask``,
    ``prev2_listener`` (the frame before ``prev_listener``; a head with velocity needs it) and, for
    autoregressive models with T > 1, ``actions`` of the earlier frames (the last frame's are decoded here).
    Returns tokens (B, 56), their log-probabilities under the untempered policy (B,) and the new state.
    """
    vla = model.vla
    # The grouped and autoregressive paths below read the previous frame directly, not through vla.frames.
    inputs = {
        **inputs,
        **{k: vla.observed_states(inputs[k]) for k in ("prev_listener", "prev2_listener") if k in inputs},
    }
    out = vla.frames(_frame_inputs(vla, inputs), state, use_cache=True)
    before = 0 if state.attention_mask is None else state.attention_mask.shape[1]
    if vla.autoregressive:
        tokens, logp, new_state = _decode_autoregressive(vla, out, inputs, sampler)
    else:
        tokens, logp, new_state = _decode_parallel(model, out, inputs, state, sampler)
    assert new_state.attention_mask is not None
    new_state.frame_tokens = [*(state.frame_tokens or []), new_state.attention_mask.shape[1] - before]
    new_state.frame_hidden = out.frame_hidden[:, -1]
    return tokens, logp, new_state


def _frame_inputs(vla: VLAModel, inputs: dict[str, torch.Tensor]) -> FrameInputs:
    """The network's inputs; an autoregressive model feeds the earlier frames' actions, not the last one's."""
    b, t = inputs["speaker_inputs"].shape[:2]
    action_inputs = None
    if vla.autoregressive:
        action_inputs = torch.ones(b, t, dtype=torch.bool, device=inputs["speaker_inputs"].device)
        action_inputs[:, -1] = False
        if "actions" not in inputs:
            if t > 1:
                raise ValueError(
                    "autoregressive decoding of several frames needs the earlier frames' actions"
                )
            inputs = {**inputs, "actions": torch.zeros(b, t, vla.config.action_dim, dtype=torch.long)}
    return FrameInputs(
        inputs["speaker_inputs"], inputs["prev_listener"], inputs.get("word_ids"), inputs.get("word_mask"),
        inputs.get("frame_mask"), actions=inputs.get("actions"), action_inputs=action_inputs,
        prev2_listener=inputs.get("prev2_listener"),
    )  # fmt: skip


def _decode_parallel(
    model: VLAForListening,
    out: FrameOutput,
    inputs: dict[str, torch.Tensor],
    state: DecodeState,
    sampler: Sampler,
) -> tuple[torch.Tensor, torch.Tensor, DecodeState]:
    """The last frame's tokens from one hidden state: at once, group by group, or after its nod decision."""
    vla = model.vla
    new_state = DecodeState(out.past_key_values, out.attention_mask, out.positions)
    head = model.get_output_embeddings()
    onset_logp: torch.Tensor | float = 0.0
    if vla.gestures:
        if inputs["speaker_inputs"].shape[1] > 1:
            raise ValueError(
                "a model with gestures decodes one frame at a time with the cache (its nod phase is "
                "carried in the decode state); it has no windowed policy"
            )
        action_hidden, onset_logp, new_state.gesture_phase = _gesture_step(
            vla, out.frame_hidden[:, -1], inputs, state, sampler
        )
        logits = head(action_hidden)
        tokens = sampler(logits)
    elif out.action_hidden is None:  # grouped head: group by group
        tokens, logits = vla.sample_grouped(out.frame_hidden[:, -1], inputs["prev_listener"][:, -1], sampler)
    else:
        logits = head(out.action_hidden[:, -1])  # (B, 56, bins)
        tokens = sampler(logits)
    return tokens, _logprob(logits, tokens).sum(-1) + onset_logp, new_state


def _decode_autoregressive(
    vla: VLAModel, out: FrameOutput, inputs: dict[str, torch.Tensor], sampler: Sampler
) -> tuple[torch.Tensor, torch.Tensor, DecodeState]:
    """RT-2 style: dimension 0 from the STATE token, each next one from the token just fed."""
    cache = out.cache()
    hidden = out.frame_hidden[:, -1]
    prev_tokens = vla.encode_actions(inputs["prev_listener"][:, -1])
    picked: list[torch.Tensor] = []
    logps: list[torch.Tensor] = []
    for dim in range(vla.config.action_dim):
        logits = vla.action_step(hidden, prev_tokens[:, dim], dim)
        token = sampler(logits[:, None], dims=[dim])[:, 0]
        picked.append(token)
        logps.append(_logprob(logits, token))
        hidden, cache = vla.feed_action(token, dim, cache)
    new_state = DecodeState(cache.past_key_values, cache.attention_mask, cache.positions)
    return torch.stack(picked, -1), torch.stack(logps, -1).sum(-1), new_state


def _gesture_step(
    vla: VLAModel,
    frame_hidden: torch.Tensor,
    inputs: dict[str, torch.Tensor],
    state: DecodeState,
    sampler: Sampler,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw whether a nod starts, advance the phase; returns the action head features (B, 56, hidden), the
    log-probability of the nod decision (B,) (0 where a nod is under way) and the new phase (B,)."""
    from agents.vla.gestures import decision_logprob, may_start, next_phase

    logits = vla.gesture_logits(frame_hidden).float()
    phase = state.gesture_phase
    if phase is None:
        phase = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    allowed = may_start(phase, vla.gestures)
    onset = sampler.onsets(logits) & allowed
    logp = decision_logprob(logits, onset, allowed)
    prev_phase, phase = phase, next_phase(phase, onset, vla.gestures)
    prev2 = inputs.get("prev2_listener")
    features = vla.gesture_head_features(
        frame_hidden,
        inputs["prev_listener"][:, -1],
        None if prev2 is None else prev2[:, -1],
        phase,
        prev_phase,
    )
    return features, logp, phase


@torch.no_grad()
def sample_window(
    model: VLAForListening, window: dict[str, torch.Tensor], sampler: Sampler
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the current frame's tokens (B, 56) and their log-probs (B,) from independent windows.

    ``window`` comes from ``VLAProcessor.observation_batch``; this is the stateless policy that Stable-Baselines3
    style training re-evaluates with ``VLAForListening.window_logits``.
    """
    inputs = dict(window)
    if model.vla.autoregressive:
        inputs["actions"] = window["window_actions"]
    tokens, logp, _ = decode_frames(model, inputs, DecodeState(), sampler)
    return tokens, logp
