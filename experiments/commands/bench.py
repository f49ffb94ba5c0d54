"""`dyadic bench NAME`: run a benchmark and print its figures as JSON and Markdown."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark; prints figures as JSON and Markdown")
    parser.add_argument("name", nargs="?", help="benchmark name (omit to list them)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    parser.add_argument("--out", type=Path, default=None, help="also save bench_NAME.json and .md here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from experiments import bench

    if args.name is None:
        for name, (_, text) in bench.registry().items():
            print(f"{name:12s} {text}")
        return 0
    try:
        figures = bench.run(args.name, quick=args.quick, out_dir=args.out)
    except KeyError as e:
        raise UserError(str(e).strip("'\"")) from None
    print(json.dumps(figures, indent=2))
    print()
    print(bench.to_markdown(args.name, figures))
    return 0
