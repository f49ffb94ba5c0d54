"""The README's claims that a fast check can hold to: its commands parse, its code runs, its tables and lists
match the code. The long claims (the quickstart, the evaluation table) are in ``test_readme_headlines.py``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


# Commands the README's text quotes in part (a flag without its value, a command without its arguments).
FRAGMENTS = {"dyadic --help", "dyadic feedback", "dyadic eval --decode", "dyadic data export --format minari"}


def _readme_commands() -> list[str]:
    """Every ``dyadic ...`` line of the README's bash blocks, and every complete one quoted in its text."""
    lines = [line.split("  #")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    quoted = [c for c in re.findall(r"`(dyadic [^`]+)`", README) if c not in FRAGMENTS and "..." not in c]
    return [c for c in lines + quoted if c.startswith("dyadic ")]


def test_the_readme_has_commands_to_check() -> None:
    assert len(_readme_commands()) >= 20


@pytest.mark.parametrize("command", _readme_commands())
def test_every_readme_command_parses(command: str) -> None:
    """Each command names a subcommand and flags that exist (parsed only; nothing runs)."""
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.handler)


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"quickstart", "data", "eval", "train", "bench", "rl", "feedback"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0
        assert "usage: dyadic " + name in capsys.readouterr().out


def test_the_layout_table_names_every_package() -> None:
    table = re.findall(r"^\| `(\w+)/` \|", README, flags=re.M)
    packages = sorted(p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name != "tests")
    assert sorted(table) == packages


def test_the_bench_list_is_every_benchmark() -> None:
    from experiments.bench import registry

    listed = re.search(r"`dyadic bench` lists them \(([^)]*)\)", README)
    assert listed is not None
    assert sorted(re.findall(r"`(\w+)`", listed.group(1))) == sorted(registry())


def test_the_frame_layout() -> None:
    from dyadic_env.expression_basis import EXPRESSION, FRAME_DIM, JAW_POSE, NECK_POSE

    assert "A frame is 56 float32 values: `0:50` expression, `50:53` neck rotation, `53:56` jaw" in README
    assert FRAME_DIM == 56
    layout = [EXPRESSION, NECK_POSE, JAW_POSE]
    assert layout == [slice(0, 50), slice(50, 53), slice(53, 56)]


def test_the_torch_pin() -> None:
    assert "torch is the\n2.13.0 CPU wheel" in README
    assert "torch==2.13.0+cpu" in (REPO / "requirements.lock").read_text().splitlines()


def test_the_quickstart_config_is_what_the_readme_describes() -> None:
    from dyadic_env.criteria import CRITERIA
    from experiments.configs import read_config

    config = read_config("quickstart_small.yaml")
    assert config["preset"] == "small" and config["feedback"]["samples"] == 8  # "8 sampled SFT rollouts"
    assert list(CRITERIA) == ["empathy", "appropriateness", "engagement", "naturalness"]
    algorithms = {row: spec["algorithm"] for row, spec in config["aligners"].items()}
    assert algorithms == {"SFT+DPO": "dpo", "Random-Prefer": "random_prefer", "SFT-Preferred": "sft_preferred",
                          "SFT+PPO": "ppo_rm"}  # fmt: skip
    assert config["headline"] == "SFT+DPO" and config["aligners"]["SFT+DPO"]["settings"]["nod_decisions"]
    assert read_config("sft_small.yaml")["model"]["gesture_frames"] == 16  # "Nods are gestures"
    context = read_config("sft_small_context.yaml")
    assert (
        context["model"]["expression_state"] is False and context["model"]["decode_mode"] == "mean_expression"
    )


@pytest.mark.slow
def test_the_readme_python_runs_and_does_what_its_comments_say() -> None:
    """The README's Python blocks, run in order, on what they name (``synthetic:small``)."""
    blocks = _blocks("python")
    assert len(blocks) == 3
    scope: dict = {}
    exec(blocks[0], scope)  # data: a clip, the tokenizer, tokens
    clip, tok, tokens = scope["clip"], scope["tok"], scope["tokens"]
    assert clip.speaker_motion.shape == (clip.num_frames, 56) and clip.listener_motion.dtype == np.float32
    assert tokens.shape == (clip.num_frames, 56) and tokens.dtype == np.int64 and tok.num_bins == 256
    train = np.concatenate([c.listener_motion for c in scope["ds"].split("train")])
    np.testing.assert_allclose(tok.low, np.quantile(train, 0.01, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tok.high, np.quantile(train, 0.99, axis=0), rtol=1e-5, atol=1e-6)
    exec(blocks[1], scope)  # one env
    assert {"speaker_motion", "listener_motion", "words", "mask", "step"} <= set(scope["obs"])
    space = scope["env"].action_space
    assert space.shape == (56,) and set(space.nvec.tolist()) == {256}
    assert np.isfinite(scope["reward"])
    exec(blocks[2], scope)  # the batched env
    assert scope["obs"]["listener_motion"].shape[0] == 64 and scope["rewards"].shape == (64,)
    single = scope["gym"].make("dyadic_env/Listener-v0", dataset="synthetic:small")
    for i in (0, 5, 63):  # env i draws its clips like a single env seeded 0 + i
        assert single.reset(seed=i)[1]["clip_id"] == scope["infos"]["clip_id"][i]


# A figure with its 95 % interval, as the generated pages write it: "+0.311 [+0.239, +0.383]", "0.830 [0.791, 0.870]".
INTERVAL = r"[+-]?\d+\.\d+ \[[+-]?\d+\.\d+, [+-]?\d+\.\d+\]"


def test_every_interval_the_docs_quote_is_on_a_generated_results_page() -> None:
    """Figures come from committed commands: each interval the README or a docs page quotes appears verbatim on a
    page of docs/results/ (written by the command that page names), so a rerun that changes it shows up here."""
    generated = " ".join(p.read_text() for p in (REPO / "docs" / "results").glob("*.md"))
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        quoted = re.findall(INTERVAL, page.read_text())
        missing = [figure for figure in quoted if figure not in generated]
        assert not missing, f"{page.name} quotes intervals no docs/results page has: {missing}"
