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


def _load_sft(fields):
    from agents.vla.sft import SFTConfig

    return SFTConfig.from_dict(fields)


def _load_dpo(fields):
    from agents.alignment.dpo import DPOTrainingConfig

    return DPOTrainingConfig.from_dict(fields)


def _load_rm(fields):
    from experiments.pipelines.trainers import RewardModelRunConfig

    return RewardModelRunConfig.from_dict(fields)


def _load_ppo(fields):
    from experiments.pipelines.trainers import PPORunConfig

    return PPORunConfig.from_dict(fields)


def _load_quickstart(fields):
    from experiments.pipelines.quickstart import QuickstartConfig

    return QuickstartConfig.from_dict(fields)  # its __post_init__ builds every stage's config too


def _load_benchmark(fields):
    from experiments.benchmark.protocol import BenchmarkConfig
    from experiments.pipelines.aligners import load_algorithm

    config = BenchmarkConfig.from_dict(fields)
    for name in config.algorithms:  # every row's algorithm and settings build
        load_algorithm(*config.spec(name))
    return config


def _load_eval(fields, path):
    from experiments.cli import build_parser
    from experiments.commands.eval import build_config

    return build_config(build_parser().parse_args(["eval", "--config", str(path)]))


def _load_rl(fields):
    from experiments.rl_reference import RLConfig

    return RLConfig(**fields)


def _load_episode_ppo(fields):
    from agents.alignment.episode_ppo_config import EpisodePPOConfig
    from dyadic_env.config import config_from_dict

    # As train_episode_ppo_stage reads it.
    return config_from_dict(EpisodePPOConfig, fields, "episode ppo config")


def _load_listener(fields):
    from agents.listeners.config import ListenerTrainConfig

    return ListenerTrainConfig.from_dict(fields)


LOADERS = {"sft_": _load_sft, "dpo_": _load_dpo, "rm_": _load_rm, "ppo_": _load_ppo, "quickstart_": _load_quickstart,
           "lm_listener_": _load_listener, "mmlhg_": _load_listener, "ablations_": _load_benchmark, "benchmark_": _load_benchmark, "eval": _load_eval, "rl_": _load_rl,
           "episode_ppo_": _load_episode_ppo}  # fmt: skip


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_through_its_real_loader(path):
    loader = next((f for prefix, f in LOADERS.items() if path.name.startswith(prefix)), None)
    assert loader is not None, f"{path.name}: no loader known; add its config class to LOADERS"
    fields = read_config(path.name)  # a shipped config's name is enough
    config = loader(fields, path) if loader is _load_eval else loader(fields)
    assert config is not None and fields


def test_the_shipped_dpo_settings_agree_with_the_quickstart_and_the_benchmark():
    dpo = _load_dpo({**read_config("dpo_small.yaml"), "logging_steps": 5})
    quickstart = _load_quickstart(read_config("quickstart_small.yaml"))
    benchmark = _load_benchmark(read_config("benchmark_alignment_small.yaml"))
    assert (
        _load_dpo(quickstart.aligners["SFT+DPO"]["settings"])
        == _load_dpo(benchmark.spec("dpo_nods")[1])
        == dpo
    )
    assert quickstart.aligners["Random-Prefer"]["settings"] == benchmark.spec("random_prefer")[1]
    assert _load_benchmark(read_config("ablations_small.yaml")).spec("dpo_nods") == benchmark.spec("dpo_nods")


def test_an_older_flat_rm_config_still_loads_into_the_sections():
    flat = {"epochs": 5, "ensemble_size": 2, "speaker_frames": 8, "seed": 3, "num_threads": 1}
    config = _load_rm(flat)
    assert (config.training.epochs, config.training.seed, config.num_threads) == (5, 3, 1)
    assert (config.model.ensemble_size, config.model.features.speaker_frames) == (2, 8)
    assert config.training.criteria_weight == 0.1  # the reward model's own default, no longer hidden
    with pytest.raises(ValueError, match="seed is given twice"):
        _load_rm({"seed": 1, "training": {"seed": 2}})


def test_a_users_config_may_start_from_a_shipped_one(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "base: sft_small_context.yaml\nmax_steps: 10\nmodel: {head_hidden: 64}\n"
    )
    fields = read_config(tmp_path / "mine.yaml")
    assert (
        fields["max_steps"] == 10 and fields["model"]["expression_state"] is False
    )  # from sft_small_context
    assert fields["model"]["head_hidden"] == 64  # a section merges key by key down the base chain
    assert fields["model"]["gesture_frames"] == read_config("sft_small.yaml")["model"]["gesture_frames"]


def test_overrides_set_one_field_of_a_section_or_merge_a_mapping():
    from experiments.commands.train import load_config_fields

    fields = load_config_fields(
        CONFIGS / "sft_small.yaml", ["model.head_hidden=64", "model={decode_mode: greedy}"]
    )
    assert fields["model"]["head_hidden"] == 64 and fields["model"]["decode_mode"] == "greedy"
    assert fields["model"]["gesture_frames"] == 16  # the file's other model settings stay
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        load_config_fields(None, ["model.=3"])


def test_eval_and_feedback_configs_read_the_same_way(tmp_path):
    from experiments.cli import build_parser
    from experiments.commands.eval import build_config

    (tmp_path / "mine.yaml").write_text("base: eval.yaml\nsplit: val\n")
    config = build_config(build_parser().parse_args(["eval", "--config", str(tmp_path / "mine.yaml")]))
    assert config.split == "val"
    assert config.agents == read_config("eval.yaml")["agents"]  # from its base
    (tmp_path / "bad.yaml").write_text("- 1\n")
    with pytest.raises(UserError, match=r"bad\.yaml: expected a mapping of fields"):
        build_config(build_parser().parse_args(["eval", "--config", str(tmp_path / "bad.yaml")]))


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
