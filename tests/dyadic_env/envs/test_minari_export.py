"""`dyadic data export --format minari`: any agent's or policy's closed-loop rollouts as a Minari dataset that
minari.load_dataset reads back (Minari's data directory kept under tmp_path)."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic_env.data import load_dataset
from dyadic_env.envs.testing import write_random_walk_dataset
from experiments.cli import main

minari = pytest.importorskip("minari")


@pytest.fixture
def data_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return write_random_walk_dataset(tmp_path / "d", frames=(20, 30), splits={"train": 4, "test": 3})


def test_export_mirror_rollouts_reads_back(data_path, capsys):
    args = ["data", "export", "--format", "minari", "--dataset", str(data_path), "--agent", "mirror",
            "--id", "dyadic/listener-rw/mirror-v0"]  # fmt: skip
    assert main(args) == 0
    assert "3 episodes" in capsys.readouterr().out
    exported = minari.load_dataset("dyadic/listener-rw/mirror-v0")
    dataset = load_dataset(data_path)
    clips = dataset.split("test")
    assert exported.total_episodes == 3 and exported.total_steps == int(clips.lengths.sum())
    tokenizer = dataset.tokenizer()
    for episode, clip in zip(exported.iterate_episodes(), clips):
        n = clip.num_frames
        assert episode.actions.shape == (n, 56) and episode.rewards.shape == (n,)
        assert episode.terminations[-1] and not episode.terminations[:-1].any()
        # The mirror places the speaker's current frame: its tokens are the speaker's.
        np.testing.assert_array_equal(episode.actions, tokenizer.encode(clip.speaker_motion))
        np.testing.assert_array_equal(episode.observations["speaker_motion"][:-1, -1], clip.speaker_motion)
        assert len(episode.observations["words"]) == n + 1
    env = exported.recover_environment()  # the env is recorded by the dataset's path
    obs, _ = env.reset(options={"clip_id": clips.clip_ids[0]})
    assert obs["speaker_motion"].shape == (32, 56)
    assert main(args) == 2 and "dyadic/listener-rw/mirror-v0" in capsys.readouterr().err  # no overwrite


def test_export_plugin_agent_and_vla_policy(data_path, tmp_path):
    plugin = ["data", "export", "--dataset", str(data_path), "--agent", "tests.experiments.plugin_agent:make",
              "--id", "plugin-v0", "--max-clips", "2"]  # fmt: skip
    assert main(plugin) == 0
    exported = minari.load_dataset("plugin-v0")
    assert exported.total_episodes == 2
    assert (next(exported.iterate_episodes()).actions == 128).all()

    from agents.vla.factory import model_for_dataset

    tiny = {"backbone": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "num_key_value_heads": 2}, "head_hidden": 32,
            "projector_hidden": 32}  # fmt: skip
    model_for_dataset(load_dataset(data_path), **tiny).save_pretrained(tmp_path / "vla")
    policy = ["data", "export", "--dataset", str(data_path), "--policy", str(tmp_path / "vla"), "--id", "vla-v0",
              "--max-clips", "1", "--split", "train"]  # fmt: skip
    assert main(policy) == 0
    episode = next(minari.load_dataset("vla-v0").iterate_episodes())
    assert episode.actions.shape[1] == 56 and np.isfinite(episode.rewards).all()
    assert (
        main(["data", "export", "--dataset", str(data_path), "--id", "x-v0"]) == 2
    )  # neither agent nor policy
