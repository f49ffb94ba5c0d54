"""The env in RL libraries: split-independent spaces, live async words, time limits and same-step autoreset on
the batched env, the SB3 adapter (a PPO saved on train loads on test), non-finite rewards, unguarded scripts."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import dyadic_env  # noqa: F401  (registers the env)
from dyadic_env.envs import LISTENER_ENV_ID, ListenerEnv
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.envs.vector import ListenerVectorEnv


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    # Clips of different lengths per split: the spaces must not notice.
    path = write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", frames=(60, 80))
    return str(path)


def test_observation_space_is_the_same_on_every_split(data_path):
    spaces = [ListenerEnv(data_path, split).observation_space for split in ("train", "val", "test")]
    assert spaces[0] == spaces[1] == spaces[2]
    lengths = {split: ListenerEnv(data_path, split).clips.lengths.max() for split in ("train", "val", "test")}
    assert len(set(lengths.values())) > 1, "the fixture should have splits of different longest clips"
    env = ListenerEnv(data_path, "test", context_frames=4)
    obs, _ = env.reset(seed=0)
    n = env.clip.num_frames
    for _ in range(n):
        assert obs["phase"][0] == np.float32(env.frame_index / n)
        obs, *_ = env.step(env.action_space.sample())
    assert obs["phase"][0] == 1.0 and env.observation_space.contains(obs)


def test_a_clip_longer_than_the_step_bound_is_refused(data_path, monkeypatch):
    monkeypatch.setattr("dyadic_env.envs.spaces.MAX_CLIP_FRAMES", 50)
    with pytest.raises(ValueError, match="longer than the env's fixed step bound MAX_CLIP_FRAMES = 50"):
        ListenerEnv(data_path, "train")


def words_trace(mode, path, steps=60):
    envs = gym.make_vec(
        LISTENER_ENV_ID,
        num_envs=2,
        vectorization_mode=mode,
        dataset=path,
        words_window_s=30.0,
        context_frames=4,
    )
    try:
        envs.action_space.seed(0)
        obs, _ = envs.reset(seed=0)
        trace = [tuple(obs["words"])]
        for _ in range(steps):
            obs, *_ = envs.step(envs.action_space.sample())
            trace.append(tuple(obs["words"]))
        return trace
    finally:
        envs.close()


def test_async_words_follow_the_episode_as_sync_words_do(data_path):
    sync, asynchronous = words_trace("sync", data_path), words_trace("async", data_path)
    assert len(set(sync)) > 2, "the words should change during the run"
    assert asynchronous == sync


@pytest.mark.parametrize("workers", [1, 2])
def test_batched_env_takes_a_time_limit(data_path, workers):
    envs = gym.make_vec(
        LISTENER_ENV_ID, num_envs=3, dataset=data_path, context_frames=4, max_episode_steps=7, workers=workers
    )
    try:
        envs.reset(seed=0)
        actions = np.zeros((3, 56), np.int64)
        for _ in range(6):
            _, _, terminated, truncated, _ = envs.step(actions)
            assert not truncated.any() and not terminated.any()
        obs, _, terminated, truncated, _ = envs.step(actions)
        assert truncated.all() and not terminated.any() and (obs["step"][:, 0] == 7).all()
        obs, rewards, _, truncated, infos = envs.step(actions)  # next-step autoreset: new clips
        assert (obs["step"][:, 0] == 0).all() and not truncated.any() and (rewards == 0).all()
        assert infos["_num_frames"].all()
    finally:
        envs.close()
    with pytest.raises(ValueError, match="max_episode_steps: expected a positive integer or None"):
        ListenerVectorEnv(data_path, num_envs=2, max_episode_steps=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_same_step_autoreset_matches_next_step(data_path, workers):
    """The same-step env returns, in the step that ends a clip, what the next-step env returns one step later."""
    kwargs = {
        "num_envs": 2,
        "dataset": data_path,
        "context_frames": 4,
        "max_episode_steps": 9,
        "workers": workers,
    }
    nxt = gym.make_vec(LISTENER_ENV_ID, **kwargs)
    same = gym.make_vec(LISTENER_ENV_ID, autoreset_mode="same_step", **kwargs)
    try:
        a_obs, _ = nxt.reset(seed=3)
        b_obs, _ = same.reset(seed=3)
        actions = np.full((2, 56), 5, np.int64)
        for _ in range(9):
            a_obs, _, _, a_trunc, _ = nxt.step(actions)
            b_obs, _, _, b_trunc, b_info = same.step(actions)
        assert a_trunc.all() and b_trunc.all()
        for key in ("speaker_motion", "listener_motion", "step", "phase"):
            np.testing.assert_array_equal(b_info["final_obs"][key], a_obs[key])
        assert tuple(b_info["final_obs"]["words"]) == tuple(a_obs["words"])
        a_obs, *_, a_info = nxt.step(actions)  # the next-step env restarts now
        for key in ("speaker_motion", "listener_motion", "step", "mask"):
            np.testing.assert_array_equal(b_obs[key], a_obs[key])
        assert list(b_info["clip_id"]) == list(a_info["clip_id"]) and b_info["_final_info"].all()
    finally:
        nxt.close()
        same.close()


def test_non_finite_rewards_are_errors_naming_the_clip(data_path):
    def broken(clip, t, frame):
        return float("nan") if t == 3 else 0.0

    env = ListenerEnv(data_path, "train", reward=broken)
    env.reset(seed=0, options={"clip_index": 1})
    for _ in range(3):
        env.step(env.action_space.sample())
    with pytest.raises(ValueError, match=rf"returned nan at frame 3 of clip '{env.clip_ids[1]}'"):
        env.step(env.action_space.sample())
    envs = ListenerVectorEnv(data_path, num_envs=2, reward=broken)
    envs.reset(seed=0, options={"clip_index": [1, 2]})
    for _ in range(3):
        envs.step(np.zeros((2, 56), np.int64))
    with pytest.raises(ValueError, match=rf"frame 3 of clip '{envs.template.clip_ids[1]}'"):
        envs.step(np.zeros((2, 56), np.int64))


def test_sb3_ppo_saved_on_train_loads_and_trains_on_test(data_path, tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from dyadic_env.envs.sb3 import make_sb3_env

    common = {"num_envs": 4, "context_frames": 4, "max_episode_steps": 30}
    for actions in ("continuous", "tokens"):
        train = VecMonitor(make_sb3_env(data_path, "train", actions=actions, **common))
        model = PPO("MultiInputPolicy", train, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu",
                    policy_kwargs={"net_arch": [32]})  # fmt: skip
        model.learn(64)
        model.save(tmp_path / f"ppo_{actions}.zip")
        train.close()
        test = make_sb3_env(data_path, "test", actions=actions, **common)
        loaded = PPO.load(tmp_path / f"ppo_{actions}.zip", env=test, device="cpu")
        loaded.learn(64)  # steps the test split with the train split's spaces
        obs = test.reset()
        action, _ = loaded.predict(obs, deterministic=True)
        assert test.action_space.contains(action[0]) and set(obs) == set(test.observation_space.spaces)
        test.close()


def test_sb3_adapter_reports_episode_ends(data_path):
    from dyadic_env.envs.sb3 import make_sb3_env

    env = make_sb3_env(data_path, "train", num_envs=2, context_frames=4, max_episode_steps=70, words="ids")
    env.seed(0)
    obs = env.reset()
    assert obs["words"].shape == (2, 16) and "step" not in obs
    ended = []
    for _ in range(80):
        obs, rewards, dones, infos = env.step(np.zeros((2, 56), np.int64))
        ended += [info for info, done in zip(infos, dones) if done]
        assert rewards.dtype == np.float32 and (obs["phase"][dones] == 0).all()
    env.close()
    assert ended and all("terminal_observation" in info and info["clip_id"] for info in ended)
    for info in ended:
        terminal = info["terminal_observation"]
        assert info["TimeLimit.truncated"] == (terminal["phase"][0] < 1.0)
    with pytest.raises(ValueError, match="autoreset_mode='same_step'"):
        from dyadic_env.envs.sb3 import ListenerSB3VecEnv

        ListenerSB3VecEnv(ListenerVectorEnv(data_path, num_envs=2))


def test_workers_in_an_unguarded_script_get_a_clear_error(data_path, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(f"""
        import gymnasium as gym
        import dyadic_env
        envs = gym.make_vec("dyadic_env/Listener-v0", num_envs=2, workers=2, dataset={data_path!r})
        envs.close()
        """)
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert run.returncode != 0
    assert 'without an `if __name__ == "__main__":` guard' in run.stderr
    assert "WorkerError" in run.stderr and "unguarded.py" in run.stderr


def test_ppo_on_single_envs_saved_on_train_loads_on_test(data_path, tmp_path):
    """The issue's case: SB3 over Gymnasium envs (words as ids), PPO.load(path, env=test_env)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from dyadic_env.wrappers import ContinuousActions, WordsToTokenIds

    def make(split):
        env = gym.make(LISTENER_ENV_ID, dataset=data_path, split=split, context_frames=4)
        return DummyVecEnv([lambda: ContinuousActions(WordsToTokenIds(env, max_words=4), normalized=True)])

    model = PPO(
        "MultiInputPolicy", make("train"), n_steps=32, batch_size=32, n_epochs=1, device="cpu", seed=0
    )
    model.learn(32)
    model.save(tmp_path / "ppo.zip")
    loaded = PPO.load(tmp_path / "ppo.zip", env=make("test"), device="cpu")
    loaded.learn(32)
    assert loaded.observation_space == model.observation_space
