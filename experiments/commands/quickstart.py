"""`dyadic quickstart`: the README's main job (see :mod:`experiments.pipelines.quickstart`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="run the quickstart pipeline on the synthetic benchmark"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="run directory (resumable)")
    parser.add_argument("--preset", default="small", help="synthetic preset (tiny, small, full)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every stage")
    parser.add_argument("--max-eval-clips", type=int, default=None, help="evaluate on the first N test clips")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from experiments.cli import UserError
    from experiments.pipelines.quickstart import QuickstartConfig, run_quickstart

    try:
        config = QuickstartConfig(
            out=args.out, preset=args.preset, seed=args.seed, max_eval_clips=args.max_eval_clips
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    run_quickstart(config)
    return 0
