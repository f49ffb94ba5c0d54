"""LearnedRewardWrapper on the real listener env: the reward it gives equals the model on offline features."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import dyadic_env  # noqa: F401  (registers the env)
from agents.baselines import RandomAgent
from agents.rollout import rollout
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.wrappers import WordsToTokenIds
from reward_models import (
    LearnedRewardWrapper,
    RewardModelConfig,
    StepFeatureConfig,
    TrajectoryRewardModel,
    trajectory_features,
    words_per_frame,
)

FEATS = StepFeatureConfig(speaker_frames=8, speaker_stride=2, listener_history=2, word_buckets=16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", frames=(20, 30))


def _model(ensemble: int = 3) -> TrajectoryRewardModel:
    torch.manual_seed(0)
    model = TrajectoryRewardModel(
        RewardModelConfig(features=FEATS, hidden_sizes=(16,), ensemble_size=ensemble)
    )
    for member in model.members:
        torch.nn.init.normal_(member.reward.weight, std=0.3)
        torch.nn.init.normal_(member.linear.weight, std=0.05)
    model.reward_mean.fill_(0.3)  # a non-trivial scale, so normalisation is exercised
    model.reward_std.fill_(2.0)
    return model.eval()


def test_wrapper_reward_equals_model_on_the_episode(dataset) -> None:
    model = _model()
    env = LearnedRewardWrapper(gym.make("dyadic_env/Listener-v0", dataset=dataset, context_frames=16), model)
    plain = gym.make("dyadic_env/Listener-v0", dataset=dataset, context_frames=16)
    clip_id = "train-001"
    traj = rollout(env, RandomAgent(seed=0), clip_id=clip_id, seed=3)
    reference = rollout(plain, RandomAgent(seed=0), clip_id=clip_id, seed=3)
    clip = env.unwrapped.dataset.clip(clip_id)
    feats = trajectory_features(
        FEATS, np.asarray(clip.speaker_motion), traj.frames, words_per_frame(clip, FEATS)
    )
    mean, std = model.predict(feats, normalized=True)
    np.testing.assert_allclose(traj.rewards, mean, rtol=1e-4, atol=1e-5)
    original = [info["original_reward"] for info in traj.infos[1:]]
    np.testing.assert_allclose(original, reference.rewards, rtol=1e-6)
    np.testing.assert_allclose(
        [info["reward_disagreement"] for info in traj.infos[1:]], std, rtol=1e-4, atol=1e-6
    )
    assert (std > 0).all()


def test_disagreement_penalty_lowers_the_reward(dataset) -> None:
    model = _model()
    base = LearnedRewardWrapper(gym.make("dyadic_env/Listener-v0", dataset=dataset), model)
    cautious = LearnedRewardWrapper(
        gym.make("dyadic_env/Listener-v0", dataset=dataset), model, disagreement_penalty=1.0
    )
    a = rollout(base, RandomAgent(seed=1), clip_id="train-000", seed=0)
    b = rollout(cautious, RandomAgent(seed=1), clip_id="train-000", seed=0)
    disagreement = np.array([info["reward_disagreement"] for info in a.infos[1:]])
    np.testing.assert_allclose(b.rewards, a.rewards - disagreement, rtol=1e-4, atol=1e-5)


def test_wrapper_refuses_a_mismatched_env(dataset) -> None:
    model = _model(1)
    with pytest.raises(ValueError, match="words_window_s"):
        LearnedRewardWrapper(gym.make("dyadic_env/Listener-v0", dataset=dataset, words_window_s=1.0), model)
    with pytest.raises(ValueError, match="WordsToTokenIds"):
        LearnedRewardWrapper(WordsToTokenIds(gym.make("dyadic_env/Listener-v0", dataset=dataset)), model)


def test_a_temporal_reward_model_gives_the_wrapper_what_it_gives_the_whole_episode(dataset) -> None:
    # The wrapper keeps only the last receptive-field steps; its rewards equal the model on the whole episode.
    torch.manual_seed(0)
    config = RewardModelConfig(features=FEATS, hidden_sizes=(16,), ensemble_size=2, temporal_dilations=(1, 2))
    model = TrajectoryRewardModel(config).eval()
    for member in model.members:
        torch.nn.init.normal_(member.reward.weight, std=0.3)
    assert model.receptive_field == 7
    env = LearnedRewardWrapper(gym.make("dyadic_env/Listener-v0", dataset=dataset, context_frames=16), model)
    clip_id = "train-001"
    traj = rollout(env, RandomAgent(seed=0), clip_id=clip_id, seed=3)
    again = rollout(env, RandomAgent(seed=0), clip_id=clip_id, seed=3)  # reset forgets the last episode
    clip = env.unwrapped.dataset.clip(clip_id)
    feats = trajectory_features(
        FEATS, np.asarray(clip.speaker_motion), traj.frames, words_per_frame(clip, FEATS)
    )
    mean, _ = model.predict(feats, normalized=True)
    np.testing.assert_allclose(traj.rewards, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(again.rewards, traj.rewards, rtol=1e-6)
    # The past matters: the same steps scored one at a time, without their past, give other rewards.
    alone, _ = model.predict(feats[:, None, :], normalized=True)
    assert np.abs(alone[:, 0] - mean).max() > 1e-3
