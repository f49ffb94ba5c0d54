"""`dyadic train TRAINER`: train a listener policy (``sft``; alignment trainers add ``dpo``, ``rm``, ``ppo``).

Every trainer reads a YAML config mapped onto its dataclass, with ``key=value`` overrides after it (values are
parsed as YAML, so ``max_steps=100``, ``backbone={hidden_size: 64}`` and ``val_split=null`` work). Each
trainer is one subparser whose handler imports its own module, so ``dyadic --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a policy or reward model (sft; dpo, rm, ppo where installed)",
        description="Train listener policies: supervised fine-tuning of the VLA (sft) and alignment trainers.",
    )  # fmt: skip
    trainers = parser.add_subparsers(dest="trainer", metavar="TRAINER", required=True)
    register_sft(trainers)
    from experiments.pipelines.trainers import (
        register_alignment_trainers,
    )  # dpo, rm, ppo (alignment engineer)

    register_alignment_trainers(trainers)


def add_config_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """The ``--config FILE`` and ``key=value`` override arguments every trainer shares."""
    parser.add_argument("--config", type=Path, default=None, help=f"YAML config file, e.g. {example}")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="override config fields (YAML values), e.g. max_steps=100 output_dir=runs/x",
    )  # fmt: skip


def load_config_fields(config: Path | None, overrides: list[str]) -> dict[str, Any]:
    """Fields from the YAML file updated with ``key=value`` overrides (raises UserError on bad input)."""
    import yaml

    from experiments.cli import UserError
    from experiments.configs import read_config

    fields: dict[str, Any] = {}
    if config is not None:
        if not config.exists():
            raise UserError(f"--config {config}: no such file (configs live in experiments/configs/)")
        try:
            fields = read_config(config)
        except ValueError as e:
            raise UserError(f"--config {config}: {e}") from None
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r}: expected KEY=VALUE, e.g. max_steps=100")
        try:
            fields[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UserError(f"override {item!r}: value is not valid YAML ({e})") from None
    return fields


def build_config(cls: Any, config: Path | None, default: str, overrides: list[str], **flags: Any) -> Any:
    """``cls.from_dict`` of the YAML file (``experiments/configs/DEFAULT`` when none is given, from any working
    directory), then ``key=value`` overrides, then the command's flags that were set (not None)."""
    from experiments.cli import UserError
    from experiments.configs import CONFIGS

    values = load_config_fields(config if config is not None else CONFIGS / default, overrides)
    values.update({key: value for key, value in flags.items() if value is not None})
    try:
        return cls.from_dict(values)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None


# --- sft -------------------------------------------------------------------------------------------------------
def register_sft(trainers: argparse._SubParsersAction) -> None:
    sft = trainers.add_parser(
        "sft", help="supervised fine-tuning of the VLA listener (paper eqs. 7-9)",
        description="Train the VLA by teacher forcing on ground-truth listeners. Resumes from the latest "
        "checkpoint in output_dir after a kill; the policy lands in OUTPUT_DIR/final.",
    )  # fmt: skip
    add_config_arguments(sft, "experiments/configs/sft_small.yaml")
    sft.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sft.set_defaults(handler=run_sft)


def run_sft(args: argparse.Namespace) -> int:
    from agents.vla.sft import SFTConfig, train_sft
    from experiments.cli import UserError

    fields = load_config_fields(args.config, args.overrides)
    try:
        config = SFTConfig.from_dict(fields)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    try:
        final = train_sft(config, progress=not args.no_progress)
    except (KeyError, ValueError) as e:
        raise UserError(str(e).strip("'\"")) from None
    print(f"sft: policy saved to {final} (TensorBoard: {Path(config.output_dir) / 'tb'})")
    return 0
