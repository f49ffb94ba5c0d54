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
