"""`dyadic data`: make, import, inspect and validate dyadic datasets.

Subcommands: ``synth`` (the synthetic benchmark), ``import`` (Learning-to-Listen, LM-listener, DualTalk),
``info`` (summary, or JSON), ``validate`` (lists every problem; exit code 1 when there is one),
``appropriate`` (appropriate-reaction sets from speaker-behaviour neighbours, for REACT's metrics) and
``export`` (an agent's closed-loop rollouts as a Minari dataset, for offline RL).
More subcommands can be added in :func:`register` with a handler that imports its own module.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from experiments.errors import UserError

IMPORT_FORMATS = ("l2l", "lm-listener", "dualtalk")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="make, import, inspect and validate dyadic datasets",
        description="Dyadic datasets: generate the synthetic benchmark, import published formats, summarize, validate.",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    synth = commands.add_parser(
        "synth", help="generate a synthetic benchmark preset into a dataset directory"
    )
    synth.add_argument(
        "--preset", required=True, help="preset name: tiny (tests), small (quickstart), full (benchmarks)"
    )
    synth.add_argument("--out", type=Path, required=True, help="new dataset directory to write")
    synth.add_argument(
        "--seed", type=int, default=None, help="generator seed (default: the preset's fixed seed)"
    )
    synth.add_argument(
        "--appropriate", type=int, default=10, metavar="K",
        help="appropriate listeners drawn for every val and test clip (other personas, checked by the oracle; "
        "0: none; default 10)",
    )  # fmt: skip
    synth.set_defaults(handler=run_synth)
    _register_import(commands)
    _register_inspection(commands)


def _register_import(commands: argparse._SubParsersAction) -> None:
    imp = commands.add_parser("import", help="import a published dataset (l2l, lm-listener, dualtalk)")
    imp.add_argument("src", type=Path, help="source folder (or, for lm-listener, one segments_*.pth file)")
    imp.add_argument("--format", required=True, choices=IMPORT_FORMATS, help="source format")
    imp.add_argument("--out", type=Path, required=True, help="new dataset directory to write")
    imp.add_argument(
        "--seed", type=int, default=0, help="seed of the split assignment where the source has none"
    )
    imp.add_argument(
        "--fps",
        type=float,
        default=None,
        help="override the format's frame rate (l2l/lm-listener 30, dualtalk 25)",
    )
    imp.add_argument(
        "--fractions", default=None, metavar="SPLIT=F,...",
        help="split the source's groups (dualtalk: conversations; l2l: videos) into these splits, e.g. "
        "train=0.8,val=0.1,test=0.1 (the default); dualtalk gives each split at least one conversation while "
        "there are enough",
    )  # fmt: skip
    imp.add_argument(
        "--unpaired", default=None, choices=("error", "speaker-only", "skip"),
        help="dualtalk: a person whose partner file is missing is an error (default), a speaker-only clip "
        "(the listener is the neutral face: replay the speaker, do not score against it), or skipped",
    )  # fmt: skip
    imp.add_argument(
        "--trust-pickle", action="store_true",
        help="lm-listener: allow full pickle loading of the .pth files (only for files from a source you trust)",
    )  # fmt: skip
    imp.set_defaults(handler=run_import)


def _register_inspection(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser("info", help="summarize a dataset (clips per split, frames, words, tokenizer)")
    info.add_argument("dataset", help="dataset directory or synthetic:PRESET")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(handler=run_info)

    validate = commands.add_parser(
        "validate", help="check every file and clip of a dataset; exit 1 on any problem"
    )
    validate.add_argument("dataset", type=Path, help="dataset directory")
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")
    validate.set_defaults(handler=run_validate)

    _register_appropriate(commands)
    _register_export(commands)

    # Added by the VLA engineer: visual features from speaker videos (handler in agents.vla.features).
    features = commands.add_parser(
        "features",
        help="copy a dataset with speaker_features from speaker videos (DINOv2 + SigLIP, local models)",
    )
    features.add_argument("--dataset", required=True, help="dataset directory or synthetic:PRESET")
    features.add_argument(
        "--videos", type=Path, required=True, help="folder of speaker videos CLIP_ID.mp4 (or .npy frames)"
    )
    features.add_argument(
        "--dino", type=Path, default=None, help="local DINOv2 model directory (Dinov2Model)"
    )
    features.add_argument("--siglip", type=Path, default=None, help="local SigLIP vision model directory")
    features.add_argument("--out", type=Path, required=True, help="new dataset directory to write")
    features.add_argument("--device", default="cpu", help="torch device for the encoders (cpu, cuda)")
    features.add_argument("--batch-size", type=int, default=32, help="frames per encoder forward pass")
    features.set_defaults(handler=run_features)


def _register_appropriate(commands: argparse._SubParsersAction) -> None:
    sets = commands.add_parser(
        "appropriate", help="give a dataset appropriate-reaction sets (REACT 2023: speaker-behaviour neighbours)",
        description="Within each split, a clip's set is the recorded listeners of the clips whose speaker behaves "
        "alike (normalised DTW distance within the threshold), itself included. Prints the threshold and the set "
        "sizes; the sets are stored in the dataset (schema 2).",
    )  # fmt: skip
    sets.add_argument("dataset", type=Path, help="dataset directory")
    sets.add_argument("--method", default="neighbours", choices=("neighbours",), help="how to build the sets")
    bound = sets.add_mutually_exclusive_group()
    bound.add_argument(
        "--threshold", type=float, default=None, help="speaker distance within which clips are neighbours"
    )
    bound.add_argument(
        "--quantile", type=float, default=None,
        help="or: the threshold as this quantile of the split's pair distances (default 0.05)",
    )  # fmt: skip
    sets.add_argument(
        "--splits", default="val,test", help="comma-separated splits to build sets for (default val,test)"
    )
    sets.add_argument("--replace", action="store_true", help="replace the sets the dataset already has")
    sets.set_defaults(handler=run_appropriate)


def _register_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="write closed-loop rollouts of an agent or policy as an offline-RL dataset (Minari)",
        description="Roll an agent or a VLA checkpoint once through every clip of a split and write the transitions "
        "(observations, token actions, rewards, episode ends; each episode's reset options name its clip) as a "
        "Minari dataset, which minari.load_dataset(ID) reads. Minari writes under $MINARI_DATASETS_PATH "
        "(default ~/.minari/datasets).",
    )  # fmt: skip
    export.add_argument("--format", default="minari", choices=("minari",), help="output format")
    export.add_argument("--dataset", required=True, help="dataset directory or synthetic:PRESET")
    export.add_argument("--split", default="test", help="split whose clips are rolled out (default: test)")
    export.add_argument(
        "--agent", default=None,
        help="a baseline name (random, nn, mean, mirror, ...) or a plug-in package.module:factory",
    )  # fmt: skip
    export.add_argument("--policy", default=None, help="or a VLA checkpoint directory")
    export.add_argument(
        "--id", required=True, dest="dataset_id",
        help="Minari dataset id, e.g. dyadic/listener-small/nn-v0 ((namespace/)(env/)name-vN)",
    )  # fmt: skip
    export.add_argument("--reward", default="imitation", help="the env's reward (imitation, affect, oracle)")
    export.add_argument("--max-clips", type=int, default=None, help="only the first N clips of the split")
    export.add_argument("--seed", type=int, default=0, help="episode i is seeded SEED + i (agents and env)")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from dyadic_env.data import load_dataset

    if (args.agent is None) == (args.policy is None):
        raise UserError("give one of --agent NAME or --policy CHECKPOINT_DIR")
    if args.max_clips is not None and args.max_clips < 1:
        raise UserError(f"--max-clips {args.max_clips}: expected a positive number of clips")
    dataset = load_dataset(args.dataset)
    if args.split not in dataset.splits:
        raise UserError(f"--split {args.split!r}: {dataset.path} has splits {list(dataset.splits)}")
    try:
        from dyadic_env.envs.minari_export import export_minari
    except ImportError as e:
        raise UserError(
            f"--format minari needs Minari ({e}); pip install 'dyadic-listener[offline]'"
        ) from None
    name, agent, tokenizer = _export_agent(args, dataset)
    clip_ids = dataset.split(args.split).clip_ids[: args.max_clips]
    try:
        result = export_minari(
            args.dataset_id, agent, dataset.path, args.split, clip_ids=clip_ids, seed=args.seed,
            algorithm_name=name, reward=args.reward, tokenizer=tokenizer,
        )  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from None
    print(
        f"wrote Minari dataset {args.dataset_id!r}: {result.total_episodes} episodes, {result.total_steps} steps "
        f"of {name} on {args.split} ({dataset.path}); read it with minari.load_dataset({args.dataset_id!r})"
    )
    return 0


def _export_agent(args: argparse.Namespace, dataset: Any) -> tuple[str, Any, Path | None]:
    """The agent to roll out, its name, and the tokenizer file its tokens are meant for (None: the dataset's)."""
    from experiments.commands.eval import load_policy, plugin_agent

    if args.policy is not None:
        from agents.vla.processing import ACTION_TOKENIZER_FILE

        return Path(args.policy).name, load_policy(args.policy), Path(args.policy) / ACTION_TOKENIZER_FILE
    if ":" in args.agent:
        return args.agent, plugin_agent(args.agent, dataset, args.seed), None
    from agents import agent_names, make_agent

    if args.agent not in agent_names():
        raise UserError(
            f"--agent {args.agent!r}: choose from {', '.join(agent_names())} or package.module:factory"
        )
    return args.agent, make_agent(args.agent, dataset, args.seed), None


def run_synth(args: argparse.Namespace) -> int:
    try:
        from dyadic_env.synthetic import PRESETS, write_preset
    except ImportError as e:
        raise UserError(f"the synthetic generator is not available ({e})") from None
    if args.preset not in PRESETS:
        raise UserError(f"--preset {args.preset!r}: expected one of {', '.join(PRESETS)}")
    _check_out(args.out)
    if args.appropriate < 0:
        raise UserError(f"--appropriate {args.appropriate}: expected a set size >= 0 (0: no sets)")
    path = write_preset(args.preset, args.out, seed=args.seed, appropriate=args.appropriate)
    print(f"wrote synthetic preset {args.preset!r} to {path}")
    _print_summary(_summary(str(path)))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from dyadic_env.data.importers import import_dataset

    if not args.src.exists():
        raise UserError(f"{args.src}: no such file or folder to import")
    _check_out(args.out)
    options: dict[str, Any] = {} if args.fps is None else {"fps": args.fps}
    if args.trust_pickle:
        if args.format != "lm-listener":
            raise UserError("--trust-pickle applies to --format lm-listener only")
        options["trust_pickle"] = True
    if args.unpaired is not None:
        if args.format != "dualtalk":
            raise UserError("--unpaired applies to --format dualtalk only")
        options["unpaired"] = args.unpaired
    if args.fractions is not None:
        from dyadic_env.data.importers._common import parse_fractions

        if args.format == "lm-listener":
            raise UserError("--fractions: lm-listener files carry their own splits")
        try:
            options["fractions"] = parse_fractions(args.fractions)
        except ValueError as e:
            raise UserError(f"--fractions: {e}") from None
    try:
        result = import_dataset(args.format, args.src, args.out, seed=args.seed, **options)
    except ImportError as e:
        raise UserError(str(e)) from None
    print(f"imported {result.num_clips} clips ({args.format}) from {args.src} to {result.path}")
    for note in result.notes:
        print(f"  note: {note}")
    _print_summary(_summary(str(result.path)))
    return 0


def run_info(args: argparse.Namespace) -> int:
    summary = _summary(args.dataset)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from dyadic_env.data import validate_dataset

    if not args.dataset.is_dir():
        raise UserError(f"{args.dataset}: no such dataset directory")
    problems = validate_dataset(args.dataset)
    if args.json:
        print(
            json.dumps({"dataset": str(args.dataset), "problems": [p.to_dict() for p in problems]}, indent=2)
        )
    else:
        for problem in problems:
            print(f"problem: {problem}")
        print(f"{args.dataset}: {len(problems)} problem(s)" if problems else f"{args.dataset}: valid")
    return 1 if problems else 0


def run_appropriate(args: argparse.Namespace) -> int:
    from dyadic_env.data import DyadicDataset, add_appropriate_sets
    from dyadic_env.data.neighbours import neighbour_sets

    if not args.dataset.is_dir():
        raise UserError(f"{args.dataset}: no such dataset directory")
    dataset = DyadicDataset(args.dataset)
    if dataset.has_appropriate and not args.replace:
        raise UserError(
            f"{args.dataset}: already has appropriate sets ({dataset.appropriate.method}); pass --replace to "  # type: ignore[union-attr]
            "overwrite them"
        )
    splits = [s for s in args.splits.split(",") if s]
    try:
        found = neighbour_sets(dataset, splits, threshold=args.threshold, quantile=args.quantile)
    except (KeyError, ValueError, ImportError) as e:
        raise UserError(str(e).strip("'\"")) from None
    block = add_appropriate_sets(
        args.dataset, found.sets, method="neighbours", params=found.params(), replace=args.replace
    )
    for split in splits:
        sizes = found.sizes[split]
        print(
            f"{split}: threshold {found.thresholds[split]:.4g}"
            + (f" (quantile {found.quantile:g} of the pair distances)" if found.quantile is not None else "")
            + f"; set size min {sizes['min']}, mean {sizes['mean']:.2f}, max {sizes['max']}; "
            f"{sizes['only_itself']} clips have only their own listener"
        )
    print(f"wrote {block['entries']} entries for {block['clips']} clips into {args.dataset}")
    return 0


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not empty; choose a new directory or delete it")


def _summary(spec: str) -> dict[str, Any]:
    from dyadic_env.data import load_dataset

    dataset = load_dataset(spec)
    summary = dataset.summary()
    tokenizer = dataset.tokenizer()
    if tokenizer is not None and len(dataset):
        # Round trip on the first clip of the first split: a quick check that the bins fit the data.
        clip = (
            dataset.split(dataset.splits[0])[0]
            if len(dataset.split(dataset.splits[0]))
            else dataset.clip_at(0)
        )
        # A speaker-only clip's listener is a placeholder: its speaker is the real face to try the bins on.
        real = clip.speaker_motion if clip.meta.get("speaker_only") else clip.listener_motion
        error = tokenizer.round_trip_error(real)
        summary["tokenizer_round_trip_first_clip"] = {
            "mean": float(error["mean"].mean()),
            "max": float(error["max"].max()),
        }
    return summary


def _print_summary(s: dict[str, Any]) -> None:
    low, mean, high = s["clip_frames_min_mean_max"]
    lines = [
        f"dataset    {s['name']}  ({s['path']})",
        f"format     schema {s['schema_version']}, {s['fps']:g} fps, expression basis {s['expression_basis']}",
        f"clips      {s['clips']}: " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()),
        f"frames     {s['frames']} ({_duration(s['seconds'])}); per clip min {low}, mean {mean:.1f}, max {high}",
        f"words      {s['words']}",
        f"features   {s['feature_dim'] or 'none'}; affect {'yes' if s['has_affect'] else 'no'}",
    ]
    tokenizer = s.get("tokenizer")
    if tokenizer:
        line = f"tokenizer  {tokenizer['file']} fitted on {tokenizer['fitted_on']} ({tokenizer['frames']} frames)"
        if "tokenizer_round_trip_first_clip" in s:
            rt = s["tokenizer_round_trip_first_clip"]
            line += f"; round trip on one clip: mean {rt['mean']:.4f}, max {rt['max']:.4f}"
        lines.append(line)
    else:
        lines.append("tokenizer  none")
    if s.get("source"):
        lines.append(f"imported   {s['source'].get('format')} from {s['source'].get('source')}")
    sets = s.get("appropriate")
    if sets:
        sizes = sets["sizes"]
        lines.append(
            f"appropriate sets  {sets['method']}: {sets['clips']} clips, {sets['entries']} reactions "
            f"({sets['stored']} stored, {sets['recorded']} recorded listeners); per clip min {sizes['min']}, "
            f"mean {sizes['mean']:.1f}, max {sizes['max']}"
        )
    print("\n".join(lines))


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 3600:.2f} h"


def run_features(args: argparse.Namespace) -> int:
    if args.dino is None and args.siglip is None:
        raise UserError("give --dino and/or --siglip: local model directories of the visual encoders")
    from agents.vla.features import VisualFeatureExtractor, add_speaker_features

    try:
        extractor = VisualFeatureExtractor(
            args.dino, args.siglip, device=args.device, batch_size=args.batch_size
        )
        out = add_speaker_features(args.dataset, args.videos, args.out, extractor)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"wrote {out} with speaker_features of width {extractor.dim} ({', '.join(extractor.describe())})")
    return 0
