"""The batched listener envs: equal to separate ListenerEnvs, seeded, next-step autoreset, sharded workers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

import dyadic_env  # noqa: F401  (registers the env)
from dyadic_env.envs import LISTENER_ENV_ID, ListenerEnv
from dyadic_env.envs.sharded import ShardedListenerVectorEnv, WorkerError
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.envs.vector import ListenerVectorEnv

K = 4


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return str(write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", frames=(12, 20)))


@pytest.fixture(scope="module")
def feature_path(tmp_path_factory):
    path = write_random_walk_dataset(
        tmp_path_factory.mktemp("rwf") / "d", frames=(12, 20), feature_dim=3, affect=True
    )
    return str(path)


def vector(path, num_envs=3, **kwargs):
    return ListenerVectorEnv(path, num_envs=num_envs, context_frames=K, **kwargs)


def sync(path, num_envs=3, **kwargs):
    return gym.make_vec(
        LISTENER_ENV_ID, num_envs, vectorization_mode="sync", dataset=path, context_frames=K, **kwargs
    )


def assert_same_step(a, b, where=""):
    """Two (obs, reward, terminated, truncated, info) or (obs, info) tuples agree; info values where masked."""
    for key in a[0]:
        if key == "words":
            assert a[0][key] == b[0][key], where
        else:
            np.testing.assert_array_equal(a[0][key], b[0][key], err_msg=f"{where} {key}")
    if len(a) == 5:
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-9, err_msg=where)
        np.testing.assert_array_equal(a[2], b[2], err_msg=where)
        np.testing.assert_array_equal(a[3], b[3], err_msg=where)
    info_a, info_b = a[-1], b[-1]
    assert set(info_a) == set(info_b), where
    for key, value in info_b.items():
        if isinstance(value, dict):
            continue
        mask = value if key.startswith("_") else info_b[f"_{key}"]
        got = info_a[key] if key.startswith("_") else info_a[key][mask]
        np.testing.assert_array_equal(
            got, value if key.startswith("_") else value[mask], err_msg=f"{where} {key}"
        )


def run_together(a, b, steps, seed=0, options=None, action_seed=1):
    assert_same_step(a.reset(seed=seed, options=options), b.reset(seed=seed, options=options), "reset")
    rng = np.random.default_rng(action_seed)
    for i in range(steps):
        actions = rng.integers(0, 256, size=(a.num_envs, 56))
        assert_same_step(a.step(actions), b.step(actions), f"step {i}")


@pytest.mark.parametrize("which", ["plain", "features"])
def test_equals_n_separate_listener_envs_through_autoresets(data_path, feature_path, which):
    path = data_path if which == "plain" else feature_path
    envs, reference = vector(path), sync(path)  # SyncVectorEnv: 3 separate ListenerEnvs, env i seeded seed+i
    assert envs.single_observation_space == reference.single_observation_space
    assert (
        envs.observation_space == reference.observation_space and envs.action_space == reference.action_space
    )
    run_together(envs, reference, 70)  # clips of 12-20 frames: several autoresets per env


@pytest.mark.parametrize("reward", ["affect", "callable"])
def test_per_env_rewards_equal_the_single_env(feature_path, reward):
    spec = (
        (lambda clip, frame, listener_frame: float(listener_frame[0] - frame))
        if reward == "callable"
        else reward
    )
    run_together(vector(feature_path, reward=spec), sync(feature_path, reward=spec), 40)


def test_pinned_clips_replay_like_listener_env(data_path):
    envs = vector(data_path, num_envs=2)
    clip_ids = envs.template.clip_ids[2:4]
    obs, infos = envs.reset(seed=5, options={"clip_id": clip_ids})
    assert infos["clip_id"].tolist() == clip_ids
    singles = [ListenerEnv(data_path, context_frames=K) for _ in clip_ids]
    for i, env in enumerate(singles):
        assert_same_obs(obs, i, env.reset(options={"clip_id": clip_ids[i]})[0])
    done = [False, False]
    for t in range(25):
        actions = np.full((2, 56), (7 * t) % 256)
        obs, rewards, terminated, _, _ = envs.step(actions)
        for i, env in enumerate(singles):
            if not done[i]:
                o, r, done[i], _, _ = env.step(actions[i])
                assert_same_obs(obs, i, o)
                assert rewards[i] == pytest.approx(r, rel=1e-6) and terminated[i] == done[i]
    assert all(done)


def assert_same_obs(batch, i, single):
    for key, value in single.items():
        if key == "words":
            assert batch[key][i] == value
        else:
            np.testing.assert_array_equal(batch[key][i], value, err_msg=key)


def test_seeded_reset_is_reproducible(data_path):
    envs = vector(data_path, num_envs=4)
    first = envs.reset(seed=3)[1]["clip_id"].tolist()
    assert envs.reset(seed=3)[1]["clip_id"].tolist() == first
    run_together(vector(data_path, num_envs=4), envs, 45, seed=3)  # same seed, same trajectory and redraws
    draws = {tuple(envs.reset(seed=s)[1]["clip_id"].tolist()) for s in range(5)}
    assert len(draws) > 1


def test_next_step_autoreset(data_path):
    envs = vector(data_path, num_envs=2)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    _, infos = envs.reset(seed=0)
    n = infos["num_frames"]
    actions = np.full((2, 56), 9)
    for _ in range(int(n[0])):
        obs, rewards, terminated, truncated, infos = envs.step(actions)
    assert terminated[0] and not truncated.any() and obs["step"][0, 0] == n[0] and obs["mask"][0, -1] == 0
    obs, rewards, terminated, truncated, infos = envs.step(actions)  # env 0's action is ignored
    assert rewards[0] == 0.0 and not terminated[0] and obs["step"][0, 0] == 0
    assert not obs["listener_motion"][0].any() and obs["mask"][0].tolist() == [0] * (K - 1) + [1]
    assert infos["_num_frames"][0] and not infos["_decoded_action"][0] and infos["frame"][0] == 0
    if n[1] > n[0]:  # env 1 is still in its first episode
        assert infos["_decoded_action"][1] and infos["frame"][1] == n[0]


def test_make_vec(data_path):
    for mode in (None, "vector_entry_point"):
        envs = gym.make_vec(LISTENER_ENV_ID, num_envs=5, vectorization_mode=mode, dataset=data_path)
        assert isinstance(envs, ListenerVectorEnv) and envs.num_envs == 5
        assert envs.observation_space == batch_space(envs.single_observation_space, 5)
        obs, _ = envs.reset(seed=0)
        assert obs["speaker_motion"].shape == (5, 32, 56) and len(obs["words"]) == 5
        envs.close()


def test_workers_equal_one_process(feature_path):
    envs = gym.make_vec(LISTENER_ENV_ID, num_envs=5, dataset=feature_path, context_frames=K, workers=2)
    try:
        assert isinstance(envs, ShardedListenerVectorEnv) and envs.shards == [(0, 3), (3, 5)]
        run_together(envs, vector(feature_path, num_envs=5), 50, seed=7)
        pinned = {"clip_index": [0, None, 1, 2, None]}
        run_together(envs, vector(feature_path, num_envs=5), 5, seed=1, options=pinned)
        with pytest.raises(ValueError, match="out of range"):
            envs.step(np.full((5, 56), 256))
        processes = envs._processes
    finally:
        envs.close()
    assert not any(p.is_alive() for p in processes)


def test_worker_failures_name_the_worker(data_path):
    envs = ShardedListenerVectorEnv(data_path, num_envs=2, workers=2, reward="oracle")  # needs synthetic data
    try:
        with pytest.raises(WorkerError, match=r"worker 0 \(envs 0\.\.0\) raised .*oracle"):
            envs.reset(seed=0)
        envs._processes[1].kill()
        envs._processes[1].join()
        with pytest.raises(WorkerError, match=r"worker 1 \(envs 1\.\.1\) died during reset"):
            envs.reset(seed=0)
    finally:
        envs.close()


def test_bad_arguments(data_path):
    with pytest.raises(ValueError, match=r"chunk_size.*vectorization_mode='sync'"):
        vector(data_path, chunk_size=2)
    with pytest.raises(ValueError, match="render_mode"):
        vector(data_path, render_mode="rgb_array")
    with pytest.raises(ValueError, match="num_envs"):
        vector(data_path, num_envs=0)
    with pytest.raises(ValueError, match="workers"):
        ShardedListenerVectorEnv(data_path, num_envs=2, workers=3)
    with pytest.raises(TypeError, match="words_window"):
        vector(data_path, words_window=2.0)
    with pytest.raises(WorkerError, match="pickle"):
        ShardedListenerVectorEnv(data_path, num_envs=2, workers=2, reward=lambda clip, frame, x: 0.0)
    envs = vector(data_path, num_envs=2)
    with pytest.raises(ResetNeeded):
        envs.step(np.zeros((2, 56), np.int64))
    with pytest.raises(ValueError, match="unknown keys"):
        envs.reset(options={"clip": [0, 1]})
    with pytest.raises(ValueError, match="sequence of 2"):
        envs.reset(options={"clip_id": "train-000"})
    with pytest.raises(ValueError, match="no clip"):
        envs.reset(options={"clip_id": ["nope", None]})
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 56\)"):
        envs.step(np.zeros((3, 56), np.int64))
