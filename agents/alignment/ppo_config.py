"""PPO settings, kept apart from :mod:`agents.alignment.ppo` so configs load without torch or SB3."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PPOHyperparameters:
    """What SB3-style PPO (:class:`PPOConfig`) and episode PPO (``EpisodePPOConfig``) share, same names and
    meanings.

    Attributes:
        n_epochs: passes over each rollout.
        learning_rate: the VLA's learning rate (the value head's is ``value_lr_scale`` times larger: it starts
            from scratch).
        gamma, gae_lambda: discount and GAE's lambda (per frame).
        clip_range: PPO's ratio clip.
        ent_coef: weight of the entropy bonus.
        vf_coef: weight of the value loss.
        max_grad_norm: gradient norm clip of each step.
        kl_coef: weight of the per-frame KL penalty to the frozen starting policy.
        seed: seeds every random choice of the run.
    """

    n_epochs: int = 2
    learning_rate: float = 3e-5
    value_lr_scale: float = 30.0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    kl_coef: float = 0.05
    seed: int = 0

    def _check(self, at_least_one: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
        """Range checks of the shared fields and of the subclass's ``at_least_one`` and ``non_negative``."""
        owner = type(self).__name__
        for name in ("n_epochs", *at_least_one):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{owner}.{name} must be >= 1, found {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{owner}.{name} must be in [0, 1], found {getattr(self, name)}")
        for name in ("learning_rate", "value_lr_scale", "clip_range", "max_grad_norm"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{owner}.{name} must be > 0, found {getattr(self, name)}")
        for name in ("ent_coef", "vf_coef", "kl_coef", *non_negative):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{owner}.{name} must be >= 0, found {getattr(self, name)}")


@dataclass
class PPOConfig(PPOHyperparameters):
    """SB3's PPO on the listener env with the VLA as policy (the shared fields: :class:`PPOHyperparameters`).

    Attributes:
        total_timesteps: env steps (frames) to train on.
        n_envs: parallel envs (one batched VLA forward serves them all).
        n_steps: steps per env per rollout.
        batch_size: minibatch size.
        target_kl: as in SB3's PPO.
        temperature: rollout sampling temperature.
        detach_value: see :class:`VLAActorCriticPolicy`.
    """

    total_timesteps: int = 4096
    n_envs: int = 4
    n_steps: int = 128
    batch_size: int = 128
    n_epochs: int = 4
    target_kl: float | None = None
    temperature: float = 1.0
    detach_value: bool = True

    def __post_init__(self) -> None:
        self._check(at_least_one=("total_timesteps", "n_envs", "n_steps", "batch_size"))
        if (self.n_envs * self.n_steps) % self.batch_size and self.n_envs * self.n_steps > self.batch_size:
            raise ValueError(
                f"PPOConfig: n_envs * n_steps ({self.n_envs * self.n_steps}) should be a multiple of batch_size "
                f"({self.batch_size}) so no minibatch is truncated"
            )
        if not self.temperature > 0:
            raise ValueError(f"PPOConfig.temperature must be > 0, found {self.temperature}")
