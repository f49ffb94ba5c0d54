"""`dyadic ablations`: paper Table IV over seeds, as a preset of the alignment benchmark.

It runs ``dyadic benchmark alignment`` with ``experiments/configs/ablations_small.yaml``: SFT+DPO, Random-Prefer
and SFT-Preferred from one SFT checkpoint at one label budget, every seed, with 95 % intervals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "ablations_small.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablations",
        help="SFT+DPO vs Random-Prefer vs SFT-Preferred over seeds, with 95%% CIs (a benchmark preset)",
        description="Paper Table IV over several seeds: `dyadic benchmark alignment` with "
        f"experiments/configs/{DEFAULT_CONFIG} (the same options).",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0, 1, ... N-1)")
    parser.add_argument("--sft", default=None, help="SFT checkpoint to start from (default: train one)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/ablations)")
    parser.add_argument(
        "--config", type=Path, default=None, help=f"YAML (default experiments/configs/{DEFAULT_CONFIG})"
    )
    parser.add_argument("--ray", default=None, help="run cells as Ray tasks: 'local', 'auto' or an address")
    parser.add_argument("--report-to", type=Path, default=None, help="also write the results page here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config fields")
    parser.set_defaults(handler=run, algo=None)


def run(args: argparse.Namespace) -> int:
    from experiments.commands.benchmark import run_alignment
    from experiments.configs import CONFIGS

    args.config = args.config or CONFIGS / DEFAULT_CONFIG
    return run_alignment(args)
