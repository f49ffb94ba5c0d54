"""Episode PPO settings, kept apart from :mod:`agents.alignment.episode_ppo` so configs load without torch."""

from __future__ import annotations

from dataclasses import dataclass

from agents.alignment.ppo_config import PPOHyperparameters

# agents.vla.decoding.DRAWS, repeated here so this module stays free of torch (a test checks they agree).
DRAWS = ("multinomial", "inverse-cdf")
ADVANTAGES = ("gae", "group")


@dataclass
class EpisodePPOConfig(PPOHyperparameters):
    """PPO over whole closed-loop episodes of the VLA (:func:`agents.alignment.episode_ppo.train_episode_ppo`);
    the fields it shares with SB3's ``PPOConfig`` are :class:`~agents.alignment.ppo_config.PPOHyperparameters`.

    Attributes:
        total_steps: env steps (frames) to train on; training stops after the rollout that reaches it.
        episodes_per_rollout: episodes (clips of ``split``) sampled together per rollout, one batched forward
            per frame.
        minibatch_episodes: whole episodes per gradient step.
        samples_per_clip: episodes of each clip in a rollout (``episodes_per_rollout`` / this many clips, each
            sampled this many times); ``advantage: group`` compares them.
        advantage: ``"gae"`` (the value head's per-frame advantages) or ``"group"``: every frame of an episode
            gets its return minus the mean return of the other episodes of its clip (a leave-one-out baseline, as
            RLOO and GRPO use): with one score at an episode's end, the clip's own samples say how good the
            episode was for that speaker, which a value head must learn across clips.
        value_hidden: width of the value MLP on the VLA's per-frame hidden state.
        ent_coef: weight of the entropy bonus (the 56 token categoricals of a frame, summed); as ``kl_coef``, per
            frame.
        kl_coef: per-frame penalty ``kl_coef * (log pi - log pi_ref)`` of the sampled frame against the frozen
            starting policy (0: no reference is kept or scored).
        kl_token_weight: weight of the action tokens' log-ratio in that penalty against the nod decision's. On
            DPO's implicit reward, DPO's ``token_weight`` here and ``kl_coef`` = its ``beta`` make the penalised
            objective the one DPO optimised, whose optimum is the DPO policy up to the sampling temperature
            (Rafailov et al. 2023): sampled at T, it moves by T of DPO's shift; ``temperature: 1.0``, or
            ``kl_coef`` = beta * T, makes it DPO's policy as evaluated at T (docs/alignment.md).
        temperature: sampling temperature of the policy being trained; None: the checkpoint's
            ``decode_temperature`` when it decodes by sampling, else 1.
        normalize_rewards: divide rewards by a running std of discounted returns (SB3 ``VecNormalize`` style),
            so the value loss and ``kl_coef`` keep their scale across rewards.
        disagreement_penalty: for a learned reward-model ensemble, subtract this times the members' std.
        split: the split whose clips the episodes replay.
        draw: how tokens are drawn (``agents.vla.decoding.DRAWS``); ``inverse-cdf`` samples faster.
        seed: seeds the clip draws, the sampling of every rollout, the value head and the minibatches.
        num_threads: torch CPU threads (0: leave torch's setting).
        The rest (``n_epochs``, ``learning_rate``, ``value_lr_scale``, ``gamma``, ``gae_lambda``, ``clip_range``,
        ``vf_coef``, ``max_grad_norm``): :class:`~agents.alignment.ppo_config.PPOHyperparameters`.
    """

    total_steps: int = 8192
    episodes_per_rollout: int = 32
    minibatch_episodes: int = 8
    samples_per_clip: int = 1
    advantage: str = "gae"
    value_hidden: int = 256
    temperature: float | None = None
    kl_token_weight: float = 1.0
    normalize_rewards: bool = True
    disagreement_penalty: float = 0.0
    split: str = "train"
    draw: str = "multinomial"
    num_threads: int = 0

    def __post_init__(self) -> None:
        self._check(
            at_least_one=(
                "total_steps",
                "episodes_per_rollout",
                "minibatch_episodes",
                "value_hidden",
                "samples_per_clip",
            ),
            non_negative=("disagreement_penalty", "num_threads"),
        )
        if not self.kl_token_weight > 0:
            raise ValueError(f"EpisodePPOConfig.kl_token_weight must be > 0, found {self.kl_token_weight}")
        if self.minibatch_episodes > self.episodes_per_rollout:
            raise ValueError(
                f"EpisodePPOConfig.minibatch_episodes ({self.minibatch_episodes}) must be <= episodes_per_rollout "
                f"({self.episodes_per_rollout}); lower it or sample more episodes per rollout"
            )
        if self.episodes_per_rollout % self.samples_per_clip:
            raise ValueError(
                f"EpisodePPOConfig.samples_per_clip ({self.samples_per_clip}) must divide episodes_per_rollout "
                f"({self.episodes_per_rollout})"
            )
        if self.advantage not in ADVANTAGES:
            raise ValueError(
                f"EpisodePPOConfig.advantage: expected one of {ADVANTAGES}, found {self.advantage!r}"
            )
        if self.advantage == "group" and self.samples_per_clip < 2:
            raise ValueError(
                "EpisodePPOConfig.advantage 'group' compares the episodes of a clip: set samples_per_clip >= 2"
            )
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(
                f"EpisodePPOConfig.temperature must be > 0 (or None: the checkpoint's), found {self.temperature}"
            )
        if self.draw not in DRAWS:
            raise ValueError(f"EpisodePPOConfig.draw: expected one of {DRAWS}, found {self.draw!r}")
        if self.split == "test":
            raise ValueError("EpisodePPOConfig.split: training on the test split would leak it; use 'train'")
