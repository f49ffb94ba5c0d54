"""What trl's ``DPOTrainer`` needs to train the VLA: a token vocabulary for trajectories and a collator.

trl tokenizes ``prompt + completion`` strings and scores every completion token with
``log_softmax(lm_head(base_model(...).last_hidden_state[:, :-1]))`` at ``input_ids[:, 1:]`` (the fused LM head,
``trl.trainer.utils.add_fused_lm_head``). The VLA plays along with a flat view of a trajectory:

- the *preference tokenizer* has the 256 bins as tokens ``<a0> .. <a255>`` with ids 0..255 (so ids are
  labels of the action head ``get_output_embeddings()``, a ``Linear(H, 256)``), then ``<pad>``, ``<bos>``,
  ``<eos>``;
- a row's prompt is ``"<bos>"`` and a completion is ``" <a17> <a3> ..."``: frame 0's 56 tokens, then frame 1's;
- :class:`VLAPreferenceCollator` runs trl's collator, drops the appended ``<eos>`` from ``completion_mask`` and
  adds the speaker context of each row's clip (``speaker_inputs``, ``word_ids``, ``word_mask``, ``frame_mask``),
  twice, because trl stacks the chosen rows and then the rejected rows;
- ``VLAForListening.base_model`` (:class:`~agents.vla.network.VLAModel`) rebuilds the frame sequence from the
  action ids (teacher forcing, its own states included) and puts each action's head features one position
  before it (:func:`flat_view`), so trl's per-token log-probs are exactly the policy's
  (:meth:`VLAForListening.step_logprobs`).

Use ``DPOConfig(max_length=None, remove_unused_columns=False, ...)`` (trajectories are 56 tokens a frame)
and keep a ``clip_id`` column in the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.vla.inputs import FrameInputs

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast
    from transformers.modeling_outputs import BaseModelOutputWithPast

    from agents.vla.network import VLAModel
    from agents.vla.processing import VLAProcessor
    from dyadic_env.data import Clip

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def action_token(k: int) -> str:
    return f"<a{k}>"


def build_preference_tokenizer(num_bins: int = 256) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` over ``<a0>..<a{num_bins-1}>`` (ids 0..num_bins-1), ``<pad>``, ``<bos>``, ``<eos>``."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    names = [action_token(k) for k in range(num_bins)] + [PAD, BOS, EOS]
    tokenizer = Tokenizer(models.WordLevel(vocab={n: i for i, n in enumerate(names)}, unk_token=PAD))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # As added tokens they are matched before splitting, so trl's "...<a5><eos>" (no space) still splits.
    tokenizer.add_special_tokens([AddedToken(n, normalized=False) for n in names])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS)


def completion_text(tokens: np.ndarray) -> str:
    """A (T, 56) token trajectory as a completion string (leading space, as trl expects)."""
    flat = np.asarray(tokens, dtype=np.int64).reshape(-1)
    return " " + " ".join(action_token(int(k)) for k in flat)


def preference_row(clip_id: str, chosen: np.ndarray, rejected: np.ndarray) -> dict[str, str]:
    """One row of a trl preference dataset for a clip and two (T, 56) token trajectories."""
    return {
        "clip_id": clip_id,
        "prompt": BOS,
        "chosen": completion_text(chosen),
        "rejected": completion_text(rejected),
    }


class VLAPreferenceCollator:
    """trl's ``DataCollatorForPreference`` plus the VLA's speaker context, for ``DPOTrainer(data_collator=...)``.

    Args:
        processor: the policy's :class:`~agents.vla.VLAProcessor`.
        clips: a mapping (or callable) from clip id to :class:`~dyadic_env.data.Clip` (e.g. ``dataset.clip``).
        num_bins: bins per dimension (ids at or above it are special tokens).
    """

    def __init__(self, processor: Any, clips: Mapping[str, Any] | Any, num_bins: int = 256) -> None:
        from trl.trainer.dpo_trainer import DataCollatorForPreference

        self.processor, self.num_bins = processor, num_bins
        self._clip = clips.__getitem__ if isinstance(clips, Mapping) else clips
        self._base = DataCollatorForPreference(pad_token_id=num_bins)  # <pad>

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        out = self._base([{k: e[k] for k in e if k != "clip_id"} for e in examples])
        # Only action tokens are scored: the <eos> trl appends has no meaning for a fixed-length trajectory.
        out["completion_mask"] = out["completion_mask"] * (out["input_ids"] < self.num_bins).long()
        return {**out, **self.context([e["clip_id"] for e in examples], repeat=2)}

    def context(self, clip_ids: Sequence[str], repeat: int = 1) -> dict[str, torch.Tensor]:
        """Speaker context tensors of the clips, the whole list repeated ``repeat`` times."""
        examples = []
        for cid in clip_ids:
            clip = self._clip(cid)
            ex = self.processor.clip_example(clip)
            examples.append(ex)
        batch = self.processor.collate(examples * repeat)
        return {k: batch[k] for k in ("speaker_inputs", "word_ids", "word_mask", "frame_mask")}


def flat_batch(
    processor: VLAProcessor, clips: Sequence[Clip], tokens: Sequence[np.ndarray]
) -> dict[str, torch.Tensor]:
    """The flat (trl) view of clips with given trajectories: ``input_ids``, ``attention_mask``,
    ``completion_mask`` and the speaker context, as ``VLAPreferenceCollator`` would build for one side."""
    tokenizer = build_preference_tokenizer(processor.config.num_bins)
    ids = [tokenizer(BOS + completion_text(t) + EOS)["input_ids"] for t in tokens]
    n = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([x + [pad] * (n - len(x)) for x in ids])
    attention = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in ids])
    completion = (input_ids < processor.config.num_bins).long()
    collator = VLAPreferenceCollator(processor, {c.clip_id: c for c in clips}, processor.config.num_bins)
    return {"input_ids": input_ids, "attention_mask": attention, "completion_mask": completion,
            **collator.context([c.clip_id for c in clips])}  # fmt: skip


def flat_view(
    vla: VLAModel,
    input_ids: torch.Tensor,
    speaker_inputs: torch.Tensor | None,
    word_ids: torch.Tensor | None = None,
    word_mask: torch.Tensor | None = None,
    frame_mask: torch.Tensor | None = None,
) -> BaseModelOutputWithPast:
    """The flat, token-per-action view of the network ``vla`` (a :class:`~agents.vla.network.VLAModel`).

    ``input_ids`` (B, L) holds a prompt of special tokens and, in order, the clip's action tokens (ids
    ``< num_bins``: frame 0's 56 tokens, then frame 1's, ...). The speaker context comes as extra keys
    (``speaker_inputs``, ``word_ids``, ``word_mask``, ``frame_mask``, frames (B, T)). Returns a
    ``BaseModelOutputWithPast`` whose ``last_hidden_state`` (B, L, H) holds at position ``p - 1`` the action head
    features that ``get_output_embeddings()`` turns into the logits of the action token at ``p``; other positions
    are zeros. So ``log_softmax(lm_head(h[:, :-1]))`` scored at ``input_ids[:, 1:]`` is exactly the policy's
    log-probability of every action token. With nod gestures the tokens are scored given the nods found in them
    (``gesture_targets``); the nod decisions' own log-probabilities are not in this view, so trl's DPO tunes the
    tokens given the nods and leaves when to nod to SFT.
    """
    from transformers.modeling_outputs import BaseModelOutputWithPast

    if speaker_inputs is None:
        raise ValueError(
            "VLAModel.forward (flat view) needs speaker_inputs (B, T, d) besides input_ids; build the batch "
            "with agents.vla.trl_support.VLAPreferenceCollator"
        )
    actions, positions, valid = actions_from_flat(input_ids, vla.config.num_bins, vla.config.action_dim)
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
        raise ValueError("frame_mask disagrees with the number of action tokens (56 per frame) in input_ids")
    inputs = FrameInputs(
        speaker_inputs, vla.previous_states(actions), word_ids, word_mask, fm, actions=actions
    )
    action_hidden = vla.frames(inputs).action_hidden
    assert action_hidden is not None
    h = action_hidden.shape[-1]
    flat = action_hidden.new_zeros(b * input_ids.shape[1], h)
    rows = (torch.arange(b, device=input_ids.device) * input_ids.shape[1])[:, None, None]
    target = (rows + positions - 1)[fm].reshape(-1)
    flat = flat.index_copy(0, target, action_hidden[fm].reshape(-1, h))
    return BaseModelOutputWithPast(last_hidden_state=flat.view(b, input_ids.shape[1], h))


def actions_from_flat(
    input_ids: torch.Tensor, num_bins: int, action_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
