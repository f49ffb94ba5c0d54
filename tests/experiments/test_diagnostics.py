"""`dyadic diagnose` and experiments.diagnostics on a tiny untrained VLA and hand-made clips."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from dyadic_env.data import load_dataset
from dyadic_env.data.clip import Word
from dyadic_env.envs.testing import write_random_walk_dataset
from dyadic_env.expression_basis import NECK_POSE
from experiments import diagnostics
from experiments.cli import main

PITCH = NECK_POSE.start


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_random_walk_dataset(tmp_path_factory.mktemp("rw") / "d", splits={"train": 4, "val": 2})


@pytest.fixture(scope="module")
def checkpoint(data_path, tmp_path_factory):
    from agents.vla.factory import model_for_dataset

    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 2}  # fmt: skip
    model = model_for_dataset(load_dataset(data_path), backbone=tiny, head_hidden=16, projector_hidden=16)
    path = tmp_path_factory.mktemp("ckpt") / "vla"
    model.save_pretrained(path)
    return path


def _nodding_clip(template, fps=25.0, frames=100):
    """Two phrases (0.2-1.0 s and 2.0-2.6 s); the listener nods 0.05 rad, peaking 0.4 s after each ends."""
    words = (Word(0.2, 0.6, "so"), Word(0.6, 1.0, "well"), Word(2.0, 2.6, "right"))
    t = np.arange(frames) / fps
    listener = np.zeros((frames, 56), np.float32)
    for end in (1.0, 2.6):
        listener[:, PITCH] += 0.05 * np.exp(-(((t - end - 0.4) / 0.12) ** 2))
    speaker = np.repeat(np.asarray(template.speaker_motion[:1]), frames, 0)
    return dataclasses.replace(
        template, speaker_motion=speaker, listener_motion=listener, speaker_words=words
    )


def test_response_after_phrase_ends_finds_the_data_nods(data_path, checkpoint):
    from agents.vla import VLAForListening

    model = VLAForListening.from_pretrained(checkpoint).eval()
    clip = _nodding_clip(load_dataset(data_path).split("val")[0])
    assert list(diagnostics.phrase_ends(clip)) == [25, 65]
    tokenizer = model.processor.action_tokenizer
    as_tokens = tokenizer.decode(tokenizer.encode(clip.listener_motion))  # what the data column reads
    runs = [diagnostics.teacher_forced(model, clip)]
    out = diagnostics.response_after_phrase_ends([clip], runs, sampled=[as_tokens])
    assert out["phrase_ends"] == 2
    peak = int(np.argmax(out["data"]))
    assert out["seconds"][peak] == pytest.approx(0.4) and out["data"][peak] == pytest.approx(0.05, abs=0.003)
    np.testing.assert_allclose(
        out["policy_closed_loop"], out["data"], atol=1e-6
    )  # the "samples" are the data
    assert np.isfinite(out["policy_teacher_forced"]).all()


def test_dynamics_reads_the_datas_momentum(data_path, checkpoint):
    from agents.vla import VLAForListening

    model = VLAForListening.from_pretrained(checkpoint).eval()
    clips = list(load_dataset(data_path).split("val"))
    out = diagnostics.dynamics([diagnostics.teacher_forced(model, clip) for clip in clips])
    # The data's own slope, straight from the tokenized frames.
    truth = [model.processor.action_tokenizer.decode(model.processor.action_tokenizer.encode(c.listener_motion))
             for c in clips]  # fmt: skip
    last = np.concatenate([x[1:-1, PITCH] - x[:-2, PITCH] for x in truth])
    step = np.concatenate([x[2:, PITCH] - x[1:-1, PITCH] for x in truth])
    assert out["head pitch"]["data_slope"] == pytest.approx(np.polyfit(last, step, 1)[0], abs=1e-4)
    assert all(np.isfinite(list(row.values())).all() for row in out.values())
    assert out["head pitch"]["policy_spread"] > 0


def test_cli_diagnose_prints_and_saves(data_path, checkpoint, tmp_path, capsys):
    out = tmp_path / "diag.json"
    argv = [
        "diagnose",
        "--policy",
        str(checkpoint),
        "--dataset",
        str(data_path),
        "--split",
        "val",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| head pitch |" in printed and "phrase ends" in printed
    figures = json.loads(out.read_text())
    assert set(figures) == {"dynamics", "response", "pause_readout_auc"}
    assert "policy_closed_loop" in figures["response"] and 0.0 <= figures["pause_readout_auc"] <= 1.0


def test_roc_auc_on_a_hand_computed_case():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    labels = np.array([False, False, True, True, True])
    # Positive vs negative pairs: 0.35 beats 0.1 only; 0.8 beats both; 0.4 beats 0.1 and ties 0.4.
    assert diagnostics.roc_auc(scores, labels) == pytest.approx((1 + 2 + 1.5) / 6)
    with pytest.raises(ValueError, match="both positive and negative"):
        diagnostics.roc_auc(scores, np.ones(5, bool))


def test_pause_readout_reads_a_pause_the_hidden_state_shows(data_path, checkpoint, monkeypatch):
    from agents.vla import VLAForListening

    model = VLAForListening.from_pretrained(checkpoint).eval()
    clips = list(load_dataset(data_path).split("train"))

    def revealing(clips, runs):  # hidden states that carry the label in one coordinate, plus noise
        labels = np.concatenate([diagnostics._after_pause_labels(c) for c in clips])
        rng = np.random.default_rng(0)
        hidden = rng.normal(size=(labels.size, 8)).astype(np.float32)
        hidden[:, 3] += 3.0 * labels
        return torch.from_numpy(hidden), labels

    assert 0.0 <= diagnostics.pause_readout(model, clips[:2], clips[2:]) <= 1.0
    monkeypatch.setattr(diagnostics, "_frame_states", revealing)
    assert diagnostics.pause_readout(model, clips[:2], clips[2:]) > 0.95


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "nope"], "no split 'nope'"),
        (["--max-clips", "0"], "--max-clips must be at least 1"),
        (["--temperature", "0"], "--temperature must be positive"),
    ],
)
def test_cli_diagnose_user_errors(data_path, checkpoint, capsys, extra, message):
    assert main(["diagnose", "--policy", str(checkpoint), "--dataset", str(data_path), *extra]) == 2
    assert message in capsys.readouterr().err
