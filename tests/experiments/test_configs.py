"""Reading YAML configs: ``base`` chains, overrides and the errors a user can make."""

from __future__ import annotations

import re

import pytest

from experiments.configs import CONFIGS, read_config
from experiments.errors import UserError


def test_a_config_overrides_its_base(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\ny: 2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\ny: 3\n")
    (tmp_path / "c.yaml").write_text("base: sub/b.yaml\nz: 4\n")
    assert read_config(tmp_path / "c.yaml") == {"x": 1, "y": 3, "z": 4}


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "form a cycle"),
        ({"a.yaml": "base: missing.yaml\n"}, r"missing.yaml \(the base of .*a.yaml\): no such config"),
        ({"a.yaml": "- 1\n- 2\n"}, "expected a mapping of fields, found list"),
        ({"a.yaml": "x: [1\n"}, "not valid YAML"),
        ({"a.yaml": "base: 3\n"}, "'base' must name a YAML file"),
    ],
)
def test_bad_configs_name_the_file_at_fault(tmp_path, files, match):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=match):
        read_config(tmp_path / "a.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("sft_*.yaml")))
def test_every_shipped_sft_config_builds(name):
    from agents.vla.sft import SFTConfig

    config = SFTConfig.from_dict(read_config(name))  # a shipped config's name is enough
    assert config.max_steps > 0


def test_a_users_config_may_start_from_a_shipped_one(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: sft_small_context.yaml\nmax_steps: 10\n")
    fields = read_config(tmp_path / "mine.yaml")
    assert fields["max_steps"] == 10 and fields["expression_state"] is False  # from sft_small_context
    assert fields["gesture_frames"] == read_config("sft_small.yaml")["gesture_frames"]  # from its base


def test_eval_and_feedback_configs_read_the_same_way(tmp_path):
    import argparse

    from experiments.commands.eval import build_config

    (tmp_path / "mine.yaml").write_text("base: eval.yaml\nsplit: val\n")
    args = argparse.Namespace(config=tmp_path / "mine.yaml", agent="", policy=None, decode=None, dataset=None,
                              split=None, seed=None, max_clips=None, run_dir=None)  # fmt: skip
    config = build_config(args)
    assert config.split == "val" and "mean" in config.agents and config.dataset == "synthetic:small"
    (tmp_path / "bad.yaml").write_text("- 1\n")
    with pytest.raises(UserError, match=r"bad\.yaml: expected a mapping of fields"):
        build_config(argparse.Namespace(**{**vars(args), "config": tmp_path / "bad.yaml"}))


def test_train_names_the_config_at_fault(tmp_path):
    from experiments.commands.train import load_config_fields

    (tmp_path / "a.yaml").write_text("base: nope.yaml\n")
    with pytest.raises(UserError, match=r"--config .*a.yaml: .*nope.yaml .*no such config"):
        load_config_fields(tmp_path / "a.yaml", [])


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["train", "rm", "--preferences", "{tmp}/none", "--out", "{tmp}/rm"],
            "--preferences .*none: no such directory",
        ),
        (
            ["train", "dpo", "--policy", "{tmp}/none", "--preferences", "{tmp}", "--out", "{tmp}/dpo"],
            "--policy .*none: no such directory",
        ),
        (
            [
                "train",
                "ppo",
                "--policy",
                "{tmp}",
                "--reward-model",
                "{tmp}/none",
                "--dataset",
                "synthetic:tiny",
                "--out",
                "{tmp}/ppo",
            ],
            "--reward-model .*none: no such directory",
        ),
        (
            ["train", "dpo", "--policy", "{tmp}", "--preferences", "{tmp}", "--out", "{tmp}/dpo", "beta=-1"],
            "beta must be > 0",
        ),
    ],
)
def test_alignment_trainers_name_the_bad_argument(tmp_path, capsys, argv, match):
    from experiments.cli import main

    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_train_dpo_without_a_config_uses_the_shipped_one():
    from agents.alignment.dpo import DPOTrainingConfig
    from experiments.commands.train import build_config

    shipped = DPOTrainingConfig.from_dict(read_config("dpo_small.yaml"))
    assert build_config(DPOTrainingConfig, None, "dpo_small.yaml", []) == shipped
    assert build_config(DPOTrainingConfig, None, "dpo_small.yaml", ["beta=0.2"]).beta == 0.2
