"""PPO through Stable-Baselines3 with the VLA as policy: obs plumbing, log-probs, KL penalty, learning."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dyadic_env  # noqa: F401  (registers the env)
from agents.alignment.ppo import KLPenaltyVecEnv, PPOConfig, VLAWordIds, make_ppo, window_batch
from agents.vla import VLAForListening
from agents.vla.inputs import FrameInputs
from dyadic_env.data import load_dataset


def _env_fn(path, processor, reward="imitation", k=8):
    return lambda: VLAWordIds(
        gym.make("dyadic_env/Listener-v0", dataset=path, context_frames=k, reward=reward), processor
    )


def _observations(env, n: int, seed: int = 0) -> list[dict]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(obs)
        obs, *_ = env.step(rng.integers(0, 256, 56))
    return out


def test_policy_sees_what_the_processor_builds(walk_dataset_path, tiny_vla_path) -> None:
    """SB3's numeric observations rebuild exactly VLAProcessor.observation_batch, and log-probs match the VLA."""
    vla = VLAForListening.from_pretrained(tiny_vla_path).eval()
    raw = gym.make("dyadic_env/Listener-v0", dataset=walk_dataset_path, context_frames=8)
    wrapped = VLAWordIds(
        gym.make("dyadic_env/Listener-v0", dataset=walk_dataset_path, context_frames=8), vla.processor
    )
    raw_obs, num_obs = _observations(raw, 22), _observations(wrapped, 22)
    expected = vla.processor.observation_batch(raw_obs)
    # SB3 stores every observation as float32.
    tensors = {
        k: torch.as_tensor(np.stack([o[k] for o in num_obs]), dtype=torch.float32)
        for k in num_obs[0]
        if k != "step"
    }
    built = window_batch(tensors, "speaker_motion", vla.processor.words.pad_id)
    with torch.no_grad():
        ref_logits, ref_hidden = vla.window_logits(expected)
        logits, hidden = vla.window_logits(built)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(hidden, ref_hidden)
    assert any(o["words"][0] >= 0 for o in num_obs), "the sample should contain words"

    ppo = make_ppo(
        tiny_vla_path,
        [_env_fn(walk_dataset_path, vla.processor)],
        PPOConfig(n_envs=1, n_steps=8, batch_size=8),
    )
    actions = torch.randint(0, 256, (22, 56))
    _, log_prob, entropy = ppo.policy.evaluate_actions(tensors, actions)
    expected_lp = torch.log_softmax(ref_logits, -1).gather(-1, actions[..., None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(log_prob, expected_lp, rtol=1e-4, atol=1e-4)
    assert entropy.shape == (22,) and bool((entropy > 0).all())


def test_kl_penalty_is_subtracted_per_step(walk_dataset_path, tiny_vla_path) -> None:
    processor = VLAForListening.from_pretrained(tiny_vla_path).processor
    cfg = PPOConfig(n_envs=2, n_steps=8, batch_size=16, kl_coef=0.5, learning_rate=1e-2)
    ppo = make_ppo(tiny_vla_path, [_env_fn(walk_dataset_path, processor)] * 2, cfg)
    # Move the policy away from its reference so the KL is positive.
    with torch.no_grad():
        for p in ppo.policy.vla.vla.action_head.parameters():
            p.add_(0.3 * torch.randn_like(p))
    venv = ppo.get_env()
    obs = venv.reset()
    with torch.no_grad():
        actions, _, _ = ppo.policy(ppo.policy.obs_to_tensor(obs)[0])
    _, rewards, _, infos = venv.step(actions.numpy())
    kl = ppo.policy.last_kl
    assert kl is not None and kl.shape == (2,) and (kl > 0).all()
    before = np.array([i["reward_before_kl"] for i in infos])
    np.testing.assert_allclose(rewards, before - 0.5 * kl, rtol=1e-5, atol=1e-6)
    assert isinstance(venv, KLPenaltyVecEnv)


@pytest.mark.slow
def test_ppo_improves_a_known_reward(walk_dataset_path, tiny_vla_path) -> None:
    """Reward = minus the distance to a fixed target frame: PPO moves the VLA's samples toward it."""
    tokenizer = load_dataset(walk_dataset_path).tokenizer()
    target = tokenizer.decode(np.full(56, 200))
    scale = tokenizer.high - tokenizer.low

    def reward(clip, frame, listener_frame):
        return -float(np.mean(np.abs(listener_frame - target) / scale))

    processor = VLAForListening.from_pretrained(tiny_vla_path).processor
    make = _env_fn(walk_dataset_path, processor, reward=reward)
    cfg = PPOConfig(total_timesteps=2048, n_envs=4, n_steps=64, batch_size=64, n_epochs=4, learning_rate=3e-3,
                    gamma=0.0, value_lr_scale=1.0, kl_coef=0.0, seed=0)  # fmt: skip
    ppo = make_ppo(tiny_vla_path, [make] * 4, cfg)

    def mean_return() -> float:
        torch.manual_seed(0)
        env, total = make(), []
        for episode in range(4):
            obs, _ = env.reset(seed=100 + episode)
            done, ret = False, 0.0
            while not done:
                obs, r, terminated, truncated, _ = env.step(ppo.predict(obs)[0])
                ret, done = ret + r, terminated or truncated
            total.append(ret)
        return float(np.mean(total))

    before = mean_return()
    ppo.learn(cfg.total_timesteps)
    after = mean_return()
    assert after > before + 1.0, f"mean return {before:.2f} -> {after:.2f}"


@pytest.mark.parametrize("coupling", [{"decoding": "autoregressive"}, {"head_groups": 4}])
def test_ppo_refuses_a_vla_with_coupled_dimensions(
    tmp_path, walk_dataset_path, tiny_vla_kwargs, coupling
) -> None:
    from agents.vla.factory import model_for_dataset

    model = model_for_dataset(load_dataset(walk_dataset_path), **coupling, **tiny_vla_kwargs)
    model.save_pretrained(tmp_path / "coupled")
    with pytest.raises(ValueError, match="parallel-decoding VLA with independent dimensions"):
        make_ppo(
            tmp_path / "coupled",
            [_env_fn(walk_dataset_path, model.processor)],
            PPOConfig(n_envs=1, n_steps=8, batch_size=8),
        )


@pytest.fixture(scope="module")
def nod_vla_path(tmp_path_factory, walk_dataset_path, tiny_vla_kwargs) -> Path:
    """A tiny VLA with nod gestures of 4 frames whose onset head says 50:50 and whose phase matters."""
    from agents.vla.factory import model_for_dataset

    torch.manual_seed(0)
    model = model_for_dataset(load_dataset(walk_dataset_path), seed=0, gesture_frames=4, **tiny_vla_kwargs)
    with torch.no_grad():
        model.vla.gesture_head.weight.zero_()
        model.vla.gesture_head.bias.zero_()
        model.vla.action_head.phase_embed.weight.normal_(0.0, 1.0)
    path = tmp_path_factory.mktemp("align") / "nod_vla"
    model.save_pretrained(path)
    return path


def test_ppo_on_a_gesture_vla_decides_nods_and_scores_them_as_the_agent_does(
    walk_dataset_path, nod_vla_path
) -> None:
    """The action gains the nod decision; its log-prob is the decision's plus the tokens' given the phase."""
    vla = VLAForListening.from_pretrained(nod_vla_path).eval()
    ppo = make_ppo(
        nod_vla_path,
        [_env_fn(walk_dataset_path, vla.processor)],
        PPOConfig(n_envs=1, n_steps=8, batch_size=8),
    )
    venv = ppo.get_env()
    assert venv.action_space.nvec.tolist() == [256] * 56 + [2]
    obs = venv.reset()
    phases, decisions = [], []
    for _ in range(12):
        tensors = ppo.policy.obs_to_tensor(obs)[0]
        with torch.no_grad():
            actions, _, log_prob = ppo.policy(tensors)
        prev_phase = int(obs["gesture_phase"][0, 0])
        # Rebuild the log-prob from the VLA's own pieces, as the cached agent computes it.
        batch = window_batch(tensors, "speaker_motion", vla.processor.words.pad_id)
        with torch.no_grad():
            inputs = FrameInputs(batch["speaker_inputs"], batch["prev_listener"], batch["word_ids"],
                                 batch["word_mask"], batch["frame_mask"])  # fmt: skip
            out = vla.vla.frames(inputs)
            allowed = prev_phase in (0, 4)
            onset = bool(actions[0, -1]) and allowed
            phase = 1 if onset else (prev_phase + 1 if 0 < prev_phase < 4 else 0)
            features = vla.vla.gesture_head_features(
                out.frame_hidden[:, -1], batch["prev_listener"][:, -1], batch["prev_listener"][:, -2],
                torch.tensor([phase]), torch.tensor([prev_phase]),
            )  # fmt: skip
            tokens = torch.log_softmax(vla.get_output_embeddings()(features), -1)
        expected = tokens[0].gather(-1, actions[0, :56, None].long()).sum() + (
            np.log(0.5) if allowed else 0.0
        )
        assert float(log_prob[0]) == pytest.approx(float(expected), rel=1e-4, abs=1e-3)
        obs, *_ = venv.step(actions.numpy())
        assert int(obs["gesture_phase"][0, 0]) == phase
        phases.append(phase)
        decisions.append(onset)
    assert any(decisions) and not all(decisions) and 2 in phases  # nods start at random and run on
    ppo.learn(16)  # a rollout and an update run end to end


def test_nod_decisions_have_an_exact_kl_and_entropy() -> None:
    from agents.alignment.distributions import NodGestureCategorical

    torch.manual_seed(0)
    onset, allowed = torch.tensor([0.3, 2.0]), torch.tensor([True, False])
    logits = torch.randn(2, 2, 3, 4)
    dist = NodGestureCategorical(3, 4).proba_distribution(onset, allowed, logits)
    assert torch.isfinite(dist.entropy()).all()
    assert (
        dist.kl_divergence(NodGestureCategorical(3, 4).proba_distribution(onset, allowed, logits)).abs().max()
        < 1e-6
    )
    other = NodGestureCategorical(3, 4).proba_distribution(
        onset - 1.0, allowed, logits + torch.randn_like(logits)
    )
    # Monte Carlo check of KL(dist || other) from sampled actions.
    many = NodGestureCategorical(3, 4).proba_distribution(
        onset.repeat(20000), allowed.repeat(20000), logits.repeat(20000, 1, 1, 1)
    )
    actions = many.sample()
    assert not bool(actions[1::2, -1].any())  # a nod under way: no new one
    many_other = NodGestureCategorical(3, 4).proba_distribution(
        (onset - 1.0).repeat(20000), allowed.repeat(20000), other.tokens.repeat(20000, 1, 1, 1)
    )
    estimate = (many.log_prob(actions) - many_other.log_prob(actions)).view(20000, 2).mean(0)
    torch.testing.assert_close(estimate, dist.kl_divergence(other), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("field", ["gamma", "clip_range", "kl_coef", "n_epochs"])
def test_both_ppo_configs_check_their_shared_hyperparameters_alike(field) -> None:
    from dataclasses import fields

    from agents.alignment.episode_ppo_config import EpisodePPOConfig
    from agents.alignment.ppo_config import PPOHyperparameters

    shared = {f.name for f in fields(PPOHyperparameters)}
    bad = {"gamma": 1.5, "clip_range": 0.0, "kl_coef": -0.1, "n_epochs": 0}[field]
    for config in (PPOConfig, EpisodePPOConfig):
        assert shared <= {f.name for f in fields(config)}
        with pytest.raises(ValueError, match=rf"{config.__name__}\.{field} must be"):
            config(**{field: bad})
