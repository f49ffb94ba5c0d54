"""`dyadic benchmark alignment`: the versioned alignment benchmark (algorithms x label budgets x seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.errors import UserError

DEFAULT_CONFIG = "benchmark_alignment_small.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="reproducible benchmarks of alignment algorithms (see `dyadic benchmark alignment -h`)",
    )
    kinds = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    alignment = kinds.add_parser(
        "alignment",
        help="algorithms x label budgets x seeds from one SFT checkpoint, with ceilings and 95%% CIs",
        description="From one named SFT checkpoint, collect rated candidate groups per seed, train every "
        "algorithm at every label budget, evaluate on the test split, measure the ceilings, and write a table "
        "with 95 % intervals and a label-efficiency plot. Resumable: finished cells are never recomputed.",
    )  # fmt: skip
    alignment.add_argument(
        "--config", type=Path, default=None, help=f"YAML (default experiments/configs/{DEFAULT_CONFIG})"
    )
    alignment.add_argument("--out", type=Path, default=None, help="results folder (default from the config)")
    alignment.add_argument("--sft", default=None, help="the SFT checkpoint every cell starts from")
    alignment.add_argument("--seeds", type=int, default=None, help="number of seeds (0 .. N-1)")
    alignment.add_argument(
        "--algo", action="append", default=None, metavar="NAME|package.module:Name",
        help="run only these algorithms (repeatable); a package.module:Name adds a plug-in algorithm",
    )  # fmt: skip
    alignment.add_argument(
        "--ray", default=None, help="run cells as Ray tasks: 'local', 'auto' or an address"
    )
    alignment.add_argument(
        "--no-ceilings",
        action="store_true",
        help="skip the ceilings (e.g. in a second process sharing --out)",
    )
    alignment.add_argument(
        "--report-only", action="store_true", help="write the table from the finished cells; run nothing"
    )
    alignment.add_argument(
        "--policies-from", type=Path, default=None, metavar="DIR",
        help="evaluate the policies this results folder trained (same protocol but for eval, e.g. the val "
        "folder) instead of training them again",
    )  # fmt: skip
    alignment.add_argument("--report-to", type=Path, default=None, help="also write the results page here")
    alignment.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="override config fields, e.g. budgets=[120]"
    )
    alignment.set_defaults(handler=run_alignment)
    _register_reward_model(kinds)


def _register_reward_model(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "reward-model",
        help="a reward model's held-out pair accuracy against the rated groups it learns from",
        description="From one seed's collection of `dyadic benchmark alignment` (OUT/feedback/sS), hold out the "
        "last groups, train the reward model on the first n groups for each n, and report its accuracy on the "
        "held-out groups' pairs over several seeds (experiments/benchmark/reward_curve.py).",
    )  # fmt: skip
    parser.add_argument(
        "--collection", required=True,
        help="a seed's collection: OUT/feedback/sS (several, comma-separated, are learned from in that order)",
    )  # fmt: skip
    parser.add_argument(
        "--test-collection", type=Path, default=None,
        help="hold out every group of this collection (another seed's) instead of the last --held-out groups",
    )  # fmt: skip
    parser.add_argument("--dataset", default="synthetic:small", help="the dataset it was collected on")
    parser.add_argument(
        "--groups", default="96,192,384", help="training sizes in rated groups, comma-separated"
    )
    parser.add_argument("--held-out", type=int, default=96, help="groups held out at the end (default 96)")
    parser.add_argument("--seeds", type=int, default=3, help="reward-model seeds (default 3)")
    parser.add_argument("--pairing", default="best-worst", help="training pairs: best-worst or all-pairs")
    parser.add_argument(
        "--rm-config", type=Path, default=None, help="rm YAML (default experiments/configs/rm_small.yaml)"
    )
    parser.add_argument(
        "--report-to", type=Path, default=None, help="write the results page (and .json) here"
    )
    parser.set_defaults(handler=run_reward_model)


def run_reward_model(args: argparse.Namespace) -> int:
    import json
    import shlex
    import sys

    from dyadic_env.data import load_dataset
    from experiments.benchmark.reward_curve import collected_groups, markdown, reward_model_curve
    from experiments.commands.quickstart import _quiet_libraries
    from experiments.configs import read_config

    try:
        sizes = [int(v) for v in args.groups.split(",")]
    except ValueError as e:
        raise UserError(f"--groups: expected comma-separated integers, found {args.groups!r}") from e
    if min(sizes) < 2 or args.held_out < 2 or args.seeds < 1:
        raise UserError("--groups and --held-out must be >= 2 groups and --seeds >= 1")
    settings = read_config(str(args.rm_config) if args.rm_config else "rm_small.yaml")
    _quiet_libraries()
    collections = [Path(c) for c in args.collection.split(",") if c]
    test = None if args.test_collection is None else collected_groups(args.test_collection)
    result = reward_model_curve(
        collected_groups(*collections), load_dataset(args.dataset), sizes, args.held_out, list(range(args.seeds)),
        settings, args.pairing, test_groups=test,
    )  # fmt: skip
    result["collection"] = args.collection
    result["test_collection_path"] = None if args.test_collection is None else str(args.test_collection)
    page = markdown(result, "dyadic " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(page)
    if args.report_to:
        args.report_to.parent.mkdir(parents=True, exist_ok=True)
        args.report_to.write_text(page)
        args.report_to.with_suffix(".json").write_text(json.dumps(result, indent=1))
    return 0


def run_alignment(args: argparse.Namespace) -> int:
    from experiments.benchmark.protocol import BenchmarkConfig
    from experiments.benchmark.runner import run_benchmark
    from experiments.commands.quickstart import _quiet_libraries
    from experiments.commands.train import build_config

    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, found {args.seeds}")
    seeds = list(range(args.seeds)) if args.seeds is not None else None
    config = build_config(
        BenchmarkConfig, args.config, DEFAULT_CONFIG, args.overrides, seeds=seeds, sft=args.sft, out=args.out,
        algorithms=args.algo, ray=args.ray, policies_from=args.policies_from,
    )  # fmt: skip
    _quiet_libraries()
    if getattr(args, "report_only", False):
        from experiments.benchmark.report import summarize, write_results

        summary = summarize(config)
        write_results(config, summary)
    else:
        summary = run_benchmark(config, ceilings=not getattr(args, "no_ceilings", False))
    if args.report_to:
        from experiments.benchmark.report import write_docs

        write_docs(config, summary, args.report_to)
    return 0
