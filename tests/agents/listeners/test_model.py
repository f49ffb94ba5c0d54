"""LM-listener and MMLHG as models and agents: save/load, overfitting one clip, closed-loop decoding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import dyadic_env  # noqa: F401  (registers the env)
from agents.checkpoints import checkpoint_kind, load_checkpoint_agent
from agents.listeners.agent import CodeListenerAgent
from agents.listeners.data import ListenerBatches
from agents.listeners.modeling import CodeListenerModel
from agents.listeners.training import train_listener
from agents.rollout import rollout
from dyadic_env.data import load_dataset, write_dataset


def _env(data, split="test", **kwargs):
    return gym.make("dyadic_env/Listener-v0", dataset=data, split=split, **kwargs)


def test_save_and_load_give_identical_outputs(trained, walk_data, make_config, tmp_path):
    variant, final = trained
    model = CodeListenerModel.from_pretrained(final)
    model.save_pretrained(tmp_path / "again")
    again = CodeListenerModel.from_pretrained(tmp_path / "again")
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    config = make_config(variant, walk_data, tmp_path / "unused")
    clips = load_dataset(walk_data).split("test")
    batches = [ListenerBatches(clips, m, config) for m in (model, again)]
    for b in batches:
        b.encode()
    first, second = (m.slot_logits(b.eval_batches(2)[0]) for m, b in zip((model, again), batches))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    runs = [rollout(_env(walk_data), CodeListenerAgent(m, seed=3), seed=5).tokens for m in (model, again)]
    np.testing.assert_array_equal(*runs)
    # A run directory stands for its final/ policy.
    assert checkpoint_kind(final) == variant and checkpoint_kind(final.parent) == variant


def test_window_by_window_decoding_equals_decoding_the_whole_clip(trained, walk_data):
    _, final = trained
    agent = load_checkpoint_agent(final, seed=0)
    assert isinstance(agent, CodeListenerAgent) and agent.data_card["expression_basis"] == "flame"
    frame_by_frame = rollout(_env(walk_data), agent, seed=2)
    codes = torch.tensor(agent._codes)[None]
    with torch.no_grad():
        whole = agent.model.decode_codes(codes, agent.style)[0, : len(frame_by_frame.tokens)].numpy()
    np.testing.assert_array_equal(frame_by_frame.tokens, agent.tokenizer.encode(whole))
    chunked = CodeListenerAgent.from_pretrained(final, seed=0, chunk_size=8)
    unit_by_unit = rollout(_env(walk_data, chunk_size=8), chunked, seed=2)
    # The same draws, placed in chunks.
    np.testing.assert_array_equal(unit_by_unit.tokens, frame_by_frame.tokens)
    again = rollout(_env(walk_data), load_checkpoint_agent(final, seed=0), seed=2)
    np.testing.assert_array_equal(again.tokens, frame_by_frame.tokens)  # seeded
    other = rollout(_env(walk_data), load_checkpoint_agent(final, seed=0), seed=7)
    assert not np.array_equal(other.tokens, frame_by_frame.tokens)


@pytest.mark.parametrize("variant", ["lm-listener", "mmlhg"])
def test_each_model_overfits_one_clip(variant, make_config, tmp_path):
    """Trained on one clip without input noise, the greedy closed loop replays that clip's codes."""
    clip = load_dataset("synthetic:tiny").split("train")[0]
    data = write_dataset(
        tmp_path / "one", [("train", clip)], fps=clip.fps, expression_basis="ict-arkit", name="one"
    )
    config = make_config(
        variant, data, tmp_path / "run", val_split=None, save_every=0, eval_every=0,
        vq={"steps": 200, "batch_size": 8, "learning_rate": 0.003},
        lm={"steps": 120, "batch_size": 4, "crop_units": 16, "learning_rate": 0.003, "code_keep": 1.0,
            "speaker_keep": 1.0},
    )  # fmt: skip
    final = train_listener(config, progress=False)
    agent = CodeListenerAgent.from_pretrained(
        final, greedy=True, identity=clip.listener_id if variant == "mmlhg" else None
    )
    trajectory = rollout(_env(data, split="train"), agent, seed=0)
    model = agent.model
    np.testing.assert_array_equal(agent._codes, model.encode_frames(clip.listener_motion, clip.listener_id))
    target = np.asarray(clip.listener_motion)
    error = float(((trajectory.frames - target) ** 2).mean())
    # The clip's own motion: the clip's mean face would score 1.
    assert error < 0.5 * float(target.var(0).mean()), error


def test_agent_arguments_are_checked(trained, walk_data):
    variant, final = trained
    model = CodeListenerModel.from_pretrained(final)
    with pytest.raises(ValueError, match="divisor of the model's unit_frames"):
        CodeListenerAgent(model, chunk_size=3)
    with pytest.raises(ValueError, match="mode: expected 'sample' or 'greedy'"):
        CodeListenerAgent(model, mode="mean")
    agent = CodeListenerAgent(model)
    short = _env(walk_data, context_frames=4)
    with pytest.raises(ValueError, match="context_frames >= "):
        rollout(short, agent, seed=0)
    if variant == "mmlhg":
        with pytest.raises(ValueError, match="identity: expected 'mean' or a training listener"):
            CodeListenerAgent(model, identity="nobody")
    bare = CodeListenerModel(model.config)
    with pytest.raises(ValueError, match="has no tokenizers"):
        CodeListenerAgent(bare)


def test_a_checkpoint_of_another_network_is_refused(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    _, final = trained
    model = CodeListenerModel.from_pretrained(final)
    model.save_pretrained(tmp_path / "old")
    weights = load_file(tmp_path / "old" / "model.safetensors")
    weights["code_head.renamed"] = weights.pop("code_head.weight")
    save_file(weights, tmp_path / "old" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="do not fit this version"):
        CodeListenerModel.from_pretrained(tmp_path / "old")


def test_the_agent_sees_each_unit_as_training_does(trained, walk_data, make_config, tmp_path):
    """The words and speaker window of every unit in closed loop equal those training builds from the clip."""
    variant, final = trained
    agent = CodeListenerAgent.from_pretrained(final, seed=0)
    data = load_dataset(walk_data)
    clip = data.split("test")[0]
    rollout(_env(walk_data), agent, clip_id=clip.clip_id, seed=0)
    built = ListenerBatches([clip], agent.model, make_config(variant, walk_data, tmp_path / "unused")).clips[
        0
    ]
    assert [words for words, _ in agent._units] == built.words
    assert sum(len(w) for w in built.words) > 0  # the clip has words to place
    np.testing.assert_allclose(np.stack([s for _, s in agent._units]), built.speaker, rtol=0, atol=1e-5)


def test_mmlhg_encodes_a_listener_relative_to_their_own_levels(walk_data):
    """Identity normalisation: a listener's constant offset changes LM-listener's codes, not MMLHG's."""
    from agents.listeners.factory import model_for_dataset

    data = load_dataset(walk_data)
    frames = np.array(data.split("train")[0].listener_motion, np.float32)
    shifted = frames + 3 * np.asarray(data.split("train")[1].listener_motion, np.float32).std(0)
    tiny = {"backbone": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "num_key_value_heads": 2}, "vq_width": 16, "codebook_size": 8}  # fmt: skip
    mmlhg = model_for_dataset(data, "mmlhg", style_dim=4, **tiny).eval()
    torch.testing.assert_close(
        mmlhg.encoder_input(torch.from_numpy(shifted)), mmlhg.encoder_input(torch.from_numpy(frames))
    )
    lm = model_for_dataset(data, "lm-listener", **tiny).eval()
    assert not torch.allclose(
        lm.encoder_input(torch.from_numpy(shifted)), lm.encoder_input(torch.from_numpy(frames))
    )
    row = mmlhg.config.identities.index(data.split("train")[0].listener_id)
    np.testing.assert_allclose(mmlhg.identity_mean[row].numpy(), frames.mean(0), rtol=1e-5, atol=1e-6)


def test_a_told_mmlhg_answers_as_the_listener_it_is_told(trained, walk_data):
    """identity="told": the evaluation names the listener before each clip (rollout_agents calls
    meet_listener), and the agent then acts exactly as one built with that listener's identity."""
    from experiments.evaluation import rollout_agents

    variant, final = trained
    model = CodeListenerModel.from_pretrained(final)
    if variant == "lm-listener":
        with pytest.raises(ValueError, match="'told' needs an MMLHG checkpoint"):
            CodeListenerAgent(model, identity="told")
        return
    data = load_dataset(walk_data)
    clips = data.split("train")[:2]  # training listeners: the model holds their identity vectors
    told = CodeListenerAgent(model, seed=1, identity="told")
    with pytest.raises(ValueError, match="was not told who listens"):
        rollout(_env(walk_data, split="train"), told, seed=0)
    with pytest.raises(ValueError, match="is not one of the model's 6 training listeners"):
        told.meet_listener(data.split("test")[0].listener_id)
    ids = [c.clip_id for c in clips]
    got, _ = rollout_agents({"told": told}, data, "train", 4, clip_ids=ids, samples=2)
    for i, clip in enumerate(clips):
        named = CodeListenerAgent(model, seed=1, identity=clip.listener_id)
        want, _ = rollout_agents({"named": named}, data, "train", 4, clip_ids=ids, samples=2)
        np.testing.assert_array_equal(got["told"][i], want["named"][i])
    untold, _ = rollout_agents({"mean": CodeListenerAgent(model, seed=1)}, data, "train", 4, clip_ids=ids)
    assert not np.array_equal(untold["mean"][0][0], got["told"][0][0])  # an identity changes the face
