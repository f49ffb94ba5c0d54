"""`dyadic train TRAINER`: train a listener policy or a reward model (``sft``, ``dpo``, ``rm``, ``ppo``, and the
paper's baselines ``lm-listener`` and ``mmlhg``).

Every trainer reads a YAML config mapped onto its dataclass, with ``key=value`` overrides after it (values are
parsed as YAML, so ``max_steps=100``, ``model.head_hidden=64`` and ``val_split=null`` work). Without
``--config`` the alignment trainers read their shipped ``experiments/configs/*_small.yaml``, the settings the
quickstart uses. Each handler imports its heavy dependencies (torch, trl, SB3) when it runs, so ``dyadic --help``
stays fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a policy or reward model (sft, dpo, rm, ppo, lm-listener, mmlhg)",
        description="Train listener policies: supervised fine-tuning of the VLA (sft) and alignment trainers.",
    )  # fmt: skip
    trainers = parser.add_subparsers(dest="trainer", metavar="TRAINER", required=True)
    path = {"type": Path, "required": True}
    policy = ("--policy", {**path, "help": "SFT checkpoint directory (e.g. runs/sft_small/final)"})
    preferences = ("--preferences", {**path, "help": "preference dataset (dyadic feedback export)"})
    speakers = (
        "--dataset",
        {"default": None, "help": "speaker dataset (default: the one the preferences name)"},
    )
    _add_trainer(
        trainers, "sft", run_sft, "SFTConfig's own; e.g. experiments/configs/sft_small.yaml",
        [("--no-progress", {"action": "store_true", "help": "hide the progress bar"})],
        help="supervised fine-tuning of the VLA listener (paper eqs. 7-9)",
        description="Train the VLA by teacher forcing on ground-truth listeners. Resumes from the latest "
        "checkpoint in output_dir after a kill; the policy lands in OUTPUT_DIR/final.",
    )  # fmt: skip
    for variant, shown, paper in (("lm-listener", "LM-listener", "Ng et al., ICCV 2023"),
                                  ("mmlhg", "MMLHG", "Lai et al., CVPR 2025")):  # fmt: skip
        _add_trainer(
            trainers, variant, run_listener, f"experiments/configs/{variant.replace('-', '_')}_small.yaml",
            [("--no-progress", {"action": "store_true", "help": "hide the progress bar"})],
            help=f"the paper's {shown} baseline ({paper}): a motion VQ-VAE, then a small LM on its codes",
            description=f"Train the {variant} baseline (docs/baselines.md): the VQ-VAE over listener motion, then "
            "the language model that predicts the listener's codes from the speaker's words and motion. Resumes "
            "from the latest checkpoint in output_dir after a kill; the policy lands in OUTPUT_DIR/final "
            f"(`dyadic eval --agent {variant} --policy OUTPUT_DIR/final`).",
        )  # fmt: skip
    _add_trainer(
        trainers, "dpo", run_dpo, "experiments/configs/dpo_small.yaml",
        [policy, preferences, ("--out", {**path, "help": "directory for the aligned checkpoint"}), speakers],
        help="DPO of a VLA checkpoint on a preference dataset (paper eq. 11, trl's DPOTrainer)",
        description="Align an SFT checkpoint with preference pairs through trl's DPOTrainer; the reference is a "
        "frozen copy of the checkpoint. TensorBoard logs land in OUT/tb.",
    )  # fmt: skip
    _add_trainer(
        trainers, "rm", run_rm, "experiments/configs/rm_small.yaml",
        [preferences, speakers, ("--out", {**path, "help": "directory for the reward model"})],
        help="a Bradley-Terry reward-model ensemble on a preference dataset",
        description="Train r(observation, action) whose sums over trajectories explain the preference pairs.",
    )  # fmt: skip
    _add_trainer(
        trainers, "ppo", run_ppo, "experiments/configs/ppo_small.yaml",
        [policy, ("--reward-model", {**path, "help": "reward model directory (dyadic train rm)"}),
         ("--dataset", {"required": True, "help": "dataset directory or synthetic:PRESET (episodes replay it)"}),
         ("--out", {**path, "help": "directory for the tuned checkpoint"})],
        help="PPO (Stable-Baselines3) of a VLA checkpoint on a learned reward, KL-penalised to the SFT policy",
        description="Fine-tune the VLA with PPO in dyadic_env/Listener-v0 whose reward is a learned reward model.",
    )  # fmt: skip


def _add_trainer(
    trainers: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    config: str,
    arguments: list[tuple[str, dict[str, Any]]],
    *,
    help: str,
    description: str,
) -> None:
    """One ``dyadic train NAME`` subcommand: its own arguments, then ``--config`` (``config`` says what is read
    without it) and the ``key=value`` overrides."""
    parser = trainers.add_parser(name, help=help, description=description)
    for flag, options in arguments:
        parser.add_argument(flag, **options)
    add_config_arguments(parser, config)
    parser.set_defaults(handler=handler)


# --- config files and overrides, shared by the commands that read a config ------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """The ``--config FILE`` and ``key=value`` override arguments every trainer shares (``default`` says what
    is read without ``--config``)."""
    parser.add_argument("--config", type=Path, default=None, help=f"YAML config file (default: {default})")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="override config fields (YAML values), e.g. max_steps=100 model.head_hidden=64",
    )  # fmt: skip


def load_config_fields(config: Path | None, overrides: list[str]) -> dict[str, Any]:
    """Fields from the YAML file updated with ``key=value`` overrides (raises UserError on bad input).

    A dotted key sets one field of a section (``model.head_hidden=64``); a mapping value merges into the
    section key by key (``dpo={beta: 0.2}`` keeps the file's other DPO settings).
    """
    import yaml

    from experiments.configs import merge_fields, read_config

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
        path = key.strip().split(".")
        if not sep or not all(path):
            raise UserError(
                f"override {item!r}: expected KEY=VALUE, e.g. max_steps=100 or model.head_hidden=64"
            )
        try:
            change: Any = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UserError(f"override {item!r}: value is not valid YAML ({e})") from None
        for part in reversed(path):
            change = {part: change}
        fields = merge_fields(fields, change)
    return fields


def build_config(
    cls: Any, config: Path | None, default: str | None, overrides: list[str], **flags: Any
) -> Any:
    """``cls.from_dict`` of the YAML file (``experiments/configs/DEFAULT`` when none is given, from any working
    directory; no file when ``default`` is None), then ``key=value`` overrides, then the command's flags that
    were set (not None)."""
    from experiments.configs import CONFIGS

    if config is None and default is not None:
        config = CONFIGS / default
    values = load_config_fields(config, overrides)
    values.update({key: value for key, value in flags.items() if value is not None})
    try:
        return cls.from_dict(values)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None


def _check_dir(path: Path, what: str, hint: str) -> None:
    if not path.is_dir():
        raise UserError(f"{what} {path}: no such directory; {hint}")


def _preferences(path: Path, dataset_arg: str | None) -> tuple[Any, Any]:
    """The preference dataset at ``path`` and the speaker dataset it (or ``--dataset``) names."""
    from dyadic_env.data import load_dataset
    from human_feedback.preferences import PreferenceDataset

    _check_dir(path, "--preferences", "create one with `dyadic feedback export`")
    try:
        prefs = PreferenceDataset.load(path)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    spec = dataset_arg or prefs.dataset_spec
    if not spec:
        raise UserError(f"--preferences {path} names no dataset; pass --dataset DIR_OR_SYNTHETIC_PRESET")
    if not prefs.pairs:
        raise UserError(f"--preferences {path} holds no pairs; collect more ratings or lower --min-margin")
    return prefs, load_dataset(spec)


# --- sft -------------------------------------------------------------------------------------------------------
def run_sft(args: argparse.Namespace) -> int:
    from agents.vla.sft import SFTConfig, train_sft

    config = build_config(SFTConfig, args.config, None, args.overrides)
    try:
        final = train_sft(config, progress=not args.no_progress)
    except (KeyError, ValueError) as e:
        raise UserError(str(e).strip("'\"")) from None
    print(f"sft: policy saved to {final} (TensorBoard: {Path(config.output_dir) / 'tb'})")
    return 0


# --- lm-listener, mmlhg ----------------------------------------------------------------------------------------
def run_listener(args: argparse.Namespace) -> int:
    from types import SimpleNamespace

    from agents.listeners.config import ListenerTrainConfig
    from agents.listeners.training import train_listener

    variant = args.trainer
    reader = SimpleNamespace(from_dict=lambda values: ListenerTrainConfig.from_dict(values, variant))
    config = build_config(reader, args.config, f"{variant.replace('-', '_')}_small.yaml", args.overrides)
    try:
        final = train_listener(config, progress=not args.no_progress)
    except (KeyError, ValueError) as e:
        raise UserError(str(e).strip("'\"")) from None
    tensorboard = Path(config.output_dir) / "tb"
    if not final.exists():
        print(
            f"{variant}: stopped before the last step; the same command resumes it (TensorBoard: {tensorboard})"
        )
        return 0
    print(f"{variant}: policy saved to {final} (TensorBoard: {tensorboard})")
    return 0


# --- dpo -------------------------------------------------------------------------------------------------------
def run_dpo(args: argparse.Namespace) -> int:
    from agents.alignment.dpo import DPOTrainingConfig, train_dpo

    config = build_config(DPOTrainingConfig, args.config, "dpo_small.yaml", args.overrides)
    _check_dir(args.policy, "--policy", "train one with `dyadic train sft`")
    prefs, dataset = _preferences(args.preferences, args.dataset)
    out, metrics = train_dpo(args.policy, prefs.pairs, dataset.clip, config, args.out)
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("rewards/", "loss"))}
    print(f"dpo: {len(prefs.pairs)} pairs, last step {json.dumps(shown)}")
    print(f"dpo: aligned policy saved to {out} (TensorBoard: {out / 'tb'})")
    return 0


# --- rm --------------------------------------------------------------------------------------------------------
def run_rm(args: argparse.Namespace) -> int:
    from experiments.pipelines.trainers import RewardModelRunConfig, train_reward_model_from_preferences

    config = build_config(RewardModelRunConfig, args.config, "rm_small.yaml", args.overrides)
    prefs, dataset = _preferences(args.preferences, args.dataset)
    figures = train_reward_model_from_preferences(prefs, dataset, config, args.out)
    print(
        f"rm: {int(figures['num_train_pairs'])} training pairs, train accuracy {figures['train_accuracy']:.3f}, "
        f"held-out accuracy {figures['val_accuracy']:.3f} ({int(figures['num_val_pairs'])} pairs)"
    )
    print(f"rm: reward model saved to {args.out}")
    return 0


# --- ppo -------------------------------------------------------------------------------------------------------
def run_ppo(args: argparse.Namespace) -> int:
    from experiments.pipelines.trainers import PPORunConfig, train_ppo_on_learned_reward

    config = build_config(PPORunConfig, args.config, "ppo_small.yaml", args.overrides)
    _check_dir(args.policy, "--policy", "train one with `dyadic train sft`")
    _check_dir(args.reward_model, "--reward-model", "train one with `dyadic train rm`")
    try:
        out = train_ppo_on_learned_reward(args.policy, args.reward_model, args.dataset, config, args.out)
    except (KeyError, ValueError) as e:
        raise UserError(str(e).strip("'\"")) from None
    print(f"ppo: tuned policy saved to {out} (TensorBoard: {out / 'tb'})")
    return 0
