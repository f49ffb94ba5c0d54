"""Batched closed-loop sampling equals the VLA agent acting in the env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import dyadic_env  # noqa: F401  (registers the env)
from agents.alignment.sampling import sample_trajectories
from agents.rollout import rollout
from agents.vla import VLAAgent, VLAForListening
from agents.vla.factory import model_for_dataset
from dyadic_env.data import load_dataset


@pytest.mark.parametrize("velocity", [0, 4])
def test_batched_greedy_decoding_equals_the_agent_in_the_env(
    walk_dataset_path, tiny_vla_path, tiny_vla_kwargs, velocity
) -> None:
    dataset = load_dataset(walk_dataset_path)
    model = VLAForListening.from_pretrained(tiny_vla_path).eval()
    if velocity:  # both must hand the head the step between the last two frames
        torch.manual_seed(0)
        model = model_for_dataset(dataset, seed=0, **tiny_vla_kwargs, head_velocity=velocity).eval()
        with torch.no_grad():
            model.vla.action_head.step_embed.weight.normal_(0.0, 1.0)
    clips = list(dataset.split("train"))[:3]  # different lengths: rows end at different frames
    batched = sample_trajectories(model, clips, 2, greedy=True, batch_size=4)
    env = gym.make(
        "dyadic_env/Listener-v0", dataset=dataset, split="train", tokenizer=model.processor.action_tokenizer
    )
    for clip, samples in zip(clips, batched):
        expected = rollout(env, VLAAgent(model, greedy=True), clip_id=clip.clip_id, seed=0).tokens
        assert len(samples) == 2
        for tokens in samples:
            np.testing.assert_array_equal(tokens, expected)


def test_samples_differ_and_follow_the_policy(walk_dataset_path, tiny_vla_path) -> None:
    model = VLAForListening.from_pretrained(tiny_vla_path).eval()
    clip = load_dataset(walk_dataset_path).split("train")[0]
    a = sample_trajectories(model, [clip], 3, temperature=1.0, seed=1)[0]
    b = sample_trajectories(model, [clip], 3, temperature=1.0, seed=1)[0]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)  # seeded
    assert not np.array_equal(a[0], a[1])
    cold = sample_trajectories(model, [clip], 3, temperature=0.05, seed=1)[0]
    with torch.no_grad():
        batch = model.processor.clips_batch([clip] * 6, a + cold)
        logp = model.sequence_logprobs(batch).numpy()
    # Near-greedy samples are far more likely under the policy than temperature-1 samples.
    assert logp[3:].min() > logp[:3].max()


def test_batched_decoding_keeps_the_agents_context_window(walk_dataset_path, tiny_vla_path) -> None:
    """A checkpoint trained on crops (max_context_frames) attends to the same frames in both paths."""
    model = VLAForListening.from_pretrained(tiny_vla_path).eval()
    model.config.max_context_frames = 4
    dataset = load_dataset(walk_dataset_path)
    clips = list(dataset.split("train"))[:2]
    batched = sample_trajectories(model, clips, 1, greedy=True, batch_size=2)
    env = gym.make(
        "dyadic_env/Listener-v0", dataset=dataset, split="train", tokenizer=model.processor.action_tokenizer
    )
    full_history = sample_trajectories(
        VLAForListening.from_pretrained(tiny_vla_path).eval(), clips, 1, greedy=True
    )
    for clip, samples, full in zip(clips, batched, full_history):
        expected = rollout(env, VLAAgent(model, greedy=True), clip_id=clip.clip_id, seed=0).tokens
        np.testing.assert_array_equal(samples[0], expected)
        assert not np.array_equal(samples[0], full[0]), "the window should change the trajectory"


def test_inverse_cdf_draws_follow_the_categorical() -> None:
    from agents.vla.decoding import Sampler

    probs = torch.tensor([0.5, 0.0, 0.2, 0.3, 0.0])
    logits = probs.clamp_min(1e-30).log().expand(40_000, 1, 5)  # (rows, dims, bins)
    draws = Sampler(temperature=1.0, generator=torch.Generator().manual_seed(0), draw="inverse-cdf")(logits)
    freq = torch.bincount(draws.flatten(), minlength=5).float() / draws.numel()
    assert draws.shape == (40_000, 1)
    assert freq[1] == 0 and freq[4] == 0  # zero-probability bins are never drawn
    np.testing.assert_allclose(freq.numpy(), probs.numpy(), atol=0.01)  # 4 sd of a 40k-draw frequency ~ 0.01
    again = Sampler(temperature=1.0, generator=torch.Generator().manual_seed(0), draw="inverse-cdf")(logits)
    assert torch.equal(draws, again)
    with pytest.raises(ValueError, match="draw: expected one of"):
        Sampler(draw="gumbel")


def test_batched_sampling_with_inverse_cdf_is_seeded_and_matches_multinomial_in_law(
    walk_dataset_path, tiny_vla_path
) -> None:
    model = VLAForListening.from_pretrained(tiny_vla_path).eval()
    clip = load_dataset(walk_dataset_path).split("train")[0]
    fast = sample_trajectories(model, [clip], 64, temperature=1.0, seed=3, draw="inverse-cdf")[0]
    again = sample_trajectories(model, [clip], 64, temperature=1.0, seed=3, draw="inverse-cdf")[0]
    slow = sample_trajectories(model, [clip], 64, temperature=1.0, seed=3)[0]
    assert all(np.array_equal(x, y) for x, y in zip(fast, again))
    assert not all(np.array_equal(x, y) for x, y in zip(fast, slow))  # another random stream
    # The same law: the first frame's mean token per dimension agrees within sampling noise.
    first_fast = np.stack([x[0] for x in fast]).astype(float)
    first_slow = np.stack([x[0] for x in slow]).astype(float)
    se = np.sqrt((first_fast.var(0) + first_slow.var(0)) / 64) + 1e-9
    assert np.mean(np.abs(first_fast.mean(0) - first_slow.mean(0)) / se < 3.5) > 0.95
