"""The listener env's contract: spaces, closed loop, determinism, misuse errors, checkers, speed."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

import dyadic_env  # noqa: F401  (registers the env)
from dyadic_env.data import load_dataset
from dyadic_env.envs import LISTENER_ENV_ID, ListenerEnv
from dyadic_env.envs.listener import normalize_word
from dyadic_env.envs.testing import write_random_walk_dataset

K = 8


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d")


@pytest.fixture(scope="module")
def feature_path(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rwf") / "d", feature_dim=5, affect=True)


def make(path, **kwargs):
    return gym.make(LISTENER_ENV_ID, dataset=str(path), **{"context_frames": K, **kwargs})


def run_episode(env, actions=None, seed=0, options=None):
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards, infos = [obs], [], [info]
    done = False
    while not done:
        action = env.action_space.sample() if actions is None else actions
        obs, reward, terminated, truncated, info = env.step(action)
        assert not truncated
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        done = terminated
    return observations, rewards, infos


DYADIC_ENV_IDS = [env_id for env_id in gym.registry if env_id.startswith("dyadic_env/")]


@pytest.mark.parametrize("env_id", DYADIC_ENV_IDS)
def test_registered_envs_pass_gymnasium_check_env(data_path, feature_path, env_id):
    for path in (data_path, feature_path):
        env = gym.make(env_id, dataset=str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # infinite Box bounds are deliberate (frame values are unbounded)
            check_env(env.unwrapped, skip_render_check=True)


def test_spaces(feature_path):
    env = make(feature_path, split="test")
    space = env.observation_space
    assert env.action_space == gym.spaces.MultiDiscrete(np.full(56, 256))
    assert space["speaker_motion"].shape == (K, 56) and space["speaker_features"].shape == (K, 5)
    assert space["mask"] == gym.spaces.MultiBinary(K)
    assert isinstance(space["words"], gym.spaces.Text)
    obs, info = env.reset(seed=0)
    assert obs["speaker_motion"].dtype == np.float32 and obs["mask"].dtype == np.int8
    assert obs["step"].dtype == np.int64 and obs["step"].shape == (1,)
    assert info["clip_id"] in env.unwrapped.clip_ids and info["frame"] == 0


def test_observation_replays_the_clip_in_closed_loop(data_path):
    env = make(data_path, words_window_s=1.0)
    base = env.unwrapped
    obs, info = env.reset(seed=3)
    clip = load_dataset(data_path).clip(info["clip_id"])
    tokens = np.random.default_rng(0).integers(0, 256, size=(clip.num_frames, 56))
    decoded = base.tokenizer.decode(tokens)
    for t in range(clip.num_frames):
        lo = max(0, t - K + 1)
        np.testing.assert_array_equal(
            obs["speaker_motion"][K - (t - lo + 1) :], clip.speaker_motion[lo : t + 1]
        )
        assert not obs["speaker_motion"][: K - (t - lo + 1)].any()
        np.testing.assert_array_equal(obs["mask"], (np.arange(t - K + 1, t + 1) >= 0).astype(np.int8))
        # The listener history is the agent's own decoded actions of frames t-K..t-1, never the ground truth.
        past = decoded[max(0, t - K) : t]
        np.testing.assert_allclose(obs["listener_motion"][K - len(past) :], past)
        assert not obs["listener_motion"][: K - len(past)].any()
        heard = [normalize_word(w.text) for w in sorted(clip.words_until(t, 1.0), key=lambda w: w.end)]
        assert obs["words"] == " ".join(heard)
        assert obs["step"][0] == t
        obs, reward, terminated, _, info = env.step(tokens[t])
        np.testing.assert_array_equal(info["gt_listener_frame"], clip.listener_motion[t])
        np.testing.assert_array_equal(info["decoded_action"], decoded[t])
        assert info["frame"] == t and info["clip_id"] == clip.clip_id
        assert reward == pytest.approx(-np.mean((decoded[t] - clip.listener_motion[t]) ** 2), rel=1e-5)
        assert terminated == (t == clip.num_frames - 1)
    assert obs["step"][0] == clip.num_frames and obs["mask"][-1] == 0
    got_tokens, got_frames = base.listener_trajectory()
    np.testing.assert_array_equal(got_tokens, tokens)
    np.testing.assert_array_equal(got_frames, decoded)


def test_ground_truth_never_in_observation(data_path):
    env = make(data_path)
    observations, _, infos = run_episode(env, actions=np.zeros(56, dtype=np.int64))
    gt = np.stack([info["gt_listener_frame"] for info in infos[1:]])
    for obs in observations:
        for key in ("speaker_motion", "listener_motion"):
            for row in obs[key]:
                assert not (np.isclose(row, gt).all(axis=1) & row.any()).any()


def test_seeded_rollouts_identical_and_seeds_differ(data_path):
    def trace(seed):
        env = make(data_path)
        env.action_space.seed(seed)
        episodes = [run_episode(env, seed=seed if i == 0 else None) for i in range(3)]
        return [info["clip_id"] for _, _, infos in episodes for info in infos[:1]], episodes

    ids_a, ep_a = trace(7)
    ids_b, ep_b = trace(7)
    assert ids_a == ids_b
    for (obs_a, rew_a, _), (obs_b, rew_b, _) in zip(ep_a, ep_b):
        assert rew_a == rew_b
        for oa, ob in zip(obs_a, obs_b):
            assert all(np.array_equal(oa[k], ob[k]) for k in oa)
    first_clips = {make(data_path).reset(seed=s)[1]["clip_id"] for s in range(12)}
    assert len(first_clips) > 1


def test_reset_options_pin_a_clip(data_path):
    env = make(data_path, split="val")
    ids = env.unwrapped.clip_ids
    assert env.reset(options={"clip_id": ids[1]})[1]["clip_id"] == ids[1]
    assert env.reset(options={"clip_index": 0})[1]["clip_id"] == ids[0]
    with pytest.raises(ValueError, match="no clip 'nope' in split 'val'"):
        env.reset(options={"clip_id": "nope"})
    with pytest.raises(ValueError, match=r"clip_index must be in \[0, 1\]"):
        env.reset(options={"clip_index": 5})
    with pytest.raises(ValueError, match="unknown keys \\['clip'\\]"):
        env.reset(options={"clip": "x"})


def test_misuse_errors(data_path):
    env = ListenerEnv(str(data_path), context_frames=K)
    good = np.zeros(56, dtype=np.int64)
    with pytest.raises(ResetNeeded, match="before reset"):
        env.step(good)
    env.reset(seed=0, options={"clip_index": 0})
    with pytest.raises(ValueError, match=r"expected tokens of shape \(56,\), found \(55,\)"):
        env.step(np.zeros(55, dtype=np.int64))
    with pytest.raises(TypeError, match="ContinuousActions"):
        env.step(np.zeros(56, dtype=np.float32))
    for bad in (256, -1):
        action = good.copy()
        action[3] = bad
        with pytest.raises(ValueError, match=rf"token {bad} out of range; tokens must be in \[0, 255\]"):
            env.step(action)
    with pytest.raises(ValueError, match="out of range"):
        env.step(np.full(56, 300, dtype=np.int32))
    env.step(np.zeros(56, dtype=np.uint8))  # any integer dtype in range is fine
    while env.frame_index < env.clip.num_frames:
        env.step(good)
    with pytest.raises(ResetNeeded, match=r"after the episode of clip .* ended"):
        env.step(good)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "nope"}, "no split 'nope'"),
        ({"context_frames": 0}, "context_frames: expected a positive integer"),
        ({"chunk_size": 2.5}, "chunk_size: expected a positive integer"),
        ({"words_window_s": 0}, "words_window_s: expected a positive number"),
        ({"render_mode": "human"}, "render_mode: expected one of"),
        ({"reward": "nope"}, "reward: expected one of"),
    ],
)
def test_constructor_errors(data_path, kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        ListenerEnv(str(data_path), **kwargs)


def test_chunks(data_path):
    k = 4
    env = make(data_path, chunk_size=k)
    assert env.action_space.shape == (k, 56)
    obs, info = env.reset(seed=0)
    n = info["num_frames"]
    steps = 0
    done = False
    while not done:
        frame = obs["step"][0]
        obs, _, done, _, info = env.step(env.action_space.sample())
        steps += 1
        assert info["frame"] == frame and info["gt_listener_frame"].shape == (k, 56)
        assert info["frames_placed"] == min(k, n - frame)
    assert steps == -(-n // k) and obs["step"][0] == n
    assert env.unwrapped.listener_trajectory()[0].shape == (n, 56)
    with pytest.raises(ValueError, match=r"shape \(4, 56\).*chunk_size"):
        env.reset()
        env.step(np.zeros(56, dtype=np.int64))


def test_features_observed_when_present(feature_path):
    env = make(feature_path)
    obs, info = env.reset(seed=1)
    clip = load_dataset(feature_path).clip(info["clip_id"])
    np.testing.assert_array_equal(obs["speaker_features"][-1], clip.speaker_features[0])
    assert not obs["speaker_features"][:-1].any()


def test_tokenizer_fitted_with_warning_when_dataset_has_none(tmp_path):
    path = write_random_walk_dataset(tmp_path / "d", with_tokenizer=False)
    (path / "tokenizer.json").unlink(missing_ok=True)
    with pytest.warns(UserWarning, match="no tokenizer.json; fitting one"):
        env = ListenerEnv(str(path))
    assert env.tokenizer.dim == 56


def test_render_without_mode_warns_and_missing_renderer_is_explained(data_path):
    env = ListenerEnv(str(data_path))
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="without a render_mode"):
        assert env.render() is None
    try:
        import dyadic_env.render  # noqa: F401
    except ImportError:
        env = ListenerEnv(str(data_path), render_mode="rgb_array")
        env.reset(seed=0)
        with pytest.raises(gym.error.DependencyNotInstalled, match="render"):
            env.render()


@pytest.mark.render
@pytest.mark.slow
def test_check_env_with_render_on_synthetic_data():
    pytest.importorskip("dyadic_env.render")
    env = gym.make(LISTENER_ENV_ID, dataset="synthetic:tiny", render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped)
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (256, 512, 3) and image.std() > 10  # two faces side by side, not a blank frame


@pytest.mark.render
def test_render_rgb_array(tmp_path):
    pytest.importorskip("dyadic_env.render")
    path = write_random_walk_dataset(tmp_path / "d", expression_basis="ict-arkit", splits={"train": 2})
    env = ListenerEnv(str(path), render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.zeros(56, dtype=np.int64))
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[1] == 2 * image.shape[0]
    env.close()


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, dyadic_env; print(sorted(m for m in ('torch', 'pyrender', 'transformers', 'fastapi') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert LISTENER_ENV_ID in gym.registry


@pytest.mark.slow
def test_speed_against_cartpole(data_path):
    """The issue's target is >= 0.5 of CartPole-v1's steps/s (see `dyadic bench env`). Compared by CPU time,
    which other programs on a busy machine do not inflate; the bound is a little looser than the target so
    timer noise never fails it, while a slow step (a copy of the clip, a tokenizer call per step) does."""
    from experiments.bench.env import best_of, single_env_rate

    cartpole, listener = gym.make("CartPole-v1"), make(data_path)
    rates = best_of(
        3, {"c": lambda: single_env_rate(cartpole, 3000), "l": lambda: single_env_rate(listener, 3000)}
    )
    (_, cartpole_cpu), (_, listener_cpu) = rates["c"], rates["l"]
    assert listener_cpu / cartpole_cpu > 0.4, rates


def test_time_limit_truncates(data_path):
    env = make(data_path, max_episode_steps=5)
    env.reset(seed=0)
    for _ in range(4):
        assert not env.step(env.action_space.sample())[3]
    assert env.step(env.action_space.sample())[3]
