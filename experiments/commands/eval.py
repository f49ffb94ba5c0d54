"""`dyadic eval`: roll agents through the listener env on every clip of a split and print the metrics tables:
the paper's, REACT's (on datasets with appropriate-reaction sets; ``--samples K`` predictions per clip) and,
with ``--validity``, how well each metric tracks the synthetic oracle."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate agents in closed loop: metrics table (paper Tables I/II) plus the oracle's criteria",
        description="Roll agents through dyadic_env/Listener-v0 on every clip of a split and print the metrics "
        "table; JSON, Markdown and TensorBoard scalars are saved under a run directory.",
    )  # fmt: skip
    parser.add_argument(
        "--agent",
        default="",
        help="baseline agents, comma-separated: random, random-train, nn, neutral, mirror, mean, and REACT's "
        "meanfr (= mean), meanseq, mime (= mirror); lm-listener or mmlhg with --policy DIR (a checkpoint of "
        "`dyadic train lm-listener` / `mmlhg`); a plug-in agent as package.module:factory, where "
        "factory(dataset, seed, tokenizer) returns an agent",
    )
    parser.add_argument(
        "--policy", default=None,
        help="a VLA checkpoint directory to evaluate as the row 'vla', or NAME=DIR[,NAME=DIR...] for named rows",
    )  # fmt: skip
    parser.add_argument(
        "--dataset", default=None, help="dataset directory or synthetic:PRESET (e.g. synthetic:small)"
    )
    parser.add_argument(
        "--decode",
        default=None,
        help="how --policy decodes: sample, greedy, mean or mean_expression (default: the checkpoint's)",
    )
    parser.add_argument(
        "--temperature", type=float, default=None,
        help="sampling temperature of --policy checkpoints (default: each checkpoint's decode_temperature)",
    )  # fmt: skip
    parser.add_argument(
        "--tell-listener", default=None, metavar="ROW[,ROW]",
        help="--policy rows (MMLHG checkpoints) told each clip's listener, as MMLHG's paper animates a given "
        "identity; the env tells no agent, so these rows know more than the others",
    )  # fmt: skip
    parser.add_argument("--split", default=None, help="split to evaluate on (default: test)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seeds the agents and Diversity sampling (default: 0)"
    )
    parser.add_argument(
        "--seeds", type=int, default=None,
        help="N: repeat the evaluation with seeds SEED..SEED+N-1 and report every row as mean ± 95 %% CI (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--max-clips", type=int, default=None, help="only the first N clips of the split (quick runs)"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="K, predictions per clip, each from its own seed (REACT uses 10; default 1); REACT's table needs a "
        "dataset with appropriate sets (`dyadic data synth` makes them; `dyadic data appropriate` for others)",
    )
    parser.add_argument(
        "--validity",
        action="store_true",
        default=None,
        help="also report each metric's rank correlation with the oracle over the agents (synthetic data, >= 3 agents)",
    )
    parser.add_argument(
        "--frdist-groups", choices=("frame", "react"), default=None,
        help="FRDist over the whole frame (default) or REACT's per-group weighted DTW",
    )  # fmt: skip
    parser.add_argument(
        "--report", default=None, help="also write the Markdown report here (e.g. docs/results/metrics.md)"
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
    from experiments.evaluation import EvalConfig

    fields = load_config_fields(args.config, [])
    flags = {"agents": args.agent or None, "policy": args.policy, "policy_mode": args.decode,
             "policy_temperature": args.temperature, "tell_listener": args.tell_listener,
             "dataset": args.dataset, "split": args.split, "seed": args.seed, "seeds": args.seeds,
             "max_clips": args.max_clips, "samples": args.samples, "validity": args.validity, "frdist_groups": args.frdist_groups,
             "report": args.report, "run_dir": args.run_dir}  # fmt: skip
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
    from agents import agent_names
    from dyadic_env.data import load_dataset
    from dyadic_env.rewards import is_synthetic
    from experiments.evaluation import default_run_dir, report_markdown, save_results

    config = build_config(args)
    unknown = [a for a in config.agents if a not in agent_names() and ":" not in a]
    if unknown:
        raise UserError(
            f"--agent: unknown {unknown}; choose from {', '.join(agent_names())}, or name a plug-in as "
            "package.module:factory"
        )
    dataset = load_dataset(config.dataset)
    if config.split not in dataset.splits:
        raise UserError(f"--split {config.split!r}: {dataset.path} has splits {list(dataset.splits)}")
    if config.validity and not is_synthetic(dataset):
        raise UserError(
            f"--validity ranks metrics against the synthetic oracle; {dataset.path} is not synthetic"
        )
    if config.validity and len(config.agents) + len(config.policies()) < 3:
        raise UserError("--validity ranks agents: give at least 3 (e.g. --agent random,nn,mean,mime,meanseq)")
    results = evaluate_seeds(config, dataset)
    run_dir = save_results(results, config.run_dir or default_run_dir(config), config)
    if config.report:
        Path(config.report).parent.mkdir(parents=True, exist_ok=True)
        Path(config.report).write_text(report_markdown(results, command=config.command()))
    print(results["table"])
    if results.get("seeds_table"):
        print(f"\nMean ± 95 % CI over seeds {results['seeds']}:\n{results['seeds_table']}")
    if results.get("react_table"):
        print(f"\nREACT (K = {config.samples} predictions per clip):\n{results['react_table']}")
    elif config.samples > 1:
        print(
            f"\n{dataset.path} has no appropriate sets, so no REACT table (`dyadic data appropriate` builds them)"
        )
    if results.get("validity_table"):
        print(f"\nMetric validity (agreement with the oracle):\n{results['validity_table']}")
    note = speaker_only_note(dataset, config.split, config.max_clips)
    if note:
        print(f"\nnote: {note}")
    print(f"\nsaved {run_dir}/results.json, results.md and TensorBoard scalars")
    return 0


def speaker_only_note(dataset, split: str, max_clips: int | None) -> str | None:
    """Say so when evaluated clips are speaker-only (imported without a recorded listener)."""
    rows = dataset.split(split).rows[:max_clips]
    alone = sum(bool(dataset.entry(int(r)).get("meta", {}).get("speaker_only")) for r in rows)
    if not alone:
        return None
    return (
        f"{alone} of the {len(rows)} clips are speaker-only (no recorded listener; its frames are the neutral face), "
        "so L2, FD and P-FD there compare with a placeholder, not a person"
    )


def evaluate_seeds(config, dataset) -> dict:  # config: EvalConfig
    """The evaluation of the first seed; with ``config.seeds > 1`` also every row's mean and CI over the seeds
    (agents rebuilt for each seed)."""
    from agents import make_agent
    from agents.listeners.agent import TOLD
    from dyadic_env.envs.compatibility import IncompatibleDataError
    from experiments.evaluation import evaluate_agents, seeds_table, summarize_seeds

    nn_kwargs = {"words_window_s": config.words_window_s}
    env_kwargs = {"context_frames": config.context_frames, "words_window_s": config.words_window_s}
    seeds = list(range(config.seed, config.seed + config.seeds))
    runs = []
    for seed in seeds:
        agents = {
            name: plugin_agent(name, dataset, seed)
            if ":" in name
            else checkpoint_agent(name, config, dataset, seed)
            if name in config.checkpoint_agents()
            else make_agent(name, dataset, seed, **(nn_kwargs if name == "nn" else {}))
            for name in config.agents
        }
        for name, path in config.policies().items():
            told = {"identity": TOLD} if name in config.tell_listener else {}
            agents[name] = load_policy(path, config.policy_mode, config.policy_temperature, **told)
            if told:
                check_listeners_known(name, agents[name], dataset, config)
        try:
            runs.append(evaluate_agents(
                agents, dataset, config.split, seed, max_clips=config.max_clips, env_kwargs=env_kwargs,
                samples=config.samples, validity=config.validity, frdist_groups=config.frdist_groups,
            ))  # fmt: skip
        except IncompatibleDataError as e:
            raise UserError(str(e)) from None
    results = runs[0]
    results["dataset"] = config.dataset
    if len(runs) > 1:
        rows = [run["rows"] for run in runs]
        summary = summarize_seeds(rows)
        results.update(seeds=seeds, seed_rows=summary, seeds_table=seeds_table(summary), rows_per_seed=rows)
    return results


def check_listeners_known(name: str, agent, dataset, config) -> None:  # agent: CodeListenerAgent
    """Refuse to tell a row listeners it has no identity for (a told MMLHG answers as a training listener)."""
    from dyadic_env.data import load_dataset

    data = load_dataset(dataset)
    listeners = {data.clip(c).listener_id for c in data.split(config.split).clip_ids[: config.max_clips]}
    unknown = sorted(listeners - set(agent.model.config.identities))
    if unknown:
        raise UserError(
            f"--tell-listener {name}: the {config.split} split's listeners {unknown[:5]}"
            f"{' ...' * (len(unknown) > 5)} are not among the checkpoint's training listeners; a told MMLHG "
            "answers as a training listener only (evaluate it untold, or on clips of training listeners)"
        )


def plugin_agent(spec: str, dataset, seed: int):  # -> Agent
    """A plug-in agent ``package.module:factory``: ``factory(dataset, seed, tokenizer)``, as
    :func:`agents.register_agent` takes it."""
    import importlib

    from agents import Agent
    from dyadic_env.envs.listener import resolve_tokenizer

    module, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(
            f"--agent {spec}: cannot load the plug-in factory ({e}); expected package.module:factory"
        ) from None
    agent = factory(dataset, seed, resolve_tokenizer(None, dataset))
    if not isinstance(agent, Agent):
        raise UserError(
            f"--agent {spec}: the factory returned {type(agent).__name__}, not an agent (reset, act)"
        )
    return agent


def checkpoint_agent(name: str, config, dataset, seed: int):  # config: EvalConfig -> Agent
    """A registered agent that runs ``--policy``'s checkpoint (``--agent lm-listener --policy DIR``)."""
    from agents import make_agent

    if not Path(config.policy).exists():
        raise UserError(f"--policy {config.policy}: no such checkpoint directory")
    try:
        return make_agent(
            name, dataset, seed, checkpoint=config.policy, mode=config.policy_mode,
            temperature=config.policy_temperature,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        raise UserError(f"--agent {name} --policy {config.policy}: {e}") from None


def load_policy(path: str, mode: str | None = None, temperature: float | None = None, **kwargs):  # -> Agent
    """The agent of a checkpoint directory of any kind (VLA, LM-listener, MMLHG; :mod:`agents.checkpoints`);
    ``kwargs`` go to the agent (``identity`` to an MMLHG one)."""
    if not Path(path).exists():
        raise UserError(f"--policy {path}: no such checkpoint directory")
    try:
        from agents.checkpoints import checkpoint_kind, load_checkpoint_agent
    except ImportError as e:
        raise UserError(
            f"--policy needs the policy agents (agents.checkpoints), which failed to import: {e}"
        ) from None
    try:
        if kwargs and checkpoint_kind(path) == "vla":
            raise ValueError(f"{', '.join(kwargs)} applies to MMLHG checkpoints, and this is a VLA one")
        return load_checkpoint_agent(path, mode=mode, temperature=temperature, **kwargs)
    except ValueError as e:
        raise UserError(f"--policy {path}: {e}") from None
