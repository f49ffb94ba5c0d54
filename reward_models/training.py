"""Training Bradley-Terry reward models on preference pairs.

:class:`PairData` holds the pairs compactly (one speaker context per episode, one decoded frame array per
candidate) and builds step features batch by batch, so hundreds of long trajectories fit in little memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reward_models.features import EpisodeContext, StepFeatureConfig, clip_context, listener_features
from reward_models.model import CRITERIA, RewardModelConfig, TrajectoryRewardModel


@dataclass
class PairData:
    """Preference pairs over candidate trajectories.

    Attributes:
        feature_config: the step feature layout.
        contexts: one :class:`EpisodeContext` per episode (speaker clip).
        frames: decoded listener frames ``(T, 56)`` per candidate.
        candidate_context: index into ``contexts`` per candidate.
        pairs: ``(P, 2)`` candidate indices ``(chosen, rejected)``.
        criteria: optional ``(num_candidates, 4)`` mean ratings per criterion (NaN where unknown).
    """

    feature_config: StepFeatureConfig
    contexts: list[EpisodeContext]
    frames: list[np.ndarray]
    candidate_context: list[int]
    pairs: np.ndarray
    criteria: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.pairs = np.asarray(self.pairs, np.int64).reshape(-1, 2)
        if len(self.frames) != len(self.candidate_context):
            raise ValueError("PairData: frames and candidate_context must have one entry per candidate")
        if self.pairs.size and (self.pairs.min() < 0 or self.pairs.max() >= len(self.frames)):
            raise ValueError("PairData: a pair refers to a candidate that does not exist")
        if self.criteria is not None and self.criteria.shape != (len(self.frames), len(CRITERIA)):
            raise ValueError(
                f"PairData: criteria must be ({len(self.frames)}, {len(CRITERIA)}), found {self.criteria.shape}"
            )

    @property
    def num_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def candidate_features(self, candidate: int) -> np.ndarray:
        return listener_features(
            self.feature_config, self.contexts[self.candidate_context[candidate]], self.frames[candidate]
        )

    def batch(self, candidates: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded features ``(B, T, F)`` and mask ``(B, T)`` of the given candidates."""
        feats = [self.candidate_features(c) for c in candidates]
        t = max(f.shape[0] for f in feats)
        x = np.zeros((len(feats), t, self.feature_config.dim), np.float32)
        mask = np.zeros((len(feats), t), np.float32)
        for i, f in enumerate(feats):
            x[i, : f.shape[0]] = f
            mask[i, : f.shape[0]] = 1.0
        return torch.from_numpy(x), torch.from_numpy(mask)

    def subset(self, pair_index: np.ndarray) -> PairData:
        return PairData(
            self.feature_config, self.contexts, self.frames, self.candidate_context, self.pairs[pair_index],
            self.criteria,
        )  # fmt: skip


@dataclass
class RewardTrainingConfig:
    """How a reward model is trained.

    Attributes:
        epochs: passes over the (bootstrapped) training pairs per member.
        batch_size: pairs per gradient step.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        val_fraction: share of pairs held out to report accuracy (0 uses all for training).
        bootstrap: train each member on its own resample of the training pairs (diversity for disagreement).
        batch_by_episode: fill each batch with the pairs of a few episodes (in random order) instead of pairs
            from anywhere: with many pairs per episode (all-pairs) a batch then scores each candidate once.
        reward_l2: penalty on the mean squared per-step reward; Bradley-Terry is blind to a constant shift,
            this pins rewards near zero so PPO sees a stable scale.
        criteria_weight: weight of the criteria regression loss when criteria are known.
        seed: seeds initialisation, splits and batches.
    """

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    bootstrap: bool = True
    batch_by_episode: bool = False
    reward_l2: float = 1e-3
    criteria_weight: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, found {self.epochs} and {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), found {self.val_fraction}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, found {self.learning_rate}")


def _pair_loss(
    model: TrajectoryRewardModel, member: int, data: PairData, idx: np.ndarray, cfg: RewardTrainingConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    # Each candidate is scored once however many of the batch's pairs it is in.
    candidates, inverse = np.unique(data.pairs[idx], return_inverse=True)
    where = torch.from_numpy(inverse.reshape(-1, 2))
    x, mask = data.batch(candidates.tolist())
    norm = (x - model.feature_mean) / model.feature_std
    net = model._members()[member]
    step_r, hidden = net(norm)
    step_r = step_r * mask
    returns = step_r.sum(-1)
    margin = returns[where[:, 0]] - returns[where[:, 1]]
    loss = -F.logsigmoid(margin).mean() + cfg.reward_l2 * (step_r.pow(2).sum() / mask.sum())
    head = net.criteria
    if head is not None and data.criteria is not None and cfg.criteria_weight > 0:
        target = torch.from_numpy(data.criteria[candidates].astype(np.float32))
        known = ~torch.isnan(target)
        if known.any():
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
            pred = 3.0 + head(pooled)
            loss = loss + cfg.criteria_weight * F.mse_loss(pred[known], target[known])
    return loss, margin.detach()


@torch.no_grad()
def pair_accuracy(model: TrajectoryRewardModel, data: PairData, batch_size: int = 64) -> float:
    """Share of pairs whose chosen trajectory gets the higher ensemble-mean return."""
    if data.num_pairs == 0:
        return float("nan")
    correct = 0
    for start in range(0, data.num_pairs, batch_size):
        pairs = data.pairs[start : start + batch_size]
        x, mask = data.batch(np.concatenate([pairs[:, 0], pairs[:, 1]]).tolist())
        chosen, rejected = model.returns(x, mask).mean(0).chunk(2)
        correct += int((chosen > rejected).sum())
    return correct / data.num_pairs


@torch.no_grad()
def criteria_error(model: TrajectoryRewardModel, data: PairData, batch_size: int = 64) -> float:
    """Mean absolute error (rating points) of the ensemble-mean criteria prediction over the rated criteria of
    the candidates in ``data``'s pairs; NaN without a criteria head or known criteria."""
    if not model.config.criteria_head or data.criteria is None or data.num_pairs == 0:
        return float("nan")
    candidates = np.unique(data.pairs)
    errors = []
    for start in range(0, len(candidates), batch_size):
        chunk = candidates[start : start + batch_size]
        x, mask = data.batch(chunk.tolist())
        predicted = model.criteria(x, mask).mean(0).numpy()
        errors.append(np.abs(predicted - data.criteria[chunk]))
    error = np.concatenate(errors)
    return float(np.nanmean(error)) if np.isfinite(error).any() else float("nan")


def train_reward_model(
    data: PairData,
    model_config: RewardModelConfig | None = None,
    train_config: RewardTrainingConfig | None = None,
    *,
    log_dir: str | None = None,
) -> tuple[TrajectoryRewardModel, dict[str, float]]:
    """Train an ensemble on the pairs; returns the model and figures (train/val accuracy, final loss).

    Args:
        data: the preference pairs with their features.
        model_config: the network; its feature layout must match ``data``'s.
        train_config: optimisation settings.
        log_dir: write TensorBoard scalars (``rm/loss``, ``rm/val_accuracy``) here.
    """
    model_config = model_config or RewardModelConfig(features=data.feature_config)
    train_config = train_config or RewardTrainingConfig()
    if model_config.features != data.feature_config:
        raise ValueError("train_reward_model: model_config.features differs from the data's feature layout")
    if data.num_pairs < 2:
        raise ValueError(f"train_reward_model: need at least 2 preference pairs, found {data.num_pairs}")
    torch.manual_seed(train_config.seed)
    rng = np.random.default_rng(train_config.seed)
    order = rng.permutation(data.num_pairs)
    n_val = round(train_config.val_fraction * data.num_pairs) if train_config.val_fraction > 0 else 0
    n_val = min(n_val, data.num_pairs - 1)
    train_data, val_data = data.subset(order[n_val:]), data.subset(order[:n_val])

    model = TrajectoryRewardModel(model_config)
    used = np.unique(train_data.pairs)
    sample, sample_mask = data.batch(used[: min(len(used), 256)].tolist())
    model.fit_normalizer(sample[sample_mask > 0])
    writer = _summary_writer(log_dir)
    step = 0
    last_loss = math.nan
    for member in range(model_config.ensemble_size):
        params = model.members[member].parameters()
        optimizer = torch.optim.AdamW(
            params, lr=train_config.learning_rate, weight_decay=train_config.weight_decay
        )
        n = train_data.num_pairs
        member_pairs = (
            rng.integers(0, n, n)
            if train_config.bootstrap and model_config.ensemble_size > 1
            else np.arange(n)
        )
        for _ in range(train_config.epochs):
            shuffled = _epoch_order(train_data, member_pairs, train_config.batch_by_episode, rng)
            for start in range(0, n, train_config.batch_size):
                loss, _ = _pair_loss(
                    model, member, train_data, shuffled[start : start + train_config.batch_size], train_config
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                last_loss = float(loss.detach())
                if writer is not None:
                    writer.add_scalar(f"rm/loss_member{member}", last_loss, step)
                step += 1
    model.eval()
    model.fit_reward_scale(sample, sample_mask)
    figures = {
        "train_accuracy": pair_accuracy(model, train_data),
        "val_accuracy": pair_accuracy(model, val_data) if n_val else float("nan"),
        "train_criteria_mae": criteria_error(model, train_data),
        "val_criteria_mae": criteria_error(model, val_data) if n_val else float("nan"),
        "final_loss": last_loss,
        "num_train_pairs": float(train_data.num_pairs),
        "num_val_pairs": float(n_val),
    }
    if writer is not None:
        for key, value in figures.items():
            if not math.isnan(value):
                writer.add_scalar(f"rm/{key}", value, step)
        writer.close()
    return model, figures


def _epoch_order(data: PairData, pairs: np.ndarray, by_episode: bool, rng: np.random.Generator) -> np.ndarray:
    """The pair indices of one epoch: shuffled, or with each episode's pairs together, episodes in random order."""
    if not by_episode:
        return rng.permutation(pairs)
    episode = np.asarray(data.candidate_context)[data.pairs[pairs, 0]]
    rank = rng.permutation(int(episode.max()) + 1)[episode]
    return pairs[np.lexsort((rng.random(len(pairs)), rank))]


def _summary_writer(log_dir: str | None) -> Any:
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir)


def pair_data_from_preferences(
    preferences: Any, dataset: Any, tokenizer: Any, feature_config: StepFeatureConfig
) -> PairData:
    """Build :class:`PairData` from a ``PreferenceDataset``, its speaker dataset and the action tokenizer.

    Args:
        preferences: an object with ``.pairs`` of ``PreferencePair`` (``clip_id``, ``chosen_tokens``,
            ``rejected_tokens``, optionally ``chosen_criteria``/``rejected_criteria``).
        dataset: the ``DyadicDataset`` the clips come from (``dataset.clip(clip_id)``).
        tokenizer: the ``ActionTokenizer`` that decodes the tokens.
        feature_config: the step feature layout.
    """
    contexts: list[EpisodeContext] = []
    context_of: dict[str, int] = {}
    frames: list[np.ndarray] = []
    candidate_context: list[int] = []
    criteria: list[np.ndarray] = []
    index_of: dict[tuple[str, bytes], int] = {}
    pairs = []

    def add(clip_id: str, tokens: np.ndarray, crit: Any) -> int:
        tokens = np.asarray(tokens)
        key = (clip_id, tokens.tobytes())
        if key in index_of:
            return index_of[key]
        if clip_id not in context_of:
            clip = dataset.clip(clip_id)
            context_of[clip_id] = len(contexts)
            contexts.append(clip_context(feature_config, clip))
        frames.append(tokenizer.decode(tokens.astype(np.int64)))
        candidate_context.append(context_of[clip_id])
        criteria.append(_criteria_vector(crit))
        index_of[key] = len(frames) - 1
        return len(frames) - 1

    for pair in preferences.pairs:
        chosen = add(pair.clip_id, pair.chosen_tokens, getattr(pair, "chosen_criteria", None))
        rejected = add(pair.clip_id, pair.rejected_tokens, getattr(pair, "rejected_criteria", None))
        pairs.append((chosen, rejected))
    crit = np.stack(criteria) if criteria else np.zeros((0, len(CRITERIA)))
    return PairData(
        feature_config, contexts, frames, candidate_context, np.array(pairs, np.int64),
        None if np.isnan(crit).all() else crit,
    )  # fmt: skip


def _criteria_vector(crit: Any) -> np.ndarray:
    """Mean ratings per criterion as a (4,) array, NaN where unknown; accepts a dict or a sequence."""
    if crit is None:
        return np.full(len(CRITERIA), np.nan)
    if isinstance(crit, dict):
        return np.array([float(crit.get(name, np.nan)) for name in CRITERIA])
    return np.asarray(crit, np.float64).reshape(len(CRITERIA))
