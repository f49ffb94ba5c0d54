"""Baseline agents and closed-loop rollouts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import dyadic_env  # noqa: F401
from agents import (
    Agent,
    LinearReadoutAgent,
    MeanAgent,
    MirrorAgent,
    NearestNeighborAgent,
    NeutralAgent,
    RandomAgent,
    Trajectory,
    agent_names,
    make_agent,
    rollout,
)
from dyadic_env.data import load_dataset
from dyadic_env.envs import LISTENER_ENV_ID
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.metrics import l2


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", splits={"train": 8, "test": 3})


@pytest.fixture(scope="module")
def dataset(data_path):
    return load_dataset(data_path)


def make_env(data_path, split="test", **kwargs):
    return gym.make(LISTENER_ENV_ID, dataset=str(data_path), split=split, **kwargs)


@pytest.mark.parametrize("chunk_size", [1, 3])
@pytest.mark.parametrize(
    "name",
    ["random", "random-train", "nn", "neutral", "mirror", "mean", "linear", "meanfr", "meanseq", "mime"],
)
def test_every_baseline_follows_the_protocol(data_path, dataset, name, chunk_size):
    agent = make_agent(name, dataset, seed=0, chunk_size=chunk_size)
    assert isinstance(agent, Agent)
    env = make_env(data_path, chunk_size=chunk_size)
    trajectory = rollout(env, agent, seed=0)
    n = dataset.clip(trajectory.clip_id).num_frames
    assert isinstance(trajectory, Trajectory)
    assert trajectory.tokens.shape == (n, 56) and trajectory.tokens.dtype == np.int64
    assert trajectory.frames.shape == (n, 56) and trajectory.frames.dtype == np.float32
    assert len(trajectory.rewards) == -(-n // chunk_size) == len(trajectory.infos) - 1
    assert trajectory.tokens.min() >= 0 and trajectory.tokens.max() < 256
    again = rollout(env, agent, clip_id=trajectory.clip_id, seed=0)
    np.testing.assert_array_equal(again.tokens, trajectory.tokens)  # seeded: identical


def test_registry(dataset):
    assert agent_names() == [
        "random", "random-train", "nn", "neutral", "mirror", "mean", "linear", "meanfr", "meanseq", "mime",
        "lm-listener", "mmlhg",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="agent: expected one of"):
        make_agent("oracle", dataset)


def test_random_agent_is_seeded():
    a, b = RandomAgent(seed=1), RandomAgent(seed=1)
    np.testing.assert_array_equal(a.act({}), b.act({}))
    a.reset(seed=5)
    b.reset(seed=6)
    assert not np.array_equal(a.act({}), b.act({}))
    assert RandomAgent(chunk_size=4).act({}).shape == (4, 56)


def test_floors(dataset):
    tokenizer = dataset.tokenizer()
    speaker = np.random.default_rng(0).uniform(0, 1, size=(8, 56)).astype(np.float32)
    np.testing.assert_array_equal(NeutralAgent(tokenizer).act({}), tokenizer.encode(np.zeros(56)))
    np.testing.assert_array_equal(
        MirrorAgent(tokenizer).act({"speaker_motion": speaker}), tokenizer.encode(speaker[-1])
    )
    chunk = MirrorAgent(tokenizer, chunk_size=2).act({"speaker_motion": speaker})
    np.testing.assert_array_equal(chunk, tokenizer.encode(speaker[[-1, -1]]))


def test_mean_agent_plays_the_training_listeners_mean_frame(data_path, dataset):
    train = np.concatenate([c.listener_motion for c in dataset.split("train")]).astype(np.float64)
    agent = make_agent("mean", dataset, chunk_size=2)
    np.testing.assert_allclose(agent.frame, train.mean(axis=0), atol=1e-9)
    tokens = rollout(make_env(data_path, chunk_size=2), agent, seed=0).tokens
    assert (tokens == dataset.tokenizer().encode(train.mean(axis=0))).all()  # whatever the speaker does
    with pytest.raises(KeyError, match="no split 'nope'"):
        MeanAgent(dataset, dataset.tokenizer(), split="nope")


def test_meanseq_plays_the_training_listeners_mean_sequence(data_path, dataset):
    train = list(dataset.split("train"))
    agent = make_agent("meanseq", dataset)
    longest = max(c.num_frames for c in train)
    at = {
        t: np.mean([c.listener_motion[t] for c in train if c.num_frames > t], axis=0)
        for t in (0, longest - 1)
    }
    np.testing.assert_allclose(agent.sequence[0], at[0], atol=1e-6)
    np.testing.assert_allclose(agent.sequence[-1], at[longest - 1], atol=1e-6)
    past_the_end = agent.act_frames({"step": np.array([longest + 5])})
    np.testing.assert_array_equal(past_the_end[0], agent.sequence[-1])
    tokens = rollout(make_env(data_path), agent, seed=0).tokens
    np.testing.assert_array_equal(tokens[0], dataset.tokenizer().encode(agent.sequence[0]))
    assert agent.deterministic and make_agent("mime", dataset).deterministic


def test_random_train_replays_training_listeners(data_path, dataset):
    agent = make_agent("random-train", dataset, seed=3)
    tokens = rollout(make_env(data_path), agent, seed=3).tokens
    train = np.concatenate([dataset.tokenizer().encode(c.listener_motion) for c in dataset.split("train")])
    # Every row it plays is a training listener frame, and consecutive rows mostly follow each other there.
    rows = [np.flatnonzero((train == t).all(axis=1)) for t in tokens]
    assert all(len(r) for r in rows)
    follows = np.mean([any(b - 1 in set(a) for b in rows[i + 1]) for i, a in enumerate(rows[:-1])])
    assert follows > 0.9


def test_nn_retrieves_its_own_training_context(data_path, dataset):
    """On a training clip, the nearest context of every frame is that frame itself: the agent then replays
    the ground-truth listener tokens exactly."""
    agent = NearestNeighborAgent(dataset, stride=1, hold_frames=1, blend_frames=0)
    env = make_env(data_path, split="train")
    for clip in list(dataset.split("train"))[:3]:
        trajectory = rollout(env, agent, clip_id=clip.clip_id)
        np.testing.assert_array_equal(trajectory.tokens, dataset.tokenizer().encode(clip.listener_motion))


def test_nn_beats_random_on_held_out_clips(data_path, dataset):
    """The random-walk listener follows its speaker, so the speaker context predicts the response."""
    env = make_env(data_path)
    errors = {}
    for name in ("nn", "random-train"):
        agent = make_agent(name, dataset, seed=0)
        errors[name] = np.mean([
            l2(rollout(env, agent, clip_id=cid, seed=0).frames, dataset.clip(cid).listener_motion)
            for cid in dataset.split("test").clip_ids
        ])  # fmt: skip
    assert errors["nn"] < errors["random-train"]


def test_nn_words_matter(data_path, dataset):
    speaker = np.zeros((32, 56), np.float32)
    for word in ("sad", "hello"):
        agent = NearestNeighborAgent(dataset, words_weight=20.0)
        i = agent.nearest({"speaker_motion": speaker, "words": word})
        bag = agent._matrix[i, 4 * 56 :]  # the candidate's words part
        assert bag[agent.features.vocabulary[word]] == bag.max() > 0
    blind = NearestNeighborAgent(dataset, words_weight=0.0)
    assert blind.nearest({"speaker_motion": speaker, "words": "sad"}) == blind.nearest(
        {"speaker_motion": speaker, "words": "hello"}
    )
    with pytest.raises(ValueError, match="context_frames >= 16"):
        blind.nearest({"speaker_motion": speaker[:4], "words": ""})


def test_nn_crossfades_between_segments(data_path, dataset):
    env = make_env(data_path)
    smooth = rollout(env, NearestNeighborAgent(dataset, hold_frames=10, blend_frames=5), seed=0).frames
    abrupt = rollout(env, NearestNeighborAgent(dataset, hold_frames=10, blend_frames=0), seed=0).frames
    jump = lambda frames: np.abs(np.diff(frames, axis=0)).max(axis=1)[9::10].mean()  # noqa: E731
    assert jump(smooth) < jump(abrupt)


def test_linear_readout_beats_the_mean_frame_on_held_out_clips(data_path, dataset):
    """The random-walk listener follows its speaker: a linear readout of the speaker context predicts it
    better than the constant frame of least squared error, which a huge ridge shrinks the readout back to."""
    env = make_env(data_path)

    def error(agent):
        return np.mean([
            l2(rollout(env, agent, clip_id=cid, seed=0).frames, dataset.clip(cid).listener_motion)
            for cid in dataset.split("test").clip_ids
        ])  # fmt: skip

    mean, linear = (
        error(make_agent("mean", dataset)),
        error(make_agent("linear", dataset, ridge=0.1, stride=1)),
    )
    assert linear < 0.75 * mean
    shrunk = LinearReadoutAgent(dataset, ridge=1e6, stride=1)
    np.testing.assert_allclose(shrunk.y_mean, make_agent("mean", dataset).frame, atol=1e-9)
    assert np.abs(shrunk.weights).max() < 1e-4
    with pytest.raises(ValueError, match="ridge must be > 0"):
        LinearReadoutAgent(dataset, ridge=0.0)
