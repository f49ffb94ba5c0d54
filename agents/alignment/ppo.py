"""PPO (Stable-Baselines3) whose policy is the SFT VLA itself, with a KL penalty to the frozen SFT reference.

- :class:`VLAWordIds` turns the env's ``words`` text into the VLA's text-token ids (SB3 cannot store ``Text``).
- :class:`VLAActorCriticPolicy` is an SB3 ``ActorCriticPolicy`` around :class:`agents.vla.VLAForListening`: the
  action distribution is one :class:`~agents.alignment.distributions.BatchedCategorical` over the VLA's
  ``(B, 56, 256)`` logits of the current frame of each observation window, the value is a small MLP on the
  VLA's hidden state of that frame.
- :class:`KLPenaltyVecEnv` subtracts ``kl_coef * KL(pi(.|s_t) || pi_SFT(.|s_t))`` from every step's reward, the
  per-step penalty of RLHF (Ziegler et al. 2019; InstructGPT). Per step rather than as a loss term because the
  penalty then enters returns and advantages: the policy is charged for drifting where the drift leads, and
  the value function learns it; the KL is exact (a sum over the 56 categoricals), not a sampled estimate.

This module knows nothing of learned rewards (that layer sits above agents): pass env factories already
wrapped with :class:`reward_models.LearnedRewardWrapper`; ``dyadic train ppo`` does that.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import nn

from agents.alignment.distributions import BatchedCategorical, NodGestureCategorical
from agents.alignment.ppo_config import PPOConfig
from agents.vla.gestures import may_start, next_phase
from agents.vla.inputs import FrameInputs

WORDS_PAD = -1


class VLAWordIds(gym.ObservationWrapper):
    """Replace the ``words`` text with the VLA's text-token ids ``(max_tokens,)`` int64, left-aligned, -1 padded.

    The ids are those :meth:`agents.vla.VLAProcessor.observation_batch` would place at the current frame.
    """

    def __init__(self, env: gym.Env, processor: Any) -> None:
        super().__init__(env)
        from agents.vla.text import split_words

        self._split_words = split_words
        self.processor = processor
        self.max_tokens = int(processor.words.max_tokens_per_frame)
        vocab = len(processor.text_tokenizer)
        space = spaces.Box(WORDS_PAD, vocab - 1, (self.max_tokens,), np.int64)
        self.observation_space = spaces.Dict({**env.observation_space.spaces, "words": space})  # type: ignore[attr-defined]
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, text: str) -> np.ndarray:
        ids = self._cache.get(text)
        if ids is None:
            found = self.processor.words.ids(self._split_words(text))
            ids = np.full(self.max_tokens, WORDS_PAD, np.int64)
            ids[: len(found)] = found
            self._cache[text] = ids
        return ids.copy()

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {**observation, "words": self.encode(str(observation["words"]))}


class NodDecisionWrapper(gym.Wrapper):
    """For a VLA with nod gestures: the action gains the nod decision, the observation the last frame's phase.

    The policy's action is the frame's tokens then 1 if a nod starts (ignored while one is under way); the env
    below gets the tokens. ``observation["gesture_phase"]`` ``(1,)`` is the phase of the frame placed last, so
    a windowed policy knows where in a nod it is (what :class:`~agents.vla.VLAAgent` keeps in its cache).
    """

    def __init__(self, env: gym.Env, gesture_frames: int) -> None:
        super().__init__(env)
        self.gesture_frames = int(gesture_frames)
        nvec = np.asarray(env.action_space.nvec).reshape(-1)  # type: ignore[attr-defined]
        self.action_space = spaces.MultiDiscrete(np.concatenate([nvec, [2]]))
        phase = spaces.Box(0, self.gesture_frames, (1,), np.int64)
        self.observation_space = spaces.Dict({**env.observation_space.spaces, "gesture_phase": phase})  # type: ignore[attr-defined]
        self.phase = 0

    def _observe(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {**observation, "gesture_phase": np.array([self.phase], np.int64)}

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self.phase = 0
        return self._observe(observation), info

    def step(self, action: Any) -> tuple[dict[str, Any], Any, bool, bool, dict[str, Any]]:
        action = np.asarray(action).reshape(-1)
        phase = torch.tensor([self.phase])
        onset = torch.tensor([bool(action[-1])]) & may_start(phase, self.gesture_frames)
        self.phase = int(next_phase(phase, onset, self.gesture_frames)[0])
        observation, reward, terminated, truncated, info = self.env.step(action[:-1])
        return self._observe(observation), reward, terminated, truncated, info


def window_batch(obs: dict[str, torch.Tensor], speaker_key: str, pad_id: int) -> dict[str, torch.Tensor]:
    """The tensors of ``VLAProcessor.observation_batch`` built in torch from SB3's numeric observations.

    SB3's buffers store every observation as float32; ids and masks are cast back here.
    """
    speaker = obs[speaker_key].float()
    mask = obs["mask"].bool().clone()
    mask[:, -1] = True  # the current frame is always valid
    ids = obs["words"].long()
    b, k = speaker.shape[:2]
    w = ids.shape[-1]
    word_ids = torch.full((b, k, w), pad_id, dtype=torch.long, device=speaker.device)
    word_mask = torch.zeros((b, k, w), dtype=torch.bool, device=speaker.device)
    valid = ids != WORDS_PAD
    word_ids[:, -1] = torch.where(valid, ids, torch.full_like(ids, pad_id))
    word_mask[:, -1] = valid
    return {
        "speaker_inputs": speaker, "prev_listener": obs["listener_motion"].float(), "word_ids": word_ids,
        "word_mask": word_mask, "frame_mask": mask,
    }  # fmt: skip


class _NoFeatures(BaseFeaturesExtractor):
    """SB3 wants a features extractor; the VLA reads the observation dict itself."""

    def __init__(self, observation_space: spaces.Space) -> None:
        super().__init__(observation_space, features_dim=1)

    def forward(self, observations: Any) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("VLAActorCriticPolicy reads observations directly")


class VLAActorCriticPolicy(ActorCriticPolicy):
    """An SB3 actor-critic whose actor is a VLA checkpoint and whose critic is an MLP on its hidden state.

    Args:
        observation_space, action_space, lr_schedule: as SB3 passes them.
        vla_path: the SFT checkpoint directory (``save_pretrained`` of ``VLAForListening``); loaded here, so
            SB3's saved ``policy_kwargs`` hold a path, not a network.
        value_hidden: width of the value MLP.
        detach_value: stop value-loss gradients at the VLA's hidden state, so the critic cannot disturb the
            pretrained policy (the actor moves only by the policy gradient and the KL penalty).
        value_lr_scale: the value MLP's learning rate relative to the policy's (it starts from scratch).
        temperature: sampling temperature of the rollouts (1 = the model's own distribution).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Callable[[float], float],
        *,
        vla_path: str,
        value_hidden: int = 256,
        detach_value: bool = True,
        value_lr_scale: float = 10.0,
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.vla_path = str(vla_path)
        self.value_hidden = value_hidden
        self.detach_value = detach_value
        self.value_lr_scale = value_lr_scale
        self.temperature = temperature
        kwargs.pop("features_extractor_class", None)
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=_NoFeatures, **kwargs
        )

    def _build(self, lr_schedule: Callable[[float], float]) -> None:
        from agents.vla import VLAForListening

        if not isinstance(self.action_space, spaces.MultiDiscrete):
            raise ValueError(
                f"VLAActorCriticPolicy needs MultiDiscrete token actions, found {self.action_space}"
            )
        self.vla = VLAForListening.from_pretrained(self.vla_path)
        cfg = self.vla.config
        if cfg.decoding != "parallel" or cfg.head_groups != 1:
            raise ValueError(
                f"{self.vla_path}: PPO needs a parallel-decoding VLA with independent dimensions (one forward pass "
                f"gives all 56 logits); this one decodes {cfg.decoding!r} with head_groups={cfg.head_groups}"
            )
        nvec = np.asarray(self.action_space.nvec).reshape(-1)
        tokens = nvec[:-1] if cfg.gesture_frames else nvec
        if (
            len(tokens) != cfg.action_dim
            or int(tokens.max()) != cfg.num_bins
            or (cfg.gesture_frames and int(nvec[-1]) != 2)
        ):
            raise ValueError(
                f"env actions {len(tokens)} x {int(tokens.max())} tokens do not match the VLA's {cfg.action_dim} x "
                f"{cfg.num_bins}"
                + (" plus a nod decision (wrap the env in NodDecisionWrapper)" if cfg.gesture_frames else "")
            )
        if self.vla.processor is None:
            raise ValueError(f"{self.vla_path}: the checkpoint has no processor (text and action tokenizers)")
        self.speaker_key = "speaker_features" if cfg.speaker_input == "features" else "speaker_motion"
        self.pad_id = int(self.vla.processor.words.pad_id)
        # The frozen SFT reference of the KL penalty; kept out of the module tree so it is neither trained nor
        # saved with the policy.
        reference = copy.deepcopy(self.vla).eval()
        reference.requires_grad_(False)
        self.__dict__["reference"] = reference
        self.value_net: nn.Module = nn.Sequential(  # type: ignore[assignment]
            nn.Linear(cfg.hidden_size, self.value_hidden), nn.Tanh(), nn.Linear(self.value_hidden, 1)
        )
        self.action_dist = (
            NodGestureCategorical(cfg.action_dim, cfg.num_bins) if cfg.gesture_frames
            else BatchedCategorical(cfg.action_dim, cfg.num_bins)
        )  # fmt: skip
        self.last_kl: np.ndarray | None = None
        groups = [
            {"params": [p for p in self.vla.parameters() if p.requires_grad], "lr_scale": 1.0},
            {"params": list(self.value_net.parameters()), "lr_scale": self.value_lr_scale},
        ]
        self.optimizer = self.optimizer_class(groups, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            vla_path=self.vla_path, value_hidden=self.value_hidden, detach_value=self.detach_value,
            value_lr_scale=self.value_lr_scale, temperature=self.temperature,
        )  # fmt: skip
        for key in ("features_extractor_class", "features_extractor_kwargs", "net_arch", "activation_fn"):
            data.pop(key, None)
        return data

    # --- the network -----------------------------------------------------------------------------------------
    def _window(
        self, obs: dict[str, torch.Tensor], model: Any
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The action distribution's parameters at each window's current frame and its hidden state ``(B, H)``.

        The parameters are the logits ``(B, 56, bins)``; with nod gestures, the onset logit ``(B,)``, whether a
        nod may start ``(B,)`` and the logits without and with a new nod ``(B, 2, 56, bins)``. The same as
        ``model.window_logits``, but the action head runs on the current frame only (``head_mask``): PPO
        evaluates windows at every rollout step and in every minibatch, and the head over all K frames would
        be most of the cost.
        """
        batch = window_batch(obs, self.speaker_key, self.pad_id)
        head_mask = torch.zeros_like(batch["frame_mask"])
        head_mask[:, -1] = True
        inputs = FrameInputs(batch["speaker_inputs"], batch["prev_listener"], batch["word_ids"], batch["word_mask"],
                             batch["frame_mask"])  # fmt: skip
        out = model.vla.frames(inputs, head_mask=head_mask)
        hidden = out.frame_hidden[:, -1]
        if not model.vla.gestures:
            return (model.get_output_embeddings()(out.action_hidden),), hidden
        return self._nod_branches(model, obs, batch, hidden), hidden

    def _nod_branches(
        self, model: Any, obs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], hidden: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Onset logit, whether a nod may start and the token logits without and with a new nod."""
        vla, length = model.vla, model.vla.gestures
        prev_phase = obs["gesture_phase"].reshape(-1).long()
        allowed = may_start(prev_phase, length)
        prev = batch["prev_listener"]
        prev2 = prev[:, -2] if prev.shape[1] > 1 else None
        branches = [
            vla.gesture_head_features(hidden, prev[:, -1], prev2, next_phase(prev_phase, onset, length), prev_phase)
            for onset in (torch.zeros_like(allowed), allowed)
        ]  # fmt: skip
        logits = model.get_output_embeddings()(torch.stack(branches, dim=1))
        return vla.gesture_logits(hidden), allowed, logits

    def _value(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.value_net(hidden.detach() if self.detach_value else hidden)

    def _distribution(self, params: tuple[torch.Tensor, ...], fresh: bool = False) -> Any:
        """The action distribution at the tempered logits (a nod's onset is drawn at temperature 1)."""
        dist: Any = self.action_dist
        if fresh:
            dist = type(dist)(dist.num_dims, dist.num_bins)
        *rest, logits = params
        return dist.proba_distribution(*rest, logits / self.temperature)

    def forward(
        self, obs: Any, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        params, hidden = self._window(obs, self.vla)
        dist = self._distribution(params)
        actions = dist.get_actions(deterministic=deterministic)
        log_prob = dist.log_prob(actions)
        # Rollouts run under no_grad: measure the drift from the SFT policy here, for KLPenaltyVecEnv.
        if not torch.is_grad_enabled():
            self.last_kl = self.kl_to_reference(obs, dist).cpu().numpy()
        return actions, self._value(hidden), log_prob

    @torch.no_grad()
    def kl_to_reference(self, obs: Any, dist: Any = None) -> torch.Tensor:
        """Exact KL(pi || pi_SFT) ``(B,)`` at each observation, summed over the 56 dimensions."""
        if dist is None:
            dist = self._distribution(self._window(obs, self.vla)[0])
        reference = self._distribution(self._window(obs, self.__dict__["reference"])[0], fresh=True)
        if isinstance(dist, NodGestureCategorical):
            return dist.kl_divergence(reference)
        return dist.kl_divergence(reference._require())

    def evaluate_actions(
        self, obs: Any, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        params, hidden = self._window(obs, self.vla)
        dist = self._distribution(params)
        return self._value(hidden), dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: Any) -> Any:  # type: ignore[override]
        return self._distribution(self._window(obs, self.vla)[0])

    def predict_values(self, obs: Any) -> torch.Tensor:
        return self._value(self._window(obs, self.vla)[1])

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)


class KLPenaltyVecEnv(VecEnvWrapper):
    """Subtract ``kl_coef * KL(pi || pi_SFT)`` of the acting policy from each step's reward.

    The KL is the one the policy measured when it chose the actions (``policy.last_kl``); ``info["kl"]`` and
    ``info["reward_before_kl"]`` keep both parts.
    """

    def __init__(
        self, venv: VecEnv, policy: VLAActorCriticPolicy | None = None, kl_coef: float = 0.05
    ) -> None:
        super().__init__(venv)
        if kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, found {kl_coef}")
        self.policy, self.kl_coef = policy, float(kl_coef)

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        kl = None if self.policy is None else self.policy.last_kl
        if kl is not None and self.kl_coef > 0:
            rewards = rewards.astype(np.float32)
            for i, info in enumerate(infos):
                info["reward_before_kl"] = float(rewards[i])
                info["kl"] = float(kl[i])
            rewards = rewards - self.kl_coef * kl.astype(np.float32)
        return obs, rewards, dones, infos


class _ScaledLRPPO(PPO):
    """PPO whose learning-rate schedule keeps each parameter group's ``lr_scale`` (SB3 sets one rate for all)."""

    def _update_learning_rate(self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer) -> None:
        lr = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", lr)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)


def make_ppo(
    vla_path: str | os.PathLike, env_fns: Sequence[Callable[[], gym.Env]], config: PPOConfig, *,
    tensorboard_log: str | None = None, verbose: int = 0,
) -> PPO:  # fmt: skip
    """An SB3 PPO whose policy is the VLA at ``vla_path``, on envs from ``env_fns`` (numeric ``words``).

    Each env must give the raw listener observation with ``words`` turned into VLA ids (wrap with
    :class:`VLAWordIds`); the KL penalty wraps the vector env. For a VLA with nod gestures each env is also
    wrapped in :class:`NodDecisionWrapper`.
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    from agents.vla import VLAConfig

    gestures = VLAConfig.from_pretrained(vla_path).gesture_frames
    if gestures:
        env_fns = [_with_nod_decisions(make, gestures) for make in env_fns]
    venv = KLPenaltyVecEnv(VecMonitor(DummyVecEnv(list(env_fns))), None, config.kl_coef)
    model = _ScaledLRPPO(
        VLAActorCriticPolicy, venv, learning_rate=config.learning_rate, n_steps=config.n_steps,
        batch_size=config.batch_size, n_epochs=config.n_epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
        clip_range=config.clip_range, ent_coef=config.ent_coef, vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm, target_kl=config.target_kl, seed=config.seed, device="cpu",
        tensorboard_log=tensorboard_log, verbose=verbose,
        policy_kwargs={
            "vla_path": str(vla_path), "value_lr_scale": config.value_lr_scale,
            "temperature": config.temperature, "detach_value": config.detach_value,
        },
    )  # fmt: skip
    venv.policy = model.policy  # type: ignore[assignment]
    if tensorboard_log is None:  # SB3 would otherwise make an empty log folder in /tmp at every learn()
        from stable_baselines3.common.logger import HumanOutputFormat, Logger

        model.set_logger(Logger(None, [HumanOutputFormat(sys.stdout)] if verbose else []))
    return model


def _with_nod_decisions(make: Callable[[], gym.Env], gesture_frames: int) -> Callable[[], gym.Env]:
    return lambda: NodDecisionWrapper(make(), gesture_frames)


def train_ppo(
    vla_path: str | os.PathLike,
    env_fns: Sequence[Callable[[], gym.Env]],
    config: PPOConfig,
    out: str | os.PathLike,
    *,
    tensorboard_log: str | None = None,
    verbose: int = 0,
) -> Path:
    """Run PPO from the SFT checkpoint and save the tuned VLA as a checkpoint directory at ``out``.

    ``out`` is written atomically (``out.partial`` renamed on success) and also holds ``ppo_config.json``, the
    value head and, unless ``tensorboard_log`` points elsewhere, the TensorBoard logs (``out/tb``).
    """
    import shutil

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tb = tensorboard_log or str(partial / "tb")
    model = make_ppo(vla_path, env_fns, config, tensorboard_log=tb, verbose=verbose)
    model.learn(total_timesteps=config.total_timesteps, tb_log_name="ppo", progress_bar=False)
    policy: VLAActorCriticPolicy = model.policy  # type: ignore[assignment]
    policy.vla.save_pretrained(partial)
    (partial / "ppo_config.json").write_text(
        json.dumps({**asdict(config), "sft_checkpoint": str(vla_path)}, indent=1)
    )
    torch.save(policy.value_net.state_dict(), partial / "value_head.pt")
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out
