"""Head nods as discrete gestures: finding them in data, carrying their phase, training and decoding them."""

import numpy as np
import pytest
import torch

from agents.vla import VLAAgent
from agents.vla.decoding import DecodeState, Sampler, decode_frames
from agents.vla.gestures import fit_nod_profile, next_phase, nod_onsets, onset_allowed, phases_from_onsets
from agents.vla.inputs import FrameInputs
from agents.vla.sft import SFTConfig, train_sft

from .test_sft import _config


def _nod(frames: int, start: int, length: int = 14, amplitude: float = 0.06) -> np.ndarray:
    """A raised-sine bump of head pitch starting at ``start`` (as the synthetic listeners nod)."""
    x = np.zeros(frames)
    x[start : start + length] = amplitude * 0.5 * (1 - np.cos(2 * np.pi * np.arange(length) / length))
    return x


def _onsets(pitch: np.ndarray, mask: np.ndarray | None = None, threshold: float = 0.02) -> list[int]:
    mask_t = torch.ones(1, len(pitch), dtype=torch.bool) if mask is None else torch.tensor(mask)[None]
    found = nod_onsets(torch.tensor(pitch, dtype=torch.float32)[None], mask_t, 8, threshold)[0]
    return torch.nonzero(found).flatten().tolist()


def test_nod_onsets_find_where_each_bump_begins():
    pitch = _nod(120, 20) + _nod(120, 70, amplitude=0.04) + 0.01  # an offset does not matter
    assert _onsets(pitch) == [20, 70]
    assert _onsets(pitch, threshold=0.05) == [20]  # the second nod is too small


def test_nod_onsets_ignore_slow_drift_steps_and_padding():
    t = np.arange(200)
    assert _onsets(0.05 * np.sin(2 * np.pi * t / 100)) == []  # a slow sway is no nod
    assert _onsets(np.where(t < 100, 0.0, 0.08)) == []  # a head that sinks and stays is no nod
    # Padded frames (tokens 0: the lowest pitch) make no bump at the clip's real end.
    padded = np.where(t < 150, 0.05, -0.3)
    assert _onsets(padded, mask=t < 150) == []


def test_nod_profile_is_the_mean_nod_from_the_frame_before_its_onset():
    motion = np.zeros((200, 56))
    motion[:, 50] = _nod(200, 30) + _nod(200, 120, amplitude=0.04) - 0.02
    profile = fit_nod_profile([motion], 16, 50, 0.02)
    expected = (_nod(200, 30)[30:46] + _nod(200, 120, amplitude=0.04)[120:136]) / 2
    np.testing.assert_allclose(profile, expected, atol=1e-6)
    assert fit_nod_profile([np.zeros((50, 56))], 16, 50, 0.02) == [0.0] * 16


def test_decoding_carries_the_phase_the_data_shows():
    rng = np.random.default_rng(0)
    length, frames = 5, 60
    wanted = torch.tensor(rng.random(frames) < 0.2)
    phase, onsets, carried = torch.zeros(1, dtype=torch.long), [], []
    for t in range(frames):  # the decoder's rule: a nod may start only when none is under way
        allowed = bool((phase == 0) | (phase >= length))
        onset = torch.tensor([bool(wanted[t]) and allowed])
        phase = next_phase(phase, onset, length)
        onsets.append(bool(onset))
        carried.append(int(phase))
    tf_phases = phases_from_onsets(torch.tensor(onsets)[None], length)
    assert tf_phases[0].tolist() == carried
    assert set(carried) == set(range(length + 1))
    allowed = onset_allowed(tf_phases, length)[0]
    assert all(allowed[t] for t in range(frames) if onsets[t])


def _gesture_model(dataset, make_tiny_model, onset_bias: float | None = None):
    torch.manual_seed(0)
    model = make_tiny_model(dataset, gesture_frames=6)
    with torch.no_grad():
        model.vla.action_head.phase_embed.weight.normal_(0.0, 1.0)
        if onset_bias is not None:
            model.vla.gesture_head.weight.zero_()
            model.vla.gesture_head.bias.fill_(onset_bias)
    return model


def test_gesture_config_is_validated(dataset, make_tiny_model):
    with pytest.raises(ValueError, match="gesture_frames"):
        make_tiny_model(dataset, gesture_frames=4, decoding="autoregressive")
    with pytest.raises(ValueError, match="gesture_frames"):
        make_tiny_model(dataset, gesture_frames=1)
    with pytest.raises(ValueError, match="no gestures"):
        make_tiny_model(dataset).vla.gesture_logits(torch.zeros(1, 2, 32))
    with pytest.raises(ValueError, match="gesture_frames"):
        SFTConfig(model={"gesture_frames": -1})


def test_phase_changes_the_action_distribution(dataset, make_tiny_model):
    model = _gesture_model(dataset, make_tiny_model)
    batch = model.processor.clips_batch([dataset.clip(dataset.split("train").clip_ids[0])])
    keys = {k: batch[k] for k in ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask")}
    with torch.no_grad():
        still = model.vla.frames(
            FrameInputs(**keys, gesture_phases=torch.zeros_like(batch["frame_mask"], dtype=torch.long))
        )
        nodding = model.vla.frames(
            FrameInputs(**keys, gesture_phases=torch.full_like(batch["frame_mask"], 3, dtype=torch.long))
        )
        undecided = model.vla.frames(FrameInputs(**keys))
    assert not torch.allclose(still.action_hidden, nodding.action_hidden)
    assert undecided.action_hidden is None  # the decoder draws the phase first


def test_the_head_continues_from_the_last_frame_moved_along_the_mean_nod(dataset, make_tiny_model):
    model = make_tiny_model(dataset, gesture_frames=4, gesture_profile=[0.01, 0.04, 0.03, 0.0])
    prev = torch.zeros(1, 3, 56)
    phases, prev_phases = torch.tensor([[2, 3, 0]]), torch.tensor([[1, 2, 4]])
    hint = model.vla.decode_actions(model.vla.gesture_hint(prev, phases, prev_phases))
    base = model.vla.decode_actions(model.vla.encode_actions(prev))
    width = float(model.vla.action_width[50])
    np.testing.assert_allclose((hint - base)[0, :, 50].numpy(), [0.03, -0.01, 0.0], atol=width)
    torch.testing.assert_close(hint[..., :50], base[..., :50])


def test_step_logprobs_add_the_nod_decisions(dataset, make_tiny_model):
    model = _gesture_model(dataset, make_tiny_model)
    clip = dataset.clip(dataset.split("train").clip_ids[0])
    batch = model.processor.clips_batch([clip])
    keys = {
        k: batch[k]
        for k in ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask", "actions")
    }
    with torch.no_grad():
        out = model(**keys)
        tokens = torch.log_softmax(out.logits, -1).gather(-1, batch["actions"][..., None]).squeeze(-1).sum(-1)
        decisions = model.vla.gesture_logprobs(out.frame_hidden, batch["actions"], batch["frame_mask"])
        total = model.step_logprobs(batch)
    assert decisions.abs().sum() > 0 and bool((decisions <= 0).all())
    torch.testing.assert_close(total, tokens + decisions)


def test_agent_starts_nods_from_the_onset_head_and_logs_their_probability(dataset, make_tiny_model, tmp_path):
    # Onsets certain: every nod runs its 6 frames and the next starts at once.
    model = _gesture_model(dataset, make_tiny_model, onset_bias=30.0)
    clip = dataset.clip(dataset.split("train").clip_ids[0])
    example = model.processor.clip_example(clip)
    sampler = Sampler(temperature=1.0, generator=torch.Generator().manual_seed(0))
    state, prev, prev2, phases = DecodeState(), torch.zeros(1, 1, 56), torch.zeros(1, 1, 56), []
    for t in range(14):
        ids = example["words"][t]
        inputs = {"speaker_inputs": torch.tensor(example["speaker_inputs"][t : t + 1])[None],
                  "prev_listener": prev, "prev2_listener": prev2,
                  "word_ids": torch.tensor(ids, dtype=torch.long).view(1, 1, -1),
                  "word_mask": torch.ones(1, 1, len(ids), dtype=torch.bool)}  # fmt: skip
        tokens, _, state = decode_frames(model, inputs, state, sampler)
        phases.append(int(state.gesture_phase[0]))
        prev, prev2 = model.vla.decode_actions(tokens)[:, None], prev
    assert phases == [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2]
    # Never a nod: the agent's per-step log-probs are the tokens' alone, as teacher forcing with phase 0 gives.
    still = _gesture_model(dataset, make_tiny_model, onset_bias=-30.0)
    still.save_pretrained(tmp_path / "still")
    agent = VLAAgent.from_pretrained(tmp_path / "still", seed=0)
    import gymnasium as gym

    env = gym.make("dyadic_env/Listener-v0", dataset=str(dataset.path), split="train", context_frames=8)
    observation, _ = env.reset(seed=0, options={"clip_index": 0})
    steps, taken = [], []
    for _ in range(5):
        taken.append(agent.act(observation))
        steps.append(agent.last_log_prob)
        observation, *_ = env.step(taken[-1])
    env.close()
    clip = env.unwrapped.clip
    batch = still.processor.clips_batch(
        [clip], [np.concatenate([taken, np.zeros((clip.num_frames - 5, 56), np.int64)])]
    )
    keys = {k: batch[k] for k in ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask")}
    with torch.no_grad():
        out = agent.model.vla.frames(
            FrameInputs(
                **keys,
                actions=batch["actions"],
                gesture_phases=torch.zeros_like(batch["frame_mask"], dtype=torch.long),
            )
        )
        logits = agent.model.get_output_embeddings()(out.action_hidden)[0, :5]
    expected = torch.log_softmax(logits, -1).gather(-1, batch["actions"][0, :5, :, None]).squeeze(-1).sum(-1)
    np.testing.assert_allclose(steps, expected.numpy(), rtol=1e-4, atol=1e-3)


def test_windowed_policy_refuses_a_gesture_model(dataset, make_tiny_model):
    model = _gesture_model(dataset, make_tiny_model)
    with pytest.raises(ValueError, match="gestures"):
        model.window_logits({})


def test_sft_trains_the_onset_head_and_saves_it(random_dataset, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents.vla import VLAForListening

    config = _config(random_dataset, tmp_path / "run", {"gesture_frames": 6}, max_steps=4, save_every=0)
    model = VLAForListening.from_pretrained(train_sft(config, progress=False))
    assert model.config.gesture_frames == 6 and model.vla.gesture_head is not None
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    logged = [e.value for e in events.Scalars("losses/gesture")]
    assert logged and all(v > 0 for v in logged)
