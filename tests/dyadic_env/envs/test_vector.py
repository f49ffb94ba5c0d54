"""Gymnasium's vector envs over the listener env; workers open the memory-mapped data themselves."""

from __future__ import annotations

import os
import pickle

import gymnasium as gym
import numpy as np
import pytest

import dyadic_env  # noqa: F401
from dyadic_env.data import load_dataset
from dyadic_env.envs import LISTENER_ENV_ID
from dyadic_env.envs.testing import write_random_walk_dataset


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", frames=(20, 30))


def step_all(envs, steps, seed=0):
    envs.action_space.seed(seed)
    obs, infos = envs.reset(seed=seed)
    trace = [obs["speaker_motion"].copy()]
    for _ in range(steps):
        obs, _, _, _, infos = envs.step(envs.action_space.sample())
        trace.append(obs["speaker_motion"].copy())
    return np.stack(trace), obs, infos


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_env_steps_through_episode_ends(data_path, mode):
    envs = gym.make_vec(
        LISTENER_ENV_ID, num_envs=2, vectorization_mode=mode, dataset=str(data_path), context_frames=4
    )
    try:
        assert envs.observation_space["speaker_motion"].shape == (2, 4, 56)
        trace, obs, infos = step_all(envs, 70)  # clips have 20-30 frames: several autoresets per env
        assert trace.shape == (71, 2, 4, 56)
        assert obs["step"].shape == (2, 1) and len(obs["words"]) == 2
        assert infos["gt_listener_frame"].shape == (2, 56)
        again, _, _ = step_all(envs, 70)
        np.testing.assert_array_equal(trace, again)  # seeded: identical
    finally:
        envs.close()


def test_async_and_sync_agree(data_path):
    results = []
    for mode in ("sync", "async"):
        envs = gym.make_vec(LISTENER_ENV_ID, num_envs=2, vectorization_mode=mode, dataset=str(data_path))
        results.append(step_all(envs, 40)[0])
        envs.close()
    np.testing.assert_array_equal(*results)


def test_async_workers_memory_map_the_data(data_path):
    dataset = load_dataset(data_path)
    # A dataset object (not only a path) may be passed: it pickles as its path, never its arrays.
    assert len(pickle.dumps(dataset)) < 2_000
    envs = gym.make_vec(LISTENER_ENV_ID, num_envs=2, vectorization_mode="async", dataset=dataset)
    try:
        envs.reset(seed=0)
        reports = envs.call("storage_info")
    finally:
        envs.close()
    assert len({r["pid"] for r in reports}) == 2 and os.getpid() not in {r["pid"] for r in reports}
    for report in reports:
        assert report["dataset_path"] == str(dataset.path)
        assert report["memory_mapped"] == {"speaker_motion": True, "listener_motion": True}
