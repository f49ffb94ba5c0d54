import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from agents.vla.sft import SFTConfig, WeightAverage, latest_checkpoint, sft_loss, train_sft

REPO = Path(__file__).resolve().parents[3]


def test_sft_loss_matches_hand_computed_eqs_7_to_9():
    ln3 = math.log(3.0)
    # Clip 0: two real frames and one padded frame; clip 1: one real frame. D = 2 (expression dim 0, pose dim 1).
    logits = torch.tensor([
        [[[0.0, 0.0], [ln3, 0.0]], [[0.0, ln3], [0.0, 0.0]], [[9.0, -9.0], [9.0, -9.0]]],
        [[[ln3, 0.0], [0.0, 0.0]], [[5.0, 1.0], [2.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]],
    ])  # fmt: skip
    actions = torch.tensor([[[0, 0], [1, 1], [1, 1]], [[0, 1], [0, 0], [0, 0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    centers = torch.tensor([[0.0, 1.0], [-1.0, 1.0]])
    loss = sft_loss(logits, actions, mask, centers, lambda_exp=2.0, lambda_pose=0.5, lambda_temp=0.1,
                    expression_dim=1)  # fmt: skip
    # Clip 0: CE exp = (ln 2 + ln 4/3) / 2, CE pose = (ln 4/3 + ln 2) / 2. Clip 1: CE exp = ln 4/3, pose = ln 2.
    ce0 = (math.log(2) + math.log(4 / 3)) / 2
    ce_exp = (ce0 + math.log(4 / 3)) / 2
    ce_pose = (ce0 + math.log(2)) / 2
    # Soft actions of clip 0: frame 0 (0.5, -0.5), frame 1 (0.75, 0.0); clip 1 has no frame pair.
    temporal = (0.75 - 0.5) ** 2 + (0.0 + 0.5) ** 2
    assert loss.ce_expression.item() == pytest.approx(ce_exp, abs=1e-6)
    assert loss.ce_pose.item() == pytest.approx(ce_pose, abs=1e-6)
    assert loss.temporal.item() == pytest.approx(temporal, abs=1e-6)
    assert loss.total.item() == pytest.approx(2.0 * ce_exp + 0.5 * ce_pose + 0.1 * temporal, abs=1e-6)


def test_sft_config_validates_fields():
    with pytest.raises(ValueError, match="model: decoding: expected one of"):
        SFTConfig(model={"decoding": "beam"})
    with pytest.raises(ValueError, match="unknown fields \\['max_step'\\] \\(did you mean 'max_steps'"):
        SFTConfig.from_dict({"max_step": 3})
    with pytest.raises(ValueError, match=r"model\.lora needs model\.backbone_path"):
        SFTConfig(model={"lora": {"r": 4}})
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        SFTConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match=r"decode_mode.*expected one of .*mean_expression"):
        SFTConfig(model={"decode_mode": "expected"})
    with pytest.raises(ValueError, match=r"unknown model fields \['head_hiden'\]"):
        SFTConfig(model={"head_hiden": 3})
    with pytest.raises(ValueError, match=r"model\.max_context_frames is set by max_frames"):
        SFTConfig(model={"max_context_frames": 3})
    with pytest.raises(ValueError, match="max_steps must be an integer, found '3'"):
        SFTConfig.from_dict({"max_steps": "3"})


def test_an_old_flat_sft_config_names_the_model_section():
    with pytest.raises(
        ValueError,
        match=r"gesture_frames, head_hidden now belong to the model section: write "
        r"`model: \{gesture_frames: \.\.\., head_hidden: \.\.\.\}`",
    ):
        SFTConfig.from_dict({"head_hidden": 64, "gesture_frames": 16, "max_steps": 3})
    with pytest.raises(ValueError, match=r"`model: \{lora: \{r: 8"):
        SFTConfig.from_dict({"lora_r": 8})


def test_state_offset_shifts_each_clips_expression_states_by_one_constant(dataset, make_tiny_model):
    from agents.vla.sft.states import noisy_states

    model = make_tiny_model(dataset)
    states = torch.rand(3, 10, model.config.action_dim)
    config = SFTConfig(state_offset=0.5, seed=1)
    shifted = noisy_states(states, model, config, step=7)
    delta = shifted - states
    e = model.config.expression_dim
    # One offset per clip and expression dimension, the same in every frame; the pose keeps its exact states.
    assert torch.allclose(delta[:, :, :e], delta[:, :1, :e].expand(-1, 10, -1), atol=1e-6)
    assert delta[:, :, :e].abs().amax() > 0
    assert torch.equal(delta[:, :, e:], torch.zeros_like(delta[:, :, e:]))
    assert torch.equal(noisy_states(states, model, config, step=7), shifted)  # seeded by (seed, step)
    dropped = noisy_states(states, model, SFTConfig(state_dropout=0.99, seed=1), step=7)
    assert torch.equal(dropped, torch.zeros_like(states))


def test_self_states_are_the_policys_own_samples_of_the_previous_frame(dataset, make_tiny_model):
    from agents.vla.sft.states import sampled_states

    model = make_tiny_model(dataset)
    clips = list(dataset.split("train"))[:2]
    batch = model.processor.collate([model.processor.clip_example(c, length=12) for c in clips])
    model.config.decode_temperature = 1e-6
    config = SFTConfig(self_states=1.0, seed=3)
    states = sampled_states(model, batch, model, config, step=5)
    assert torch.equal(states[:, 0], batch["prev_listener"][:, 0])  # the first frame keeps its state
    with torch.no_grad():  # near-greedy samples: each state is the policy's best guess of the frame before
        best = model.vla.decode_actions(model(**batch).logits.argmax(-1))
    assert torch.isclose(states[:, 1:], best[:, :-1]).float().mean() > 0.99
    assert not torch.equal(states, batch["prev_listener"])
    assert torch.equal(sampled_states(model, batch, model, config, step=5), states)  # seeded by (seed, step)
    half = sampled_states(model, batch, model, SFTConfig(self_states=0.5, seed=3), step=5)
    kept = (half == batch["prev_listener"]).all(-1)[:, 1:].float().mean()
    assert 0.2 < kept < 0.8


def test_pose_state_noise_sets_the_pose_states_noise_apart(dataset, make_tiny_model):
    from agents.vla.sft.states import noisy_states

    model = make_tiny_model(dataset)
    states = torch.rand(2, 50, model.config.action_dim)
    e = model.config.expression_dim
    exact_pose = noisy_states(states, model, SFTConfig(state_noise=0.1, pose_state_noise=0.0, seed=1), step=3)
    assert torch.equal(exact_pose[..., e:], states[..., e:])
    assert (exact_pose[..., :e] - states[..., :e]).abs().amax() > 0
    same = noisy_states(states, model, SFTConfig(state_noise=0.1, seed=1), step=3)
    loud_pose = noisy_states(states, model, SFTConfig(state_noise=0.1, pose_state_noise=0.4, seed=1), step=3)
    assert torch.equal(same[..., :e], loud_pose[..., :e])  # the expression noise does not move
    half_range = model.vla.action_width * model.config.num_bins / 2
    ratio = ((loud_pose - states) / half_range)[..., e:].std() / ((same - states) / half_range)[..., e:].std()
    assert 3.0 < float(ratio) < 5.0
    with pytest.raises(ValueError, match="pose_state_noise"):
        SFTConfig(pose_state_noise=-0.1)


@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
def test_tiny_model_overfits_one_clip(dataset, make_tiny_model, decoding):
    torch.manual_seed(0)
    model = make_tiny_model(dataset, decoding=decoding, head_hidden=128).train()
    batch = model.processor.collate([model.processor.clip_example(dataset.split("train")[0], length=16)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):
        logits = model(**batch).logits
        loss = sft_loss(
            logits, batch["actions"], batch["frame_mask"], model.vla.bin_centers, lambda_temp=0.01
        )
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model.action_logits(batch).argmax(-1)
    accuracy = (predicted == batch["actions"]).float().mean().item()
    assert loss.ce_expression.item() < 0.3 and accuracy > 0.95


TINY = {"backbone": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2}, "head_hidden": 32, "projector_hidden": 32}  # fmt: skip


def _config(data: Path, out: Path, model: dict | None = None, **kw) -> SFTConfig:
    """A tiny SFT run; ``model`` adds to the tiny network's settings."""
    fields = {"dataset": str(data), "output_dir": str(out), "max_steps": 16, "batch_size": 2, "max_frames": 16,
              "warmup_steps": 4, "save_every": 4, "eval_every": 0, "log_every": 4, "learning_rate": 3e-3,
              "lambda_temp": 0.01, "state_noise": 0.1, "keep_checkpoints": 3, "model": {**TINY, **(model or {})},
              **kw}  # fmt: skip
    return SFTConfig(**fields)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_state(random_dataset, tmp_path):
    killed = tmp_path / "killed"
    config = _config(random_dataset, killed, ema_decay=0.8)  # the weight average must resume too
    overrides = [f"{k}={json.dumps(v)}" for k, v in config.__dict__.items() if v is not None]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "train", "sft", "--no-progress", *overrides],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    # The uninterrupted run goes while the subprocess imports torch.
    straight = train_sft(_config(random_dataset, tmp_path / "straight", ema_decay=0.8), progress=False)
    deadline = time.monotonic() + 120
    while latest_checkpoint(killed) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    resumed_from = json.loads((latest_checkpoint(killed) / "trainer_state.json").read_text())["step"]
    assert resumed_from < config.max_steps and not (killed / "final").exists()

    resumed = train_sft(config, progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    # The killed run trained in another process, whose float reductions may round differently (~1e-6); a
    # resume that lost optimizer, scheduler or RNG state differs by the size of a step (~1e-3 at this lr).
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)
    state = json.loads((latest_checkpoint(killed) / "trainer_state.json").read_text())
    assert state["step"] == config.max_steps


def test_weight_average_follows_the_weights_and_swaps_in_and_out():
    layer = torch.nn.Linear(2, 1)
    start = layer.weight.detach().clone()
    average = WeightAverage(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.add_(1.0)
    average.update(step=0)  # the ramp: decay min(0.9, 1/10) = 0.1
    expected = 0.1 * start + 0.9 * (start + 1.0)
    torch.testing.assert_close(average.shadow[0], expected)
    average.update(step=100)  # decay 0.9 now
    expected = 0.9 * expected + 0.1 * (start + 1.0)
    torch.testing.assert_close(average.shadow[0], expected)
    with average.applied():
        torch.testing.assert_close(layer.weight.detach(), expected)
    torch.testing.assert_close(layer.weight.detach(), start + 1.0)
    other = WeightAverage(layer, decay=0.9)
    other.load_state_dict(average.state_dict())
    torch.testing.assert_close(other.shadow[0], expected)


def test_final_policy_is_the_weight_average(random_dataset, tmp_path):
    from agents.vla import VLAForListening

    final = train_sft(_config(random_dataset, tmp_path / "run", max_steps=3, save_every=0, ema_decay=0.5),
                      progress=False)  # fmt: skip
    last = latest_checkpoint(tmp_path / "run")
    shadow = torch.load(last / "ema.pt", weights_only=True)["shadow"]
    averaged = [p for p in VLAForListening.from_pretrained(final).parameters() if p.requires_grad]
    raw = [p for p in VLAForListening.from_pretrained(last).parameters() if p.requires_grad]
    assert len(shadow) == len(averaged) == len(raw)
    for a, b in zip(averaged, shadow):
        torch.testing.assert_close(a.detach(), b)
    assert any(not torch.equal(a, b) for a, b in zip(averaged, raw))
    # Resuming a run that kept no average with one asked for says so instead of a bare missing-file error.
    plain = _config(random_dataset, tmp_path / "plain", max_steps=2, save_every=2)
    train_sft(plain, progress=False)
    with pytest.raises(ValueError, match=r"ema_decay: .* was trained without it"):
        train_sft(_config(random_dataset, tmp_path / "plain", max_steps=4, save_every=2, ema_decay=0.5),
                  progress=False)  # fmt: skip


def test_train_sft_writes_a_loadable_policy_and_tensorboard(random_dataset, tmp_path):
    from agents.vla import VLAForListening

    final = train_sft(_config(random_dataset, tmp_path / "run", max_steps=3, save_every=0), progress=False)
    model = VLAForListening.from_pretrained(final)
    assert model.processor is not None and (final / "action_tokenizer.json").exists()
    assert any((tmp_path / "run" / "tb").iterdir())
    assert np.isfinite(model.config.speaker_std).all()


def test_speaker_prediction_error_on_a_hand_computed_case(dataset, make_tiny_model):
    model = make_tiny_model(dataset, speaker_prediction=True)
    with (
        torch.no_grad()
    ):  # a head that predicts 0 (the speaker's mean): the error is the target's mean square
        model.vla.speaker_head.weight.zero_()
        model.vla.speaker_head.bias.zero_()
    speaker = torch.randn(2, 4, model.config.speaker_dim)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    hidden = torch.randn(2, 4, model.config.hidden_size)
    mean, std = torch.tensor(model.config.speaker_mean), torch.tensor(model.config.speaker_std)
    target = (speaker - mean) / std
    # Pairs (t, t+1) with both frames real: clip 0 predicts frames 1 and 2, clip 1 predicts frame 1.
    expected = torch.stack([target[0, 1], target[0, 2], target[1, 1]]).pow(2).mean()
    error = model.vla.speaker_prediction_error(hidden, speaker, mask)
    assert error.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="no speaker head"):
        make_tiny_model(dataset).vla.speaker_prediction_error(hidden, speaker, mask)


def test_train_sft_with_the_speaker_loss_logs_it_and_keeps_the_head(random_dataset, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents.vla import VLAForListening

    config = _config(random_dataset, tmp_path / "run", max_steps=4, save_every=0, lambda_speaker=0.5)
    final = train_sft(config, progress=False)
    model = VLAForListening.from_pretrained(final)
    assert model.config.speaker_prediction and model.vla.speaker_head is not None
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    logged = [e.value for e in events.Scalars("losses/speaker")]
    assert logged and all(v > 0 for v in logged)
    with pytest.raises(ValueError, match="lambda_"):
        SFTConfig(lambda_speaker=-1.0)


def test_cli_reports_bad_config_fields(tmp_path, capsys):
    from experiments.cli import main

    code = main(["train", "sft", "--config", str(REPO / "experiments/configs/sft_tiny.yaml"), "batch_size=0"])
    assert code == 2 and "batch_size must be a positive integer, found 0" in capsys.readouterr().err
    assert main(["train", "sft", "max_steps"]) == 2


def test_training_loss_adds_the_speaker_and_nod_onset_terms(random_dataset):
    from agents.vla.sft import ClipBatcher, build_sft_model, training_loss
    from dyadic_env.data import load_dataset

    config = _config(
        random_dataset, Path("unused"), {"gesture_frames": 4}, lambda_speaker=0.5, lambda_gesture=2.0
    )
    dataset = load_dataset(random_dataset)
    model = build_sft_model(config, dataset, None)
    batch = ClipBatcher(dataset.split("train"), model.processor, config).batch(0)
    loss, logits, actions, mask = training_loss(model, model, batch, config, 0)
    assert logits.shape[:-1] == actions.shape and mask.shape == actions.shape[:2]
    assert loss.speaker > 0 and loss.gesture > 0
    parts = loss.ce_expression + loss.ce_pose + 0.01 * loss.temporal + 0.5 * loss.speaker + 2.0 * loss.gesture
    torch.testing.assert_close(loss.total, parts)


def test_the_model_section_builds_the_policy_and_init_from_keeps_its_network(random_dataset, tmp_path):
    from agents.vla import VLAForListening
    from agents.vla.sft import build_sft_model

    first = train_sft(_config(random_dataset, tmp_path / "a", {"head_groups": 2, "decode_mode": "greedy"},
                              max_steps=2, save_every=0), progress=False)  # fmt: skip
    trained = VLAForListening.from_pretrained(first).config
    assert (trained.head_groups, trained.decode_mode, trained.max_context_frames) == (2, "greedy", 16)
    assert (
        trained.head_hidden == TINY["head_hidden"] and trained.speaker_input == "motion"
    )  # auto: no features
    again = build_sft_model(
        _config(random_dataset, tmp_path / "b", {"decode_mode": "mean"}, init_from=str(first), max_frames=8),
        None, None,
    )  # fmt: skip
    assert (again.config.head_groups, again.config.decode_mode, again.config.max_context_frames) == (
        2,
        "mean",
        8,
    )
