"""DPO's implicit reward: an aligned policy and its reference, read as a reward model.

DPO fits the policy so that ``r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x))`` is a Bradley-Terry reward of
its preference pairs (Rafailov et al. 2023, "Your language model is secretly a reward model", sec. 5). Scoring
held-out rated groups with it asks how well a model of the policy's size, trained on the labels, ranks
trajectories it never saw: the question :class:`~reward_models.model.TrajectoryRewardModel` (a small network
over hand-built step features) answers at about 0.68 from 480 groups. The log-probability is the one DPO
trained (``agents.alignment.trajectory_logprobs``): each action token's, times ``token_weight``, plus each
frame's nod decision, so the score is exactly the margin DPO's loss saw.

For an iterated DPO's last round, give the SFT checkpoint as reference: the rounds' rewards telescope to
``beta * (log pi_last - log pi_sft)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ImplicitRewardConfig:
    """How trajectories are scored; the defaults are DPO's (``agents.alignment.dpo.DPOTrainingConfig``).

    Attributes:
        beta: DPO's beta (scales the reward, not the ranking).
        nod_decisions: count each frame's nod decision (as DPO with ``nod_decisions`` trained it).
        action_frames: count the tokens of the first N frames only (0: all).
        token_weight: weight of the action tokens against the nod decisions.
        frame_window: each frame sees at most this many past frames (0: the whole past).
        batch_size: trajectories per forward pass.
    """

    beta: float = 0.1
    nod_decisions: bool = False
    action_frames: int = 0
    token_weight: float = 1.0
    frame_window: int = 0
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.beta <= 0 or self.token_weight <= 0:
            raise ValueError(f"beta and token_weight must be > 0, found {self.beta} and {self.token_weight}")
        if self.action_frames < 0 or self.frame_window < 0 or self.batch_size < 1:
            raise ValueError("action_frames and frame_window must be >= 0 and batch_size >= 1")

    @classmethod
    def from_dpo_checkpoint(cls, policy_dir: str | Path, **overrides: Any) -> ImplicitRewardConfig:
        """The scoring a DPO checkpoint was trained with, read from its ``dpo_config.json``."""
        path = Path(policy_dir) / "dpo_config.json"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found: {policy_dir} is not a DPO checkpoint (train one with `dyadic train dpo`), "
                "or give the scoring settings yourself (ImplicitRewardConfig(...))"
            )
        saved = json.loads(path.read_text())
        window = 0
        if saved.get("cache_window"):
            config = json.loads((Path(policy_dir) / "config.json").read_text())
            window = int(config.get("max_context_frames") or 0)
        values = {
            "beta": saved["beta"], "nod_decisions": saved.get("nod_decisions", False),
            "action_frames": saved.get("action_frames", 0), "token_weight": saved.get("token_weight", 1.0),
            "frame_window": window,
        }  # fmt: skip
        return cls(**{**values, **overrides})


class ImplicitReward:
    """``beta * (log pi(y|x) - log pi_ref(y|x))`` of whole listener trajectories.

    Args:
        policy: the aligned ``VLAForListening`` (with its processor).
        reference: the policy it was aligned from (for iterated DPO, the SFT checkpoint).
        config: how trajectories are scored.
    """

    def __init__(self, policy: Any, reference: Any, config: ImplicitRewardConfig) -> None:
        if getattr(policy, "processor", None) is None:
            raise ValueError("policy has no processor; load it with VLAForListening.from_pretrained(dir)")
        if policy.config.num_bins != reference.config.num_bins:
            raise ValueError(
                f"policy and reference tokenise actions differently ({policy.config.num_bins} and "
                f"{reference.config.num_bins} bins); the reference must be the checkpoint the policy was aligned from"
            )
        self.policy, self.reference, self.config = policy.eval(), reference.eval(), config

    @classmethod
    def from_pretrained(
        cls, policy_dir: str | Path, reference_dir: str | Path, **overrides: Any
    ) -> ImplicitReward:
        """The implicit reward of the DPO checkpoint ``policy_dir`` against ``reference_dir``."""
        from agents.vla import VLAForListening

        config = ImplicitRewardConfig.from_dpo_checkpoint(policy_dir, **overrides)
        return cls(
            VLAForListening.from_pretrained(policy_dir),
            VLAForListening.from_pretrained(reference_dir),
            config,
        )

    def score(self, clips: Sequence[Any], tokens: Sequence[np.ndarray]) -> np.ndarray:
        """The reward of each trajectory ``tokens[i]`` (T, 56) as the listener of ``clips[i]``."""
        return np.array([r.sum() for r in self.frame_rewards(clips, tokens)])

    def frame_rewards(self, clips: Sequence[Any], tokens: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each trajectory's reward frame by frame (T,): ``beta`` times that frame's log-ratio; they sum to
        :meth:`score`. A dense reward for RL (:class:`ImplicitTrajectoryReward`)."""
        if len(clips) != len(tokens):
            raise ValueError(f"score: {len(clips)} clips but {len(tokens)} trajectories")
        policy = self.frame_log_likelihoods(self.policy, clips, tokens)
        reference = self.frame_log_likelihoods(self.reference, clips, tokens)
        return [self.config.beta * (p - r) for p, r in zip(policy, reference)]

    @torch.no_grad()
    def frame_log_likelihoods(
        self, model: Any, clips: Sequence[Any], tokens: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Each trajectory's log-likelihood under ``model`` frame by frame (T,), as DPO scored it."""
        from agents.alignment.trajectory_logprobs import scored_action_logprobs

        c, out = self.config, []
        keys = ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask", "actions")
        for start in range(0, len(clips), c.batch_size):
            stop = start + c.batch_size
            frames = self.policy.processor.clips_batch(clips[start:stop], tokens[start:stop])
            result = model(**{k: frames[k] for k in keys}, frame_window=c.frame_window)
            actions, mask = frames["actions"], frames["frame_mask"]
            log_p = torch.log_softmax(result.logits.float(), -1)
            token = scored_action_logprobs(
                model, log_p, result.frame_hidden, actions, mask,
                nod_decisions=c.nod_decisions, action_frames=c.action_frames, token_weight=c.token_weight,
            )  # fmt: skip
            per_frame = (token.sum(-1) * mask).double().numpy()  # (B, T)
            out += [row[: len(t)] for row, t in zip(per_frame, tokens[start:stop])]
        return out


class ImplicitTrajectoryReward:
    """An implicit reward as episode PPO's reward (a ``TrajectoryReward``: ``score(clip, frames) -> (T,)``).

    The decoded frames are tokenised back with the policy's action tokenizer (the env decodes bin centres, which
    tokenise to themselves), then scored frame by frame.
    """

    def __init__(self, reward: ImplicitReward) -> None:
        self.reward = reward

    def score(self, clip: Any, frames: np.ndarray) -> np.ndarray:
        tokens = self.reward.policy.processor.action_tokenizer.encode(np.asarray(frames))
        return self.reward.frame_rewards([clip], [tokens])[0]


def implicit_pair_accuracy(reward: ImplicitReward, pairs: Sequence[Any], clip: Any) -> float:
    """Share of ``pairs`` (``clip_id``, ``chosen_tokens``, ``rejected_tokens``) whose chosen side scores higher;
    ``clip`` maps a clip id to its ``Clip``. Ties count as wrong, as in :func:`reward_models.pair_accuracy`."""
    if not pairs:
        return float("nan")
    clips = [clip(p.clip_id) for p in pairs]
    chosen = reward.score(clips, [p.chosen_tokens for p in pairs])
    rejected = reward.score(clips, [p.rejected_tokens for p in pairs])
    return float(np.mean(chosen > rejected))
