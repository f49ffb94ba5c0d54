"""One batched categorical over all action dimensions, for Stable-Baselines3.

SB3's ``MultiCategoricalDistribution`` builds one ``torch.distributions.Categorical`` per dimension (56 here),
which costs about 13 ms a call (PLATFORM.md). The 56 dimensions of a listener frame are independent given
the observation (parallel decoding), so one ``log_softmax`` over ``(B, 56, 256)`` logits gives the same
distribution: log-probabilities and entropies are sums over dimensions.
"""

from __future__ import annotations

import math
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


class NodGestureCategorical(Distribution):
    """The action of a VLA with nod gestures: whether a nod starts, then the frame's tokens given that choice.

    An action is ``(B, num_dims + 1)``: the tokens, then the nod decision (1: a nod starts). The decision is a
    Bernoulli, forced to 0 where a nod is under way (``allowed`` False); the tokens are independent
    categoricals whose logits depend on it (``(B, 2, num_dims, num_bins)``: without, with a new nod). So the
    log-probability is the decision's plus the chosen branch's, as :class:`~agents.vla.VLAAgent` factorises
    its closed loop.
    """

    def __init__(self, num_dims: int, num_bins: int) -> None:
        super().__init__()
        self.num_dims, self.num_bins = num_dims, num_bins
        self.decision: torch.Tensor | None = None  # (B, 2) log-probabilities of no nod / a nod
        self.tokens: torch.Tensor | None = None  # (B, 2, D, bins) token log-probabilities per decision

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:  # pragma: no cover - the VLA gives logits
        return nn.Linear(latent_dim, 2 * self.num_dims * self.num_bins + 1)

    def proba_distribution(  # type: ignore[override]
        self, onset_logits: torch.Tensor, allowed: torch.Tensor, token_logits: torch.Tensor
    ) -> NodGestureCategorical:
        logit = onset_logits.float()
        decision = torch.stack([F.logsigmoid(-logit), F.logsigmoid(logit)], dim=-1)
        forced = torch.tensor([0.0, -math.inf], device=logit.device).expand_as(decision)
        self.decision = torch.where(allowed.bool()[:, None], decision, forced)
        self.tokens = F.log_softmax(token_logits.float(), dim=-1)
        return self

    def _require(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.decision is None or self.tokens is None:
            raise RuntimeError("NodGestureCategorical: call proba_distribution(...) first")
        return self.decision, self.tokens

    def _branch(self, choice: torch.Tensor) -> torch.Tensor:
        """(B, D, bins) token log-probabilities of each row's chosen branch."""
        _, tokens = self._require()
        return tokens[torch.arange(tokens.shape[0], device=tokens.device), choice.long()]

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        decision, _ = self._require()
        actions = actions.reshape(-1, self.num_dims + 1).long()
        choice = actions[:, -1]
        tokens = self._branch(choice).gather(-1, actions[:, :-1, None]).squeeze(-1).sum(-1)
        return decision.gather(-1, choice[:, None]).squeeze(-1) + tokens

    def entropy(self) -> torch.Tensor:
        decision, tokens = self._require()
        p = decision.exp()
        branch = -(tokens.exp() * tokens).sum(dim=(-1, -2))  # (B, 2)
        return -(p * decision.clamp(min=-1e4)).sum(-1) + (p * branch).sum(-1)

    def kl_divergence(self, other: NodGestureCategorical) -> torch.Tensor:
        """Exact KL(self || other) ``(B,)``: the decisions' KL plus each branch's, weighted by its probability."""
        decision, tokens = self._require()
        other_decision, other_tokens = other._require()
        p = decision.exp()
        diff = (decision - other_decision).nan_to_num(0.0)  # 0 * (-inf - -inf): a branch neither can take
        branch = (tokens.exp() * (tokens - other_tokens)).sum(dim=(-1, -2))
        return (p * diff).sum(-1) + (p * branch).sum(-1)

    def sample(self) -> torch.Tensor:
        decision, _ = self._require()
        choice = torch.multinomial(decision.exp(), 1).squeeze(-1)
        tokens = self._branch(choice)
        uniform = torch.rand_like(tokens).clamp_(1e-10, 1.0 - 1e-7)
        picked = (tokens - torch.log(-torch.log(uniform))).argmax(-1)
        return torch.cat([picked, choice[:, None]], dim=-1)

    def mode(self) -> torch.Tensor:
        decision, _ = self._require()
        choice = decision.argmax(-1)
        return torch.cat([self._branch(choice).argmax(-1), choice[:, None]], dim=-1)

    def actions_from_params(self, *params: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        self.proba_distribution(*params)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actions = self.actions_from_params(*params)
        return actions, self.log_prob(actions)
