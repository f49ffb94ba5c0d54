import gymnasium as gym
import numpy as np
import pytest
import torch

import dyadic_env  # noqa: F401  (registers the env)
from agents import Agent
from agents.rollout import rollout
from agents.vla import VLAAgent
from agents.vla.agent import resolve_checkpoint
from agents.vla.decoding import Sampler
from agents.vla.text import new_words


def _save(dataset, make_tiny_model, tmp_path_factory, kind):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vla") / kind
    if kind == "velocity":  # the cached agent must remember the frame before the previous one
        model = make_tiny_model(dataset, head_velocity=4)
        with torch.no_grad():
            model.vla.action_head.step_embed.weight.normal_(0.0, 1.0)
    else:
        model = make_tiny_model(dataset, decoding=kind)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(dataset, make_tiny_model, tmp_path_factory):
    return _save(dataset, make_tiny_model, tmp_path_factory, "parallel")


@pytest.fixture(scope="module", params=["parallel", "autoregressive", "velocity"])
def any_checkpoint(request, dataset, make_tiny_model, tmp_path_factory):
    """Both decodings and a head with velocity; autoregressive closed loops are slow (56 passes a frame), so only short episodes use it."""
    return _save(dataset, make_tiny_model, tmp_path_factory, request.param)


@pytest.fixture
def env(random_dataset):
    env = gym.make("dyadic_env/Listener-v0", dataset=str(random_dataset), split="train", context_frames=8)
    yield env
    env.close()


def test_agent_acts_in_the_env_and_its_log_probs_match_the_trajectory(any_checkpoint, env):
    agent = VLAAgent.from_pretrained(any_checkpoint, seed=0)
    assert isinstance(agent, Agent)
    observation, _ = env.reset(seed=3, options={"clip_index": 1})
    agent.reset(seed=3)
    steps = []
    for _ in range(6):
        tokens = agent.act(observation)
        assert tokens.shape == (56,) and tokens.dtype == np.int64 and env.action_space.contains(tokens)
        steps.append(agent.last_log_prob)
        observation, *_ = env.step(tokens)
    placed, _ = env.unwrapped.listener_trajectory()
    clip = env.unwrapped.clip
    full = np.zeros((clip.num_frames, 56), np.int64)
    full[: len(placed)] = placed
    log_probs = agent.log_probs(clip, full)[: len(placed)]
    np.testing.assert_allclose(log_probs, steps, rtol=1e-4, atol=1e-2)
    assert agent.trajectory_log_prob(clip, full) == pytest.approx(
        float(agent.log_probs(clip, full).sum()), rel=1e-5
    )


def test_rollouts_are_seeded_and_greedy_is_deterministic(checkpoint, env):
    first = rollout(env, VLAAgent.from_pretrained(checkpoint, seed=0), clip_id="c1", seed=5)
    again = rollout(env, VLAAgent.from_pretrained(checkpoint, seed=0), clip_id="c1", seed=5)
    other = rollout(env, VLAAgent.from_pretrained(checkpoint, seed=0), clip_id="c1", seed=6)
    assert np.array_equal(first.tokens, again.tokens) and not np.array_equal(first.tokens, other.tokens)
    greedy = [
        rollout(env, VLAAgent.from_pretrained(checkpoint, greedy=True), clip_id="c1", seed=s).tokens
        for s in (1, 2)
    ]
    assert np.array_equal(*greedy) and first.tokens.shape == (env.unwrapped.clip.num_frames, 56)


def test_window_policy_runs_without_the_cache(checkpoint, env):
    agent = VLAAgent.from_pretrained(checkpoint, greedy=True, use_cache=False)
    trajectory = rollout(env, agent, clip_id="c0", seed=0)
    assert trajectory.tokens.shape[0] == env.unwrapped.clip.num_frames


def test_act_refuses_an_observation_from_another_point_of_the_episode(any_checkpoint, env):
    agent = VLAAgent.from_pretrained(any_checkpoint)
    observation, _ = env.reset(seed=0)
    agent.act(observation)
    with pytest.raises(ValueError, match=r"call agent.reset\(\) at the start of every episode"):
        agent.act({**observation, "step": np.array([7])})


def test_resolve_checkpoint_accepts_run_directories(checkpoint, tmp_path):
    assert resolve_checkpoint(checkpoint) == checkpoint
    with pytest.raises(FileNotFoundError, match="not a VLA checkpoint"):
        resolve_checkpoint(tmp_path)


def test_new_words_of_a_sliding_window():
    assert new_words(["a", "b"], ["b", "c"]) == ["c"]
    assert new_words(["a", "b"], ["a", "b", "c", "d"]) == ["c", "d"]
    assert new_words(["a"], ["x", "y"]) == ["x", "y"]
    assert new_words([], ["yes"]) == ["yes"] and new_words(["yes"], ["yes"]) == []


def test_eval_command_evaluates_a_checkpoint(checkpoint, random_dataset, tmp_path, capsys):
    from experiments.cli import main

    code = main(["eval", "--policy", str(checkpoint), "--agent", "random", "--dataset", str(random_dataset),
                 "--split", "test", "--run-dir", str(tmp_path / "eval")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "| vla |" in out and "| random |" in out


def test_decoding_defaults_come_from_the_checkpoint(dataset, make_tiny_model, tmp_path):
    model = make_tiny_model(dataset)
    model.config.decode_mode, model.config.decode_temperature = "sample", 0.8
    model.save_pretrained(tmp_path)
    agent = VLAAgent.from_pretrained(tmp_path)
    assert agent.sampler.mode == "sample" and agent.sampler.temperature == 0.8
    assert VLAAgent.from_pretrained(tmp_path, mode="mean").sampler.mode == "mean"
    assert VLAAgent.from_pretrained(tmp_path, greedy=True).sampler.mode == "greedy"


def test_a_context_window_evicts_the_oldest_frames_from_the_cache(checkpoint, env):
    agent = VLAAgent.from_pretrained(checkpoint, greedy=True, max_context_frames=3)
    observation, _ = env.reset(seed=0, options={"clip_index": 0})
    agent.reset()
    for _ in range(6):
        observation, *_ = env.step(agent.act(observation))
    state = agent._state
    assert len(state.frame_tokens) == 3
    kept = sum(state.frame_tokens)
    assert state.past_key_values.get_seq_length() == kept == state.attention_mask.shape[1]
    assert int(state.positions[0]) > kept  # positions keep counting: the kept keys stay where they were


def test_mean_expression_takes_the_expected_expression_and_samples_the_pose(any_checkpoint, env):
    observation, _ = env.reset(seed=0, options={"clip_index": 1})

    agent = VLAAgent.from_pretrained(any_checkpoint)

    def first_action(mode, seed):
        agent.sampler.mode = mode
        agent.reset(seed=seed)
        return agent.act(observation)

    mean, sampled = first_action("mean", 0), first_action("sample", 0)
    mixed = [first_action("mean_expression", seed) for seed in (0, 1)]
    assert all(np.array_equal(m[:50], mean[:50]) for m in mixed)
    assert not np.array_equal(mixed[0][50:], mixed[1][50:])
    if not agent.model.vla.autoregressive:  # the same draws: the same pose
        assert np.array_equal(mixed[0][50:], sampled[50:])


def test_sampler_knows_which_dimensions_it_draws():
    logits = torch.randn(3, 4, 16)
    mean = Sampler(mode="mean")(logits)

    def draw(mode, dims=None):
        return Sampler(mode=mode, expression_dim=2, generator=torch.Generator().manual_seed(0))(logits, dims)

    assert torch.equal(draw("mean_expression")[:, :2], mean[:, :2])
    assert torch.equal(draw("mean_expression")[:, 2:], draw("sample")[:, 2:])
    assert torch.equal(draw("mean_expression", dims=[0, 1, 0, 1]), mean)  # all four are expression dims
    assert torch.equal(draw("mean_expression", dims=[2, 3, 4, 5]), draw("sample"))
    with pytest.raises(ValueError, match="mean_expression"):
        Sampler(mode="expected")
