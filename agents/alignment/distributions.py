"""One batched categorical over all action dimensions, for Stable-Baselines3.

SB3's ``MultiCategoricalDistribution`` builds one ``torch.distributions.Categorical`` per dimension (56 here),
which costs about 13 ms a call (PLATFORM.md). The 56 dimensions of a listener frame are independent given
the observation (parallel decoding), so one ``log_softmax`` over ``(B, 56, 256)`` logits gives the same
distribution: log-probabilities and entropies are sums over dimensions.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from stable_baselines3.common.distributions import Distribution
from torch import nn

SelfBatchedCategorical = TypeVar("SelfBatchedCategorical", bound="BatchedCategorical")


class BatchedCategorical(Distribution):
    """Independent categoricals over ``num_dims`` action dimensions of ``num_bins`` each, batched.

    Args:
        num_dims: action dimensions (56).
        num_bins: values per dimension (256).
    """

    def __init__(self, num_dims: int, num_bins: int) -> None:
        super().__init__()
        self.num_dims, self.num_bins = num_dims, num_bins
        self.log_probs: torch.Tensor | None = None

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """A linear map from a latent vector to all logits (unused by the VLA policy, whose head gives them)."""
        return nn.Linear(latent_dim, self.num_dims * self.num_bins)

    def proba_distribution(
        self: SelfBatchedCategorical, action_logits: torch.Tensor
    ) -> SelfBatchedCategorical:
        """Set the distribution from logits ``(B, num_dims, num_bins)`` (or flat ``(B, num_dims*num_bins)``)."""
        logits = action_logits.reshape(-1, self.num_dims, self.num_bins)
        self.log_probs = F.log_softmax(logits.float(), dim=-1)
        return self

    def _require(self) -> torch.Tensor:
        if self.log_probs is None:
            raise RuntimeError("BatchedCategorical: call proba_distribution(logits) first")
        return self.log_probs

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability ``(B,)`` of actions ``(B, num_dims)``: the sum over dimensions."""
        log_probs = self._require()
        index = actions.reshape(-1, self.num_dims, 1).long()
        return log_probs.gather(-1, index).squeeze(-1).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy ``(B,)``: the sum of the dimensions' entropies."""
        log_probs = self._require()
        return -(log_probs.exp() * log_probs).sum(dim=(-1, -2))

    def kl_divergence(self, other_log_probs: torch.Tensor) -> torch.Tensor:
        """Exact KL(self || other) ``(B,)`` to another distribution given by its log-probs ``(B, D, bins)``."""
        log_probs = self._require()
        return (log_probs.exp() * (log_probs - other_log_probs)).sum(dim=(-1, -2))

    def sample(self) -> torch.Tensor:
        """Actions ``(B, num_dims)`` int64 by the Gumbel-max trick (one pass, no per-dimension objects)."""
        log_probs = self._require()
        uniform = torch.rand_like(log_probs).clamp_(1e-10, 1.0 - 1e-7)
        return (log_probs - torch.log(-torch.log(uniform))).argmax(-1)

    def mode(self) -> torch.Tensor:
        return self._require().argmax(-1)

    def actions_from_params(self, action_logits: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        self.proba_distribution(action_logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, action_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actions = self.actions_from_params(action_logits)
        return actions, self.log_prob(actions)
