"""Named and pluggable rewards of the listener env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from dyadic_env.data import load_dataset
from dyadic_env.envs import ListenerEnv
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.rewards import (
    AffectSynchronyReward,
    EpisodeReward,
    listener_affect_estimator,
    make_reward,
    register_reward,
    reward_names,
)


@pytest.fixture(scope="module")
def affect_path(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", affect=True)


def episode(env, action_fn, seed=0):
    obs, info = env.reset(seed=seed, options={"clip_index": 0})
    rewards, infos, done = [], [info], False
    while not done:
        obs, reward, done, _, info = env.step(action_fn(obs, info))
        rewards.append(reward)
        infos.append(info)
    return np.array(rewards), infos


def test_registry_names_and_errors():
    assert {"imitation", "affect", "oracle"} <= set(reward_names())
    with pytest.raises(ValueError, match="reward: expected one of"):
        make_reward("nope")
    with pytest.raises(TypeError, match="expected a name, an EpisodeReward or a callable"):
        make_reward(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already registered"):
        register_reward("imitation", EpisodeReward)


def test_imitation_is_minus_mean_squared_error_and_best_for_ground_truth(affect_path):
    env = ListenerEnv(str(affect_path), reward="imitation")
    tok = env.tokenizer
    rewards, _ = episode(env, lambda obs, info: np.full(56, 128))
    clip = env.clip
    expected = -np.mean((tok.decode(np.full(56, 128)) - clip.listener_motion) ** 2, axis=1)
    np.testing.assert_allclose(rewards, expected, rtol=1e-5)
    gt_tokens = tok.encode(clip.listener_motion)
    best, _ = episode(env, lambda obs, info: gt_tokens[obs["step"][0]])
    assert best.sum() > rewards.sum() and best.max() <= 0


def test_callable_reward_and_episode_reward_subclass(affect_path):
    calls = []

    def smile(clip, frame, listener_frame):
        calls.append((clip.clip_id, frame))
        return float(listener_frame[0])

    env = ListenerEnv(str(affect_path), reward=smile)
    rewards, infos = episode(env, lambda obs, info: np.zeros(56, dtype=np.int64))
    assert rewards == pytest.approx(np.full(len(rewards), env.tokenizer.bin_centers[0, 0]))
    assert calls == [(infos[0]["clip_id"], t) for t in range(len(rewards))]

    class Counting(EpisodeReward):
        def reset(self, clip, dataset):
            self.n = 0

        def step(self, frame, listener_frame):
            self.n += 1
            return 0.0

        def finish(self):
            return 10.0, {"placed": self.n}

    env = ListenerEnv(str(affect_path), reward=Counting())
    rewards, infos = episode(env, lambda obs, info: np.zeros(56, dtype=np.int64))
    assert rewards[-1] == 10.0 and rewards[:-1].sum() == 0.0
    assert infos[-1]["placed"] == len(rewards) and "placed" not in infos[-2]


def test_affect_reward_with_dataset_affect_arrays(affect_path):
    """flame faces with affect arrays: the listener's affect comes from a probe fitted on the dataset."""
    dataset = load_dataset(affect_path)
    estimator = listener_affect_estimator(dataset)
    clip = dataset.split("train")[0]
    fitted = estimator(np.asarray(clip.listener_motion))
    assert fitted.shape == (clip.num_frames, 2)
    assert np.corrcoef(fitted[:, 0], clip.listener_affect[:, 0])[0, 1] > 0.9
    env = ListenerEnv(dataset, reward="affect", reward_kwargs={"lag_s": 0.0})
    rewards, _ = episode(env, lambda obs, info: np.zeros(56, dtype=np.int64))
    assert (rewards <= 0).all() and rewards.min() < 0
    # A listener whose estimated affect equals the speaker's earns more than a frozen one.
    speaker_affect = np.asarray(env.clip.speaker_affect, np.float64)
    assert np.isclose(env.reward_fn._target, speaker_affect).all()


def test_affect_reward_needs_a_source_of_affect(tmp_path):
    path = write_random_walk_dataset(tmp_path / "d")  # flame faces, no affect arrays
    with pytest.raises(ValueError, match=r"has no affect arrays|no listener_affect array"):
        ListenerEnv(str(path), reward="affect").reset(seed=0)
    with pytest.raises(ValueError, match="lag_s must be >= 0"):
        AffectSynchronyReward(lag_s=-1)


def test_oracle_reward_refuses_non_synthetic_data(affect_path):
    env = ListenerEnv(str(affect_path), reward="oracle")
    with pytest.raises(ValueError, match="'oracle' reward needs a synthetic dataset"):
        env.reset(seed=0)


@pytest.mark.slow
def test_oracle_reward_on_synthetic_data():
    pytest.importorskip("dyadic_env.synthetic", reason="synthetic benchmark not available")
    env = gym.make("dyadic_env/Listener-v0", dataset="synthetic:tiny", split="test", reward="oracle")
    base = env.unwrapped
    obs, info = env.reset(seed=0)
    gt = base.tokenizer.encode(base.clip.listener_motion)
    total, done = 0.0, False
    while not done:
        obs, reward, done, _, info = env.step(gt[obs["step"][0]])
        total += reward
    scores = info["oracle_scores"]
    assert set(scores) >= {"empathy", "appropriateness", "engagement", "naturalness", "weighted"}
    assert 1.0 <= scores["weighted"] <= 5.0
    assert np.isfinite(total)
