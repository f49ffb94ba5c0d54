"""Bradley-Terry reward models over trajectories, as ensembles.

A trajectory's return is the sum of per-step rewards r(observation, action) (Christiano et al. 2017); the
probability that people prefer trajectory A to B is ``sigmoid(R(A) - R(B))``. With ``temporal_dilations`` a
step's reward also reads the steps before it (a causal dilated convolution over the step embeddings), so it can
judge what unfolds in time: a nod right after the speaker's phrase ends, a reaction some frames after the
speaker's face changes. Several members trained on bootstrap resamples of the pairs form an ensemble whose
spread (std across members) says where the model is unsure: PPO should not trust the reward there. Optional
heads predict the four rated criteria from a trajectory's pooled step embeddings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dyadic_env.criteria import CRITERIA
from reward_models.features import StepFeatureConfig

CONFIG_FILE = "reward_model.json"
WEIGHTS_FILE = "reward_model.safetensors"
FORMAT = "dyadic-reward-model"
TEMPORAL_KERNEL = 3


@dataclass
class RewardModelConfig:
    """Shape of a reward model.

    Attributes:
        features: the per-step input layout (see :class:`~reward_models.features.StepFeatureConfig`).
        hidden_sizes: widths of each member's MLP.
        ensemble_size: number of members; their std is the disagreement.
        criteria_head: also predict the four criteria (1-5) of a trajectory.
        temporal_dilations: dilations of causal residual convolutions (kernel 3) over the step embeddings, in
            order; empty: each step's reward reads its own features only. A step's reward then depends on the
            last :attr:`receptive_field` steps.
    """

    features: StepFeatureConfig = field(default_factory=StepFeatureConfig)
    hidden_sizes: tuple[int, ...] = (128, 64)
    ensemble_size: int = 3
    criteria_head: bool = True
    temporal_dilations: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.features, dict):
            self.features = StepFeatureConfig(**self.features)
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be non-empty positive widths, found {self.hidden_sizes}")
        if self.ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, found {self.ensemble_size}")
        self.temporal_dilations = tuple(int(d) for d in self.temporal_dilations)
        if any(d < 1 for d in self.temporal_dilations):
            raise ValueError(f"temporal_dilations must be positive, found {self.temporal_dilations}")

    @property
    def receptive_field(self) -> int:
        """How many steps (this one included) a step's reward reads."""
        return 1 + (TEMPORAL_KERNEL - 1) * sum(self.temporal_dilations)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        data["temporal_dilations"] = list(self.temporal_dilations)
        return data


class _Member(nn.Module):
    """One ensemble member: an MLP trunk, optional causal convolutions over time, a per-step reward head and an
    optional criteria head."""

    def __init__(self, in_dim: int, config: RewardModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in config.hidden_sizes:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.temporal = nn.ModuleList(
            nn.Conv1d(width, width, TEMPORAL_KERNEL, dilation=d) for d in config.temporal_dilations
        )
        self.reward = nn.Linear(width, 1)
        # A linear path beside the MLP: with few labels the linear part of a preference is learned first and
        # generalises, the MLP adds the interactions.
        self.linear = nn.Linear(in_dim, 1, bias=False)
        # Small initial rewards: a sum over hundreds of steps would otherwise start far from 0.
        nn.init.normal_(self.reward.weight, std=1e-3)
        nn.init.zeros_(self.reward.bias)
        nn.init.zeros_(self.linear.weight)
        self.criteria = nn.Linear(width, len(CRITERIA)) if config.criteria_head else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.trunk(x)
        if len(self.temporal):
            hidden = self._over_time(hidden)
        return (self.reward(hidden) + self.linear(x)).squeeze(-1), hidden

    def _over_time(self, hidden: torch.Tensor) -> torch.Tensor:
        """Causal residual convolutions along the step axis (-2) of ``hidden`` (..., T, H); steps before the
        episode's start read as zeros, so a window of the last receptive-field steps gives the same output."""
        lead, (t, width) = hidden.shape[:-2], hidden.shape[-2:]
        h = hidden.reshape(-1, t, width).transpose(1, 2)
        for conv in self.temporal:
            assert isinstance(conv, nn.Conv1d)
            left = conv.dilation[0] * (conv.kernel_size[0] - 1)
            h = h + F.silu(conv(F.pad(h, (left, 0))))
        return h.transpose(1, 2).reshape(*lead, t, width)


class TrajectoryRewardModel(nn.Module):
    """An ensemble of per-step reward networks r(observation, action), trained as a Bradley-Terry model.

    Inputs are step features ``(..., F)`` from :mod:`reward_models.features`; they are standardised with a
    mean and std fitted on training data (:meth:`fit_normalizer`) and stored with the weights. A temporal model
    (``config.temporal_dilations``) reads the second-last axis as the episode's steps in order, from its start
    (``(..., T, F)``).
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    reward_mean: torch.Tensor
    reward_std: torch.Tensor

    def __init__(self, config: RewardModelConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.features.dim
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        # Location and scale of the per-step ensemble-mean reward on the training trajectories: wrappers can
        # hand RL a reward of unit scale, so penalty weights (KL, disagreement) mean the same for every model.
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))
        self.members = nn.ModuleList(_Member(dim, config) for _ in range(config.ensemble_size))

    def _members(self) -> list[_Member]:
        return [m for m in self.members if isinstance(m, _Member)]

    @property
    def feature_config(self) -> StepFeatureConfig:
        return self.config.features

    def fit_normalizer(self, features: np.ndarray | torch.Tensor) -> None:
        """Set the input standardisation from sample step features ``(N, F)``."""
        x = torch.as_tensor(np.asarray(features, np.float32)).reshape(-1, self.config.features.dim)
        self.feature_mean.copy_(x.mean(0))
        # Constant inputs (unused blendshapes, empty word buckets) keep a unit scale instead of blowing up.
        self.feature_std.copy_(x.std(0).clamp_min(1e-2) if x.shape[0] > 1 else torch.ones_like(x[0]))

    def _members_forward(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = (features - self.feature_mean) / self.feature_std
        outs = [member(x) for member in self._members()]
        return torch.stack([r for r, _ in outs]), [h for _, h in outs]

    def step_rewards(self, features: torch.Tensor) -> torch.Tensor:
        """Per-member per-step rewards ``(M, ...)`` for features ``(..., F)``."""
        return self._members_forward(features)[0]

    def returns(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-member returns ``(M, B)`` of trajectories ``(B, T, F)``; ``mask`` ``(B, T)`` marks real steps."""
        rewards = self.step_rewards(features)
        if mask is not None:
            rewards = rewards * mask.to(rewards.dtype)
        return rewards.sum(-1)

    def criteria(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-member predicted criteria ``(M, B, 4)`` (1-5 scale) of trajectories ``(B, T, F)``."""
        if not self.config.criteria_head:
            raise ValueError("this reward model has no criteria head (criteria_head=False)")
        _, hiddens = self._members_forward(features)
        if mask is None:
            mask = torch.ones(features.shape[:-1], dtype=features.dtype, device=features.device)
        weights = mask.to(features.dtype).unsqueeze(-1)
        out = []
        for member, hidden in zip(self._members(), hiddens):
            pooled = (hidden * weights).sum(-2) / weights.sum(-2).clamp_min(1.0)
            # Centred on the middle of the 1-5 scale so an untrained head predicts "3".
            assert member.criteria is not None
            out.append(3.0 + member.criteria(pooled))
        return torch.stack(out)

    @torch.no_grad()
    def predict(
        self, features: np.ndarray | torch.Tensor, *, normalized: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and std of the per-step reward for features ``(..., F)``, as numpy arrays.

        With ``normalized`` both are in units of the training rewards' std, the mean also shifted by their mean.
        """
        x = torch.as_tensor(np.asarray(features, np.float32), device=self.feature_mean.device)
        rewards = self.step_rewards(x)
        std = rewards.std(0, unbiased=False) if rewards.shape[0] > 1 else torch.zeros_like(rewards[0])
        mean = rewards.mean(0)
        if normalized:
            mean, std = (mean - self.reward_mean) / self.reward_std, std / self.reward_std
        return mean.cpu().numpy(), std.cpu().numpy()

    @property
    def receptive_field(self) -> int:
        """How many steps (this one included) a step's reward reads: 1 unless the model is temporal."""
        return self.config.receptive_field

    @torch.no_grad()
    def fit_reward_scale(self, features: np.ndarray | torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Set the reward location and scale from sample trajectories' features ``(B, T, F)`` (after training);
        ``mask`` ``(B, T)`` marks real steps."""
        x = torch.as_tensor(np.asarray(features, np.float32), device=self.feature_mean.device)
        rewards = self.step_rewards(x).mean(0)
        if mask is not None:
            rewards = rewards[mask.to(rewards.device) > 0]
        self.reward_mean.copy_(rewards.mean())
        self.reward_std.copy_(rewards.std().clamp_min(1e-8) if rewards.numel() > 1 else torch.ones(()))

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``reward_model.json`` (config) and ``reward_model.safetensors`` (weights) into ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": 1, "config": self.config.to_dict()}
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, path / WEIGHTS_FILE
        )
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> TrajectoryRewardModel:
        """Load a model written by :meth:`save_pretrained`."""
        from safetensors.torch import load_file

        path = Path(path)
        config_path = path / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{path}: no {CONFIG_FILE}; expected a directory written by TrajectoryRewardModel.save_pretrained "
                "(train one with `dyadic train rm`)"
            )
        meta = json.loads(config_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{config_path}: not a reward model (format {meta.get('format')!r}, expected {FORMAT!r})"
            )
        model = cls(RewardModelConfig(**meta["config"]))
        model.load_state_dict(load_file(path / WEIGHTS_FILE))
        model.eval()
        return model
