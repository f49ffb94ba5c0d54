"""PPO over whole closed-loop episodes of the VLA ("episode PPO"), at batched-sampling speed.

Why hand-written: SB3's PPO (:mod:`agents.alignment.ppo`) sees the VLA as a stateless policy of a window of
frames; it re-runs the network over the window at every env step (again for the KL reference) and, forward and
backward, for every sample in every update epoch. That window, not the env, sets its pace
(``docs/results/bench_rl.md``). trl's ``PPOTrainer`` assumes text completions from ``generate``. Here the
policy is the cached VLA itself:

- **rollout**: B episodes sampled together with the key-value cache, one batched forward per frame (the loop of
  :func:`agents.alignment.sampling.sample_trajectories`: the same draws for the same seed), recording each
  frame's tokens, nod phase, behaviour log-prob and value;
- **rewards**: a named env reward computed by the reward objects the env uses, on the frames the env would
  decode, so returns equal the env's; or a :class:`TrajectoryReward` scored offline on the whole episode (a
  learned reward model, :mod:`experiments.pipelines.trainers`); optionally minus ``kl_coef * (log pi - log
  pi_ref)`` per frame, the frozen reference scored teacher-forced once per rollout;
- **advantages**: GAE per episode, or (``advantage: group``) each episode's return against the other samples of
  its clip, every frame the same. The value head is an MLP on the VLA's per-frame hidden state with its
  gradient stopped there: the hidden state is what the policy acts on (no features of its own to build), and
  the critic, which starts from scratch, cannot disturb the pretrained policy. Rewards are divided by a
  running std of discounted returns;
- **update**: whole episodes teacher-forced in one pass per minibatch. ``frame_window`` gives each frame the
  attention the cache had after evicting old frames, the recorded nod phases give the sampled nod decisions,
  so every frame's log-prob is exactly the one it was sampled with (ratio 1 before the first step); clipped
  PPO objective per frame, value loss, entropy bonus, a few epochs over minibatches of episodes.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.alignment.episode_ppo_config import EpisodePPOConfig
from agents.alignment.episode_rewards import TrajectoryReward, episode_rewards, is_trajectory_reward
from agents.vla.decoding import DecodeState, Sampler, decode_frames
from agents.vla.gestures import decision_logprob, may_start
from agents.vla.inputs import FrameInputs

__all__ = [
    "EpisodePPO", "Rollout", "TrajectoryReward", "collect_episodes", "episode_rewards", "gae", "group_advantages",
    "is_trajectory_reward",
    "score_episodes", "train_episode_ppo",
]  # fmt: skip


@dataclass
class Rollout:
    """B sampled episodes, padded to the longest (``mask`` marks real frames).

    Attributes:
        clips: the clips the episodes replay.
        tokens: (B, T, 56) sampled tokens.
        mask: (B, T) bool.
        logp: (B, T) each frame's log-prob under the sampling policy (tokens at its temperature, the nod decision
            at temperature 1, as the sampler draws it).
        values: (B, T) the value head's estimate at each frame (zeros without a value head).
        phases: (B, T) each frame's nod phase (gesture models), else None.
        nod_logp: (B, T) the nod decision's part of ``logp`` (zeros without gestures).
        rewards: (B, T) the per-step rewards (set by :meth:`EpisodePPO.collect`).
    """

    clips: list[Any]
    tokens: torch.Tensor
    mask: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor
    phases: torch.Tensor | None
    nod_logp: torch.Tensor
    rewards: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.mask.sum())

    def trajectories(self) -> list[np.ndarray]:
        """Each episode's tokens (T_i, 56)."""
        lengths = self.mask.sum(1).tolist()
        return [self.tokens[i, : int(n)].numpy() for i, n in enumerate(lengths)]


@dataclass
class _RecordingSampler(Sampler):
    """A :class:`Sampler` that also keeps the tempered log-prob of the tokens it draws (summed until read) and
    the onset logits it draws a nod decision from."""

    tempered: Any = 0.0
    onset_logits: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor, dims: Any = None) -> torch.Tensor:
        tokens = super().__call__(logits, dims)
        self.tempered = self.tempered + _token_logp(logits.float() / self.temperature, tokens).sum(-1)
        return tokens

    def onsets(self, logits: torch.Tensor) -> torch.Tensor:
        self.onset_logits = logits
        return super().onsets(logits)


def _token_logp(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)


@torch.no_grad()
def collect_episodes(
    model: Any, clips: Sequence[Any], *, temperature: float = 1.0, seed: int = 0, draw: str = "multinomial",
    value_head: nn.Module | None = None,
) -> Rollout:  # fmt: skip
    """Sample one closed-loop episode per clip, all in one batch (the draws of ``sample_trajectories(model,
    clips, 1, temperature=..., seed=seed, batch_size=len(clips), draw=...)``), recording what PPO needs."""
    from agents.alignment.sampling import _decode_rows

    model = model.eval()
    examples = [model.processor.clip_example(clip) for clip in clips]
    lengths = torch.tensor([len(e["speaker_inputs"]) for e in examples])
    b, t_max = len(clips), int(lengths.max())
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0]).generate_state(1)[0]))
    sampler = _RecordingSampler(
        temperature=temperature, generator=generator, expression_dim=model.config.expression_dim, draw=draw
    )
    logp, values, nod_logp = torch.zeros(b, t_max), torch.zeros(b, t_max), torch.zeros(b, t_max)
    phases = torch.zeros(b, t_max, dtype=torch.long) if model.vla.gestures else None

    def record(t: int, tokens: torch.Tensor, untempered: torch.Tensor, state: DecodeState) -> None:
        logp[:, t] = sampler.tempered
        sampler.tempered = 0.0
        if phases is not None:  # the nod decision, drawn at temperature 1 where one may start
            assert state.gesture_phase is not None and sampler.onset_logits is not None
            phases[:, t] = phase = state.gesture_phase
            allowed = may_start(phases[:, t - 1] if t else torch.zeros_like(phase), model.vla.gestures)
            nod_logp[:, t] = decision_logprob(sampler.onset_logits, phase == 1, allowed)
            logp[:, t] += nod_logp[:, t]
        if value_head is not None:
            assert state.frame_hidden is not None
            values[:, t] = value_head(state.frame_hidden.float()).squeeze(-1)

    rows = _decode_rows(model, examples, sampler, decode_frames, DecodeState, record=record)
    mask = torch.arange(t_max)[None, :] < lengths[:, None]
    tokens = torch.zeros(b, t_max, model.config.action_dim, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.from_numpy(row)
    if phases is not None:
        phases = phases * mask
    return Rollout(list(clips), tokens, mask, logp * mask, values * mask, phases, nod_logp * mask)


def score_episodes(
    model: Any, inputs: dict[str, torch.Tensor], phases: torch.Tensor | None, *, temperature: float,
    frame_window: int, entropy: bool = False, token_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:  # fmt: skip
    """Teacher-forced per-frame log-probs (B, T) of whole episodes, exactly those of closed-loop sampling;
    the tokens' entropy (B, T) when asked; the frames' hidden states (B, T, H).

    ``inputs`` holds ``speaker_inputs``, ``word_ids``, ``word_mask``, ``frame_mask`` and ``actions`` (the
    sampled tokens); ``phases`` the sampled nod phases (gesture models); ``frame_window`` the cache's window;
    ``token_weight`` scales the tokens' log-prob against the nod decision's (1: the sampler's log-prob).
    """
    vla, actions, mask = model.vla, inputs["actions"], inputs["frame_mask"]
    frame_inputs = FrameInputs(
        inputs["speaker_inputs"], vla.previous_states(actions), inputs["word_ids"], inputs["word_mask"], mask,
        actions=actions, gesture_phases=phases if vla.gestures else None,
    )  # fmt: skip
    out = vla.frames(frame_inputs, frame_window=frame_window)
    logits = model.get_output_embeddings()(out.action_hidden).float() / temperature
    # cross_entropy fuses log-softmax and pick (a faster backward than gathering from a log-softmax tensor).
    nll = F.cross_entropy(logits.flatten(0, -2), actions.flatten(), reduction="none")
    logp = -nll.view(actions.shape).sum(-1) * token_weight
    if vla.gestures:
        assert phases is not None
        logp = logp + vla.gesture_logprobs(out.frame_hidden, actions, mask, targets=(phases == 1, phases))
    weight = mask.to(logp.dtype)
    ent = None
    if entropy:
        log_p = torch.log_softmax(logits, -1)
        ent = -(log_p.exp() * log_p).sum((-1, -2)) * weight
    return logp * weight, ent, out.frame_hidden


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (B, T) of episodes that end at their last valid frame (no bootstrap after it)."""
    weight = mask.to(values.dtype)
    end = torch.zeros_like(weight[:, :1])
    following = torch.cat([weight[:, 1:], end], 1)  # 0 after an episode's last frame: no bootstrap there
    next_values = torch.cat([values[:, 1:], end], 1) * following
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_values[:, t] - values[:, t]
        last = (delta + gamma * lam * following[:, t] * last) * weight[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * weight


def group_advantages(returns: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each episode's return minus the mean return of the other episodes of its group (B,), groups being
    ``group_size`` consecutive episodes (the leave-one-out baseline of RLOO)."""
    groups = returns.reshape(-1, group_size)
    others = (groups.sum(1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)


class ReturnScaler:
    """Divides rewards by the running std of discounted returns (as SB3's ``VecNormalize`` does)."""

    def __init__(self, gamma: float) -> None:
        self.gamma, self.count, self.mean, self.var = gamma, 0, 0.0, 1.0

    def __call__(self, rewards: np.ndarray, mask: np.ndarray) -> np.ndarray:
        returns = np.zeros_like(rewards)
        running = np.zeros(rewards.shape[0])
        for t in range(rewards.shape[1]):
            running = running * self.gamma + rewards[:, t]
            returns[:, t] = running
        self._update(returns[mask])
        return rewards / np.sqrt(self.var + 1e-8)

    def _update(self, x: np.ndarray) -> None:
        n = len(x)
        if n == 0:
            return
        mean, var, total = float(x.mean()), float(x.var()), self.count + n
        delta = mean - self.mean
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total


class EpisodePPO:
    """The trainer: :meth:`iterate` collects one rollout and updates on it; :meth:`save` writes the checkpoint.

    Args:
        policy_dir: the starting checkpoint (``VLAForListening.save_pretrained``, with its processor).
        reward: a named env reward (``"oracle"``, ``"imitation"``, ...), an ``EpisodeReward``, a ``RewardFn``
            or a :class:`TrajectoryReward`.
        dataset: a ``DyadicDataset`` (or a spec ``load_dataset`` reads).
        config: the settings.
    """

    def __init__(
        self, policy_dir: str | os.PathLike, reward: Any, dataset: Any, config: EpisodePPOConfig
    ) -> None:
        from agents.vla import VLAForListening
        from dyadic_env.data import load_dataset

        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)
        self.config, self.reward = config, reward
        self.dataset = load_dataset(dataset) if isinstance(dataset, str | os.PathLike) else dataset
        self.model = VLAForListening.from_pretrained(policy_dir).eval()
        if self.model.processor is None:
            raise ValueError(f"{policy_dir}: the checkpoint has no processor (text and action tokenizers)")
        cfg = self.model.config
        self.temperature = float(
            config.temperature or (cfg.decode_temperature if cfg.decode_mode == "sample" else 1.0)
        )
        self.frame_window = int(cfg.max_context_frames or 0)
        self.reference = None
        if config.kl_coef > 0:
            self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.value_head = nn.Sequential(
            nn.Linear(cfg.hidden_size, config.value_hidden), nn.Tanh(), nn.Linear(config.value_hidden, 1)
        )
        self.optimizer = torch.optim.Adam([
            {"params": [p for p in self.model.parameters() if p.requires_grad], "lr": config.learning_rate},
            {"params": list(self.value_head.parameters()), "lr": config.learning_rate * config.value_lr_scale},
        ])  # fmt: skip
        self.clips = list(self.dataset.split(config.split))
        if not self.clips:
            raise ValueError(f"{self.dataset.path}: split {config.split!r} has no clips; pick another split")
        self.rng = np.random.default_rng(config.seed)
        self.scaler = ReturnScaler(config.gamma) if config.normalize_rewards else None
        self.steps = self.iterations = 0
        self.timings: dict[str, float] = {}  # seconds of each part of the last iteration

    def _next_clips(self) -> list[Any]:
        """The rollout's clips, each ``samples_per_clip`` times in a row."""
        k = self.config.samples_per_clip
        n = self.config.episodes_per_rollout // k
        index = self.rng.choice(len(self.clips), n, replace=n > len(self.clips))
        return [self.clips[i] for i in index for _ in range(k)]

    def collect(self) -> Rollout:
        """Sample a rollout of fresh clips and give it the env's rewards."""
        seed = int(np.random.SeedSequence([self.config.seed, self.iterations]).generate_state(1)[0])
        start = time.perf_counter()
        rollout = collect_episodes(
            self.model, self._next_clips(), temperature=self.temperature, seed=seed, draw=self.config.draw,
            value_head=self.value_head,
        )  # fmt: skip
        sampled = time.perf_counter()
        rewards = episode_rewards(
            self.reward, rollout.clips, rollout.trajectories(), self.dataset, self.model.processor.action_tokenizer
        )  # fmt: skip
        rollout.rewards = np.zeros(rollout.mask.shape)
        for i, r in enumerate(rewards):
            rollout.rewards[i, : len(r)] = r
        self.timings.update(sampling=sampled - start, rewards=time.perf_counter() - sampled)
        return rollout

    def _inputs(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        processor = self.model.processor
        examples = [processor.clip_example(c, t) for c, t in zip(rollout.clips, rollout.trajectories())]
        batch = processor.collate(examples)
        return {k: batch[k] for k in ("speaker_inputs", "word_ids", "word_mask", "frame_mask", "actions")}

    def _minibatches(self, b: int) -> list[np.ndarray]:
        order = self.rng.permutation(b)
        m = self.config.minibatch_episodes
        return [order[i : i + m] for i in range(0, b, m)]

    @torch.no_grad()
    def _reference_logp(self, inputs: dict[str, torch.Tensor], rollout: Rollout) -> torch.Tensor:
        """The frozen reference's per-frame log-probs of the sampled episodes, a minibatch at a time."""
        assert self.reference is not None
        out = torch.zeros_like(rollout.logp)
        for idx in np.array_split(
            np.arange(len(rollout.clips)), max(1, len(rollout.clips) // self.config.minibatch_episodes)
        ):
            part = {k: v[idx] for k, v in inputs.items()}
            phases = None if rollout.phases is None else rollout.phases[idx]
            out[idx] = score_episodes(
                self.reference,
                part,
                phases,
                temperature=self.temperature,
                frame_window=self.frame_window,
                token_weight=self.config.kl_token_weight,
            )[0]
        return out

    def advantages(
        self, rollout: Rollout, inputs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Advantages and value targets (B, T) of a rollout (rewards normalised, minus the KL penalty)."""
        assert rollout.rewards is not None
        mask = rollout.mask.numpy()
        rewards = rollout.rewards if self.scaler is None else self.scaler(rollout.rewards, mask)
        stats = {
            "return_mean": float(rollout.rewards.sum(1).mean()),
            "episode_frames": float(mask.sum(1).mean()),
        }
        rewards_t = torch.from_numpy(rewards).float()
        if self.reference is not None:
            start = time.perf_counter()
            w = self.config.kl_token_weight  # the sampled frame's log-prob with its tokens at weight w
            own = w * rollout.logp + (1 - w) * rollout.nod_logp
            kl = (own - self._reference_logp(inputs, rollout)) * rollout.mask
            self.timings["reference"] = time.perf_counter() - start
            rewards_t = rewards_t - self.config.kl_coef * kl
            stats["kl_reference"] = float(kl.sum() / rollout.mask.sum())
        advantages, returns = gae(
            rewards_t, rollout.values, rollout.mask, self.config.gamma, self.config.gae_lambda
        )
        if self.config.advantage == "group":
            advantages = (
                group_advantages(rewards_t.sum(1), self.config.samples_per_clip)[:, None] * rollout.mask
            )
        valid = advantages[rollout.mask]
        advantages = (advantages - valid.mean()) / (valid.std() + 1e-8) * rollout.mask
        return advantages, returns, stats

    def update(self, rollout: Rollout) -> dict[str, float]:
        """PPO epochs over minibatches of the rollout's whole episodes; returns the mean statistics."""
        cfg = self.config
        inputs = self._inputs(rollout)
        advantages, returns, stats = self.advantages(rollout, inputs)
        totals: dict[str, list[float]] = {}
        for _ in range(cfg.n_epochs):
            for idx in self._minibatches(len(rollout.clips)):
                for key, value in self._step(
                    {k: v[idx] for k, v in inputs.items()}, rollout, idx, advantages[idx], returns[idx]
                ).items():
                    totals.setdefault(key, []).append(value)
        return {**stats, **{k: float(np.mean(v)) for k, v in totals.items()}}

    def _step(
        self, inputs: dict[str, torch.Tensor], rollout: Rollout, idx: np.ndarray, advantages: torch.Tensor,
        returns: torch.Tensor,
    ) -> dict[str, float]:  # fmt: skip
        """One gradient step on a minibatch of episodes."""
        cfg = self.config
        phases = None if rollout.phases is None else rollout.phases[idx]
        logp, entropy, hidden = score_episodes(
            self.model, inputs, phases, temperature=self.temperature, frame_window=self.frame_window,
            entropy=cfg.ent_coef > 0,
        )  # fmt: skip
        mask = rollout.mask[idx]
        weight = mask.float()
        n = weight.sum().clamp(min=1)
        log_ratio = (logp - rollout.logp[idx]) * weight
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range)
        policy_loss = -(torch.minimum(ratio * advantages, clipped * advantages) * weight).sum() / n
        values = self.value_head(hidden.detach().float()).squeeze(-1)
        value_loss = ((values - returns).pow(2) * weight).sum() / n
        loss = policy_loss + cfg.vf_coef * value_loss
        if entropy is not None:
            loss = loss - cfg.ent_coef * entropy.sum() / n
        self.optimizer.zero_grad()
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            return {
                "policy_loss": float(policy_loss), "value_loss": float(value_loss),
                "clip_fraction": float((((ratio - 1).abs() > cfg.clip_range) & mask).sum() / n),
                "approx_kl": float((((ratio - 1) - log_ratio) * weight).sum() / n),
            }  # fmt: skip

    def iterate(self) -> dict[str, float]:
        """One rollout and its update; the statistics include the time each took and the env steps per second."""
        start = time.perf_counter()
        rollout = self.collect()
        collected = time.perf_counter()
        self.model.eval()
        stats = self.update(rollout)
        done = time.perf_counter()
        frames = rollout.frames
        self.steps += frames
        self.iterations += 1
        self.timings.update(collect=collected - start, update=done - collected)
        stats.update(
            frames=frames, collect_steps_per_s=frames / (collected - start), update_steps_per_s=frames / (done - collected),
            steps_per_s=frames / (done - start),
        )  # fmt: skip
        return stats

    def learn(
        self, log_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None
    ) -> None:
        """Iterate until ``total_steps`` env steps; TensorBoard scalars under ``log_dir``."""
        writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(log_dir))
        try:
            while self.steps < self.config.total_steps:
                stats = self.iterate()
                if writer is not None:
                    for key, value in stats.items():
                        writer.add_scalar(f"episode_ppo/{key}", value, self.steps)
                if log is not None:
                    log(f"[episode ppo] {self.steps} steps: return {stats['return_mean']:.3f}, "
                        f"clip {stats['clip_fraction']:.3f}, {stats['steps_per_s']:.0f} steps/s")  # fmt: skip
        finally:
            if writer is not None:
                writer.close()

    def save(self, out: str | os.PathLike) -> Path:
        """The trained VLA as a checkpoint directory (plus ``episode_ppo_config.json`` and ``value_head.pt``)."""
        out = Path(out)
        self.model.save_pretrained(out)
        (out / "episode_ppo_config.json").write_text(json.dumps(asdict(self.config), indent=1))
        torch.save(self.value_head.state_dict(), out / "value_head.pt")
        return out


def train_episode_ppo(
    policy_dir: str | os.PathLike, reward: Any, dataset: Any, config: EpisodePPOConfig, out: str | os.PathLike,
    *, log: Callable[[str], None] | None = None,
) -> Path:  # fmt: skip
    """Episode PPO from ``policy_dir`` on ``reward`` (see :class:`EpisodePPO`); writes the tuned checkpoint,
    loadable by ``VLAForListening.from_pretrained``, atomically at ``out`` (TensorBoard logs in ``out/tb``)."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    trainer = EpisodePPO(policy_dir, reward, dataset, config)
    trainer.learn(partial / "tb", log=log)
    trainer.save(partial)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out
