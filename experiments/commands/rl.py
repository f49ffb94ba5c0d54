"""`dyadic rl`: reference RL results on the listener env (SB3 algorithms x rewards x seeds, next to the
baselines), written to docs/results/rl.md by ``dyadic rl --config experiments/configs/rl_small.yaml
--report docs/results/rl.md`` (see docs/rl.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.errors import UserError

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "rl_small.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rl", help="reference RL results: train SB3 PPO/A2C on the imitation and oracle rewards, evaluate with CIs",
        description="Train every algorithm of the config on every reward with every seed (Stable-Baselines3 on the "
        "batched env), then evaluate the policies closed loop next to Random, Mean, the linear readout, NN and "
        "Mirror: every row as mean ± 95 % CI over the seeds, learning curves as TensorBoard logs and a plot.",
    )  # fmt: skip
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"YAML of RLConfig fields (default {DEFAULT_CONFIG.name})",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="override config fields, e.g. total_timesteps=20000 seeds=[0] algorithms.ppo.learning_rate=1e-3",
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="run directory: models, TensorBoard logs, results.json")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write the Markdown report here (and its curves beside it)",
    )
    parser.add_argument(
        "--from-results", type=Path, default=None,
        help="write the report (and curves) from a finished run's results.json instead of training again",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from experiments.commands.train import load_config_fields

    fields = load_config_fields(args.config, args.overrides)
    if args.out:
        fields["out"] = args.out
    try:
        from experiments.rl_reference import RLConfig, plot_curves, report_markdown, run_reference

        config = RLConfig(**fields)
    except ImportError as e:
        raise UserError(
            f"dyadic rl needs Stable-Baselines3 ({e}); pip install 'dyadic-listener[align]'"
        ) from None
    except (TypeError, ValueError) as e:
        raise UserError(f"config: {e}") from None
    if args.from_results is not None:
        if not args.from_results.is_file():
            raise UserError(f"--from-results {args.from_results}: no such file (a run's results.json)")
        results = json.loads(args.from_results.read_text())
        config = RLConfig(**results["config"])
    else:
        results = run_reference(config)
    out = Path(config.out)
    print(results["table"])
    curves = plot_curves(results, out / "curves.png")
    if args.report:
        curves = plot_curves(results, args.report.with_name(f"{args.report.stem}_curves.png"))
        command = " ".join(
            ["dyadic rl", f"--config {_shown(args.config)}", *args.overrides, f"--report {args.report}"]
        )
        args.report.write_text(report_markdown(results, command, curves.name))
        print(f"wrote {args.report} and {curves}")
    print(f"saved {out}/results.json, models and TensorBoard logs ({out}/tb)")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
