"""PPO settings, kept apart from :mod:`agents.alignment.ppo` so configs load without torch or SB3."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PPOConfig:
    """PPO on the listener env with the VLA as policy.

    Attributes:
        total_timesteps: env steps (frames) to train on.
        n_envs: parallel envs (one batched VLA forward serves them all).
        n_steps: steps per env per rollout.
        batch_size: minibatch size.
        n_epochs: passes over each rollout.
        learning_rate: the VLA's learning rate (the value MLP's is ``value_lr_scale`` times larger).
        value_lr_scale: see :class:`VLAActorCriticPolicy`.
        gamma, gae_lambda, clip_range, ent_coef, vf_coef, max_grad_norm, target_kl: as in SB3's PPO.
        kl_coef: weight of the per-step KL penalty to the SFT reference.
        temperature: rollout sampling temperature.
        detach_value: see :class:`VLAActorCriticPolicy`.
        seed: seeds SB3, the envs' clip draws and the policy's sampling.
    """

    total_timesteps: int = 4096
    n_envs: int = 4
    n_steps: int = 128
    batch_size: int = 128
    n_epochs: int = 4
    learning_rate: float = 3e-5
    value_lr_scale: float = 30.0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    kl_coef: float = 0.05
    temperature: float = 1.0
    detach_value: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PPOConfig.{name} must be >= 1, found {getattr(self, name)}")
        if (self.n_envs * self.n_steps) % self.batch_size and self.n_envs * self.n_steps > self.batch_size:
            raise ValueError(
                f"PPOConfig: n_envs * n_steps ({self.n_envs * self.n_steps}) should be a multiple of batch_size "
                f"({self.batch_size}) so no minibatch is truncated"
            )
        if self.learning_rate <= 0 or self.temperature <= 0 or self.kl_coef < 0:
            raise ValueError("PPOConfig: learning_rate and temperature must be > 0 and kl_coef >= 0")
