"""`dyadic eval`: roll agents through the listener env on every clip of a split and print the metrics table."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate agents in closed loop: metrics table (paper Tables I/II) plus the oracle's criteria",
        description="Roll agents through dyadic_env/Listener-v0 on every clip of a split and print the metrics "
        "table; JSON, Markdown and TensorBoard scalars are saved under a run directory.",
    )  # fmt: skip
    parser.add_argument(
        "--agent",
        default="",
        help="baseline agents, comma-separated: random, random-train, nn, neutral, mirror, mean",
    )
    parser.add_argument(
        "--policy", default=None, help="a VLA checkpoint directory to evaluate as the row 'vla'"
    )
    parser.add_argument(
        "--dataset", default=None, help="dataset directory or synthetic:PRESET (e.g. synthetic:small)"
    )
    parser.add_argument(
        "--decode",
        default=None,
        help="how --policy decodes: sample, greedy, mean or mean_expression (default: the checkpoint's)",
    )
    parser.add_argument("--split", default=None, help="split to evaluate on (default: test)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seeds the agents and Diversity sampling (default: 0)"
    )
    parser.add_argument(
        "--max-clips", type=int, default=None, help="only the first N clips of the split (quick runs)"
    )
    parser.add_argument(
        "--run-dir",
        default=None,
        help="where to save results (default: runs/eval/{dataset}__{agents}__{seed}__{time})",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="a YAML file of EvalConfig fields; flags given override it"
    )
    parser.set_defaults(handler=run)


def build_config(args: argparse.Namespace):  # -> EvalConfig
    """EvalConfig from the YAML file (if any) overridden by the flags given."""
    from experiments.commands.train import load_config_fields
    from experiments.errors import UserError
    from experiments.evaluation import EvalConfig

    fields = load_config_fields(args.config, [])
    flags = {"agents": args.agent or None, "policy": args.policy, "policy_mode": args.decode,
             "dataset": args.dataset, "split": args.split, "seed": args.seed, "max_clips": args.max_clips,
             "run_dir": args.run_dir}  # fmt: skip
    fields.update({k: v for k, v in flags.items() if v is not None})
    if not fields.get("dataset"):
        raise UserError(
            "--dataset is required (a dataset directory or synthetic:PRESET, e.g. synthetic:small)"
        )
    try:
        return EvalConfig(**fields)
    except TypeError as e:
        raise UserError(f"config: {e}; see `dyadic eval --help` for the fields") from None
    except ValueError as e:
        raise UserError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from agents import agent_names, make_agent
    from dyadic_env.data import load_dataset
    from experiments.errors import UserError
    from experiments.evaluation import default_run_dir, evaluate_agents, save_results

    config = build_config(args)
    unknown = [a for a in config.agents if a not in agent_names()]
    if unknown:
        raise UserError(f"--agent: unknown {unknown}; choose from {', '.join(agent_names())}")
    dataset = load_dataset(config.dataset)
    if config.split not in dataset.splits:
        raise UserError(f"--split {config.split!r}: {dataset.path} has splits {list(dataset.splits)}")
    nn_kwargs = {"words_window_s": config.words_window_s}
    agents = {
        name: make_agent(name, dataset, config.seed, **(nn_kwargs if name == "nn" else {}))
        for name in config.agents
    }
    if config.policy:
        agents["vla"] = load_policy(config.policy, config.policy_mode)
    env_kwargs = {"context_frames": config.context_frames, "words_window_s": config.words_window_s}
    results = evaluate_agents(
        agents, dataset, config.split, config.seed, max_clips=config.max_clips, env_kwargs=env_kwargs
    )
    results["dataset"] = config.dataset
    run_dir = save_results(results, config.run_dir or default_run_dir(config), config)
    print(results["table"])
    print(f"\nsaved {run_dir}/results.json, results.md and TensorBoard scalars")
    return 0


def load_policy(path: str, mode: str | None = None):  # -> Agent
    from experiments.errors import UserError

    if not Path(path).exists():
        raise UserError(f"--policy {path}: no such checkpoint directory")
    try:
        from agents.vla.agent import VLAAgent
    except ImportError as e:
        raise UserError(
            f"--policy needs the VLA agent (agents.vla.VLAAgent), which failed to import: {e}"
        ) from None
    return VLAAgent.from_pretrained(path, mode=mode)
