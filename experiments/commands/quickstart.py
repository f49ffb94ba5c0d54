"""`dyadic quickstart`: the README's main job (see :mod:`experiments.pipelines.quickstart`)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "quickstart_small.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="the whole loop on the synthetic benchmark: SFT, feedback, DPO, reward model + PPO, evaluation, report",
        description="Synthetic data -> SFT -> candidates -> simulated feedback -> preference pairs -> DPO, "
        "Random-Prefer, SFT-Preferred, reward model + PPO -> evaluation on the test split -> OUT/report.md. "
        "Every stage is resumable and skipped when its output exists.",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/quickstart)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config (default experiments/configs/{DEFAULT_CONFIG})",
    )
    parser.add_argument("--preset", default=None, help="synthetic preset (tiny, small, full)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every stage")
    parser.add_argument("--max-eval-clips", type=int, default=None, help="evaluate on the first N test clips")
    parser.add_argument("--skip-ppo", action="store_true", help="leave out the reward model and PPO")
    parser.add_argument("--no-render", action="store_true", help="do not render the sample video")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="override config fields (YAML values), e.g. dpo={beta: 0.2} feedback={clips: 60}",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from experiments.commands.train import build_config
    from experiments.pipelines.quickstart import QuickstartConfig, run_quickstart

    config = build_config(
        QuickstartConfig, args.config, DEFAULT_CONFIG, args.overrides, out=args.out, preset=args.preset,
        seed=args.seed, max_eval_clips=args.max_eval_clips, skip_ppo=args.skip_ppo or None,
        render=False if args.no_render else None,
    )  # fmt: skip
    _quiet_libraries()
    run_quickstart(config)
    return 0


def _quiet_libraries() -> None:
    """Keep the pipeline's log readable: no per-stage progress bars or load reports from the HF libraries."""
    import os
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")
    # Deprecation notices about arguments trl passes to transformers, not about anything the user set.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass
