import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agents.vla import VLAForListening
from agents.vla.decoding import DecodeState, Sampler, decode_frames, sample_window
from agents.vla.trl_support import build_preference_tokenizer, completion_text, flat_batch

FRAME_KEYS = ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask")


@pytest.fixture(scope="module", params=["parallel", "autoregressive", "grouped", "velocity"])
def model(request, dataset, make_tiny_model):
    torch.manual_seed(0)
    if request.param == "velocity":
        model = make_tiny_model(dataset, head_velocity=4)
        with torch.no_grad():  # large enough that a wrong step would change the logits
            model.vla.action_head.step_embed.weight.normal_(0.0, 1.0)
        return model
    if request.param != "grouped":
        return make_tiny_model(dataset, decoding=request.param)
    model = make_tiny_model(dataset, head_groups=4)
    with torch.no_grad():  # the coupling starts at zero; give it weight so the tests see it
        model.vla.action_head.couple.normal_(0.0, 0.3)
    return model


def test_cached_step_by_step_logits_equal_the_full_sequence_forward(model, dataset):
    clip = dataset.split("train")[1]
    batch = model.processor.clips_batch([clip])
    with torch.no_grad():
        full = model.action_logits(batch)[0]
        state, steps = {}, []
        prev = batch["prev_listener"]
        for t in range(clip.num_frames):
            frame = {k: v[:, t : t + 1] for k, v in batch.items()}
            prev2 = prev[:, max(t - 1, 0) : max(t - 1, 0) + 1]  # one frame at a time: the caller keeps it
            out = model(**frame, **state, use_cache=True, prev2_listener=prev2)
            state = {"past_key_values": out.past_key_values, "attention_mask": out.attention_mask,
                     "positions": out.positions}  # fmt: skip
            steps.append(out.logits[0, 0])
    assert sum(len(ids) for ids in model.processor.clip_example(clip)["words"]) > 0  # words take part
    torch.testing.assert_close(torch.stack(steps), full, rtol=1e-4, atol=1e-4)


def test_padded_batch_equals_clips_one_by_one(model, dataset):
    clips = list(dataset.split("train"))[:3]
    with torch.no_grad():
        together = model.step_logprobs(model.processor.clips_batch(clips))
        for i, clip in enumerate(clips):
            alone = model.step_logprobs(model.processor.clips_batch([clip]))[0]
            torch.testing.assert_close(together[i, : clip.num_frames], alone, rtol=1e-4, atol=1e-3)
            assert (together[i, clip.num_frames :] == 0).all()


def test_save_then_load_gives_identical_outputs(model, dataset, tmp_path):
    clips = list(dataset.split("test"))
    model.save_pretrained(tmp_path)
    loaded = VLAForListening.from_pretrained(tmp_path)
    assert (tmp_path / "action_tokenizer.json").exists() and (tmp_path / "tokenizer.json").exists()
    assert loaded.config.decoding == model.config.decoding and not loaded.training
    with torch.no_grad():
        a = model.action_logits(model.processor.clips_batch(clips))
        b = loaded.action_logits(loaded.processor.clips_batch(clips))
    assert torch.equal(a, b)
    np.testing.assert_array_equal(
        loaded.processor.action_tokenizer.high, model.processor.action_tokenizer.high
    )


def test_sequence_logprobs_is_the_sum_of_per_token_log_softmax(model, dataset):
    clip = dataset.split("train")[0]
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 256, size=(clip.num_frames, 56))
    batch = model.processor.clips_batch([clip], [tokens])
    with torch.no_grad():
        logits = model.action_logits(batch)[0]
        expected = torch.log_softmax(logits, -1).gather(-1, torch.as_tensor(tokens)[..., None]).sum()
        assert model.sequence_logprobs(batch)[0].item() == pytest.approx(expected.item(), rel=1e-5)
    # The history is teacher-forced from the given tokens: other tokens, other logits.
    other = model.processor.clips_batch([clip])
    with torch.no_grad():
        assert not torch.allclose(model.action_logits(other)[0, 1:], logits[1:])


def test_trl_fused_lm_head_scores_exactly_the_policy_log_probs(model, dataset):
    from trl.trainer.utils import add_fused_lm_head

    clips = list(dataset.split("train"))[:2]
    rng = np.random.default_rng(2)
    tokens = [rng.integers(0, 256, size=(c.num_frames, 56)) for c in clips]
    flat = flat_batch(model.processor, clips, tokens)
    labels = flat["input_ids"].masked_fill(flat["completion_mask"] == 0, -100)
    patched = copy.deepcopy(model)
    add_fused_lm_head(patched)
    kwargs = {k: v for k, v in flat.items() if k != "completion_mask"}
    with torch.no_grad():
        fused = patched(**kwargs, labels=labels, fused_lm_head=True, use_cache=False).log_probs.sum(1)
        expected = model.sequence_logprobs(model.processor.clips_batch(clips, tokens))
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-2)


def test_preference_tokenizer_ids_are_bins():
    tokenizer = build_preference_tokenizer()
    ids = tokenizer("<bos>" + completion_text(np.array([[0, 17, 255]])) + "<eos>")["input_ids"]
    assert ids == [257, 0, 17, 255, 258]


def test_flat_view_rejects_partial_frames(model, dataset):
    clip = dataset.split("train")[0]
    flat = flat_batch(model.processor, [clip], [np.zeros((clip.num_frames, 56), np.int64)])
    flat["input_ids"] = flat["input_ids"][:, :-3]
    with pytest.raises(ValueError, match="whole frames of 56 action tokens"):
        model.vla(**{k: v for k, v in flat.items() if k != "completion_mask"})


def test_window_logits_and_sampling_agree(model, dataset):
    clip = dataset.split("train")[0]
    k = 8
    observations = []
    for t in (0, 5, 20):
        lo = t - k + 1
        speaker = np.zeros((k, 56), np.float32)
        listener = np.zeros((k, 56), np.float32)
        mask = np.zeros(k, np.int8)
        for i in range(k):
            if lo + i >= 0:
                speaker[i], mask[i] = clip.speaker_motion[lo + i], 1
            if lo + i - 1 >= 0:
                listener[i] = clip.listener_motion[lo + i - 1]
        observations.append({"speaker_motion": speaker, "listener_motion": listener, "mask": mask,
                             "words": "yes really", "step": np.array([t])})  # fmt: skip
    window = model.processor.observation_batch(observations)
    tokens, logp = sample_window(model, window, Sampler(generator=torch.Generator().manual_seed(0)))
    assert tokens.shape == (3, 56) and tokens.dtype == torch.int64
    with torch.no_grad():
        logits, hidden = model.window_logits({**window, "current_actions": tokens})
    assert logits.shape == (3, 56, 256) and hidden.shape == (3, model.config.hidden_size)
    expected = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(logp, expected, rtol=1e-5, atol=1e-3)


def test_greedy_decoding_is_the_argmax_of_the_logits(model, dataset):
    clip = dataset.split("train")[0]
    batch = model.processor.clips_batch([clip])
    first = {k: v[:, :1] for k, v in batch.items() if k in FRAME_KEYS}
    tokens, _, _ = decode_frames(model, first, DecodeState(), Sampler(greedy=True))
    with torch.no_grad():
        logits = model.action_logits({k: v[:, :1] for k, v in batch.items()})
    if model.config.decoding == "parallel" and model.config.head_groups == 1:
        assert torch.equal(tokens, logits[:, 0].argmax(-1))
    else:  # teacher-forced on its own greedy tokens, the coupled logits argmax back to them
        forced = model.action_logits({**{k: v[:, :1] for k, v in batch.items()}, "actions": tokens[:, None]})
        assert torch.equal(tokens, forced[:, 0].argmax(-1))


def test_lora_on_a_saved_tiny_llama(tmp_path, dataset):
    from transformers import LlamaConfig, LlamaForCausalLM

    from agents.vla.factory import build_model, speaker_statistics
    from agents.vla.text import train_word_tokenizer

    words = train_word_tokenizer(["yes", "no", "happy", "sad", "really", "wow", "okay", "hmm"])
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))  # fmt: skip
    llama.save_pretrained(tmp_path / "llama")
    words.save_pretrained(tmp_path / "llama")
    mean, std = speaker_statistics(dataset.split("train"), "motion")
    model = build_model(action_tokenizer=dataset.tokenizer(), text_tokenizer=None, speaker_mean=mean,
                        speaker_std=std, backbone_path=tmp_path / "llama", lora={"r": 4, "alpha": 8},
                        head_hidden=32, projector_hidden=32)  # fmt: skip
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable)
    assert not any(n.startswith("vla.backbone") and "lora_" not in n for n in trainable)
    assert "vla.action_head.lm_head.weight" in trainable and "vla.projector.fc1.weight" in trainable
    # The pretrained weights arrived, and LoRA starts as the identity.
    q = model.vla.backbone.layers[0].self_attn.q_proj
    torch.testing.assert_close(q.base_layer.weight, llama.model.layers[0].self_attn.q_proj.weight)
    clips = list(dataset.split("test"))
    model.eval().save_pretrained(tmp_path / "vla")
    loaded = VLAForListening.from_pretrained(tmp_path / "vla")
    with torch.no_grad():
        a = model.action_logits(model.processor.clips_batch(clips))
        b = loaded.action_logits(loaded.processor.clips_batch(clips))
    assert torch.equal(a, b) and loaded.config.lora["r"] == 4


def test_velocity_head_reads_the_step_between_the_two_previous_frames(dataset, make_tiny_model):
    torch.manual_seed(0)
    model = make_tiny_model(dataset, head_velocity=4)
    with torch.no_grad():
        model.vla.action_head.step_embed.weight.normal_(0.0, 1.0)
    batch = model.processor.clips_batch([dataset.split("train")[0]])
    frame = {k: v[:, 5:6] for k, v in batch.items()}
    prev = frame["prev_listener"]
    width = model.vla.action_width[None, None]
    with torch.no_grad():
        still = model(**frame, prev2_listener=prev).logits[0, 0]
        moving = model(**frame, prev2_listener=prev - 2 * width).logits[0, 0]  # two bins up since
        far = model(**frame, prev2_listener=prev - 9 * width).logits[0, 0]  # clipped to 4 bins
        farther = model(**frame, prev2_listener=prev - 30 * width).logits[0, 0]
    assert (still - moving).abs().amax(-1).gt(1e-3).all()
    torch.testing.assert_close(far, farther)
    with pytest.raises(ValueError, match="head_velocity"):
        make_tiny_model(dataset, head_velocity=2, decoding="autoregressive")


def test_grouped_head_reads_only_earlier_groups_of_the_frame(dataset, make_tiny_model):
    torch.manual_seed(0)
    model = make_tiny_model(dataset, head_groups=4)
    with torch.no_grad():
        model.vla.action_head.couple.normal_(0.0, 0.3)
    groups = model.vla.action_head.groups
    batch = model.processor.clips_batch([dataset.split("train")[0]])
    frame = {
        k: v[:, 3:4] for k, v in batch.items()
    }  # prev_listener stays fixed: only the frame's own tokens move
    changed = frame["actions"].clone()
    changed[..., groups[1]] = (changed[..., groups[1]] + 40) % 256
    with torch.no_grad():
        before = model(**frame).logits[0, 0]
        after = model(**{**frame, "actions": changed}).logits[0, 0]
    same = groups[0] + groups[1]
    assert torch.equal(before[same], after[same])
    later = groups[2] + groups[3]
    assert (before[later] - after[later]).abs().amax(-1).gt(1e-4).all()


def test_velocity_head_learns_to_carry_a_movement_on():
    """Targets that continue the last step are learnable with the step and not without it (1 in 9)."""
    from agents.vla.modeling import ActionHead

    def accuracy(velocity: int) -> float:
        torch.manual_seed(0)
        head = ActionHead(8, 32, 2, 64, velocity=velocity)
        optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
        for step in range(301):
            prev = torch.randint(8, 56, (256, 2))
            last = torch.randint(-4, 5, (256, 2))
            logits = head.lm_head(
                head.features(torch.zeros(256, 8), prev, last_steps=last if velocity else None)
            )
            if step == 300:
                return (logits.argmax(-1) == prev + last).float().mean().item()
            loss = F.cross_entropy(logits.flatten(0, 1), (prev + last).flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        raise AssertionError("unreachable")

    assert accuracy(4) > 0.9
    assert accuracy(0) < 0.3


@pytest.mark.parametrize("gesture_frames", [0, 4])
def test_without_expression_state_only_the_previous_pose_is_seen(
    dataset, make_tiny_model, tmp_path, gesture_frames
):
    torch.manual_seed(0)
    model = make_tiny_model(dataset, expression_state=False, gesture_frames=gesture_frames)
    batch = model.processor.clips_batch([dataset.split("train")[0]])
    expression = torch.arange(56) < model.config.expression_dim
    other_face = batch["prev_listener"] + 0.3 * expression
    other_head = batch["prev_listener"] + 0.1 * ~expression
    with torch.no_grad():
        logits = model(**{**batch, "prev_listener": batch["prev_listener"]}).logits
        torch.testing.assert_close(model(**{**batch, "prev_listener": other_face}).logits, logits)
        assert not torch.allclose(model(**{**batch, "prev_listener": other_head}).logits, logits)

    def decode(prev):
        inputs = {k: batch[k][:, 3:4] for k in FRAME_KEYS} | {"prev_listener": prev[:, 3:4]}
        sampler = Sampler(temperature=1.0, generator=torch.Generator().manual_seed(0))
        return decode_frames(model, inputs, DecodeState(), sampler)[:2]

    for same, again in zip(decode(batch["prev_listener"]), decode(other_face)):
        torch.testing.assert_close(same, again)
    model.save_pretrained(tmp_path)
    assert VLAForListening.from_pretrained(tmp_path).config.expression_state is False
    assert make_tiny_model(dataset).config.expression_state  # seen by default
