"""`dyadic ablations`: paper Table IV over several seeds with confidence intervals."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.errors import UserError

DEFAULT_CONFIG = "ablations_small.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablations",
        help="SFT+DPO vs Random-Prefer vs SFT-Preferred (and PPO, iterated DPO) over seeds, with 95%% CIs",
        description="From one SFT checkpoint, collect preferences and train every variant once per seed, "
        "evaluate on the test split, and print the mean difference to SFT with a 95 % Student-t interval.",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0, 1, ... N-1)")
    parser.add_argument("--sft", default=None, help="SFT checkpoint to start from (default: train one)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/ablations)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config (default experiments/configs/{DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="override config fields (YAML values), e.g. variants=[dpo,random_prefer] dpo={beta: 0.2}",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from experiments.commands.quickstart import _quiet_libraries
    from experiments.commands.train import build_config
    from experiments.pipelines.ablations import AblationConfig, run_ablations

    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, found {args.seeds}")
    if args.sft is not None and not Path(args.sft).is_dir():
        raise UserError(f"--sft {args.sft}: no such checkpoint directory; train one with `dyadic train sft`")
    seeds = list(range(args.seeds)) if args.seeds is not None else None
    config = build_config(
        AblationConfig, args.config, DEFAULT_CONFIG, args.overrides, seeds=seeds, sft=args.sft, out=args.out
    )
    _quiet_libraries()
    run_ablations(config)
    return 0
