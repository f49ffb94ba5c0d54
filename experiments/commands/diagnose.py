"""`dyadic diagnose`: how a VLA policy moves (momentum, responses after the speaker's pauses)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose", help="diagnose a VLA policy's motion: momentum vs the data, responses after phrase ends",
        description="Teacher-forced on a split's clips: the slope of the policy's expected step on the last step "
        "(against the data's), its predicted spread, and the mean head-pitch change after each of the speaker's "
        "phrase ends for the data, the teacher-forced policy and closed-loop samples (see experiments.diagnostics).",
    )  # fmt: skip
    parser.add_argument("--policy", required=True, help="a VLA checkpoint or run directory")
    parser.add_argument("--dataset", default="synthetic:small", help="dataset directory or synthetic:PRESET")
    parser.add_argument("--split", default="val", help="split to diagnose on (default: val)")
    parser.add_argument("--max-clips", type=int, default=None, help="only the first N clips of the split")
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="closed-loop sampling temperature (default: the policy's)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds closed-loop sampling (default: 0)")
    parser.add_argument(
        "--fit-split", default="train", help="split the pause read-out probe is fitted on (default: train)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from agents.alignment.sampling import sample_trajectories
    from agents.vla import VLAForListening
    from agents.vla.agent import resolve_checkpoint
    from dyadic_env.data import load_dataset
    from experiments import diagnostics

    if args.max_clips is not None and args.max_clips < 1:
        raise UserError(f"--max-clips must be at least 1, found {args.max_clips}")
    try:
        dataset = load_dataset(args.dataset)
        ids = list(dataset.split(args.split).clip_ids)[: args.max_clips]
        fit_ids = list(dataset.split(args.fit_split).clip_ids)
    except (KeyError, ValueError) as e:
        raise UserError(str(e).strip('"')) from None
    model = VLAForListening.from_pretrained(resolve_checkpoint(args.policy)).eval()
    temperature = model.config.decode_temperature if args.temperature is None else args.temperature
    if not temperature > 0:
        raise UserError(f"--temperature must be positive, found {temperature}")
    clips = [dataset.clip(i) for i in ids]
    tokens = sample_trajectories(model, clips, 1, temperature=temperature, seed=args.seed)
    sampled = [model.processor.action_tokenizer.decode(t[0]) for t in tokens]
    runs = [diagnostics.teacher_forced(model, clip) for clip in clips]
    dyn = diagnostics.dynamics(runs)
    try:
        response = diagnostics.response_after_phrase_ends(clips, runs, sampled)
        fit_clips = [dataset.clip(i) for i in fit_ids]
        readout = diagnostics.pause_readout(model, fit_clips, clips, runs, seed=args.seed)
    except ValueError as e:
        raise UserError(f"{args.dataset} {args.split}: {e}") from None
    print(
        f"{args.policy} on {args.dataset} {args.split} ({len(clips)} clips, closed loop at T={temperature}):\n"
    )
    print(diagnostics.markdown(dyn, response, readout))
    if args.out is not None:
        figures = {"dynamics": dyn, "pause_readout_auc": readout,
                   "response": {k: v.tolist() if hasattr(v, "tolist") else v for k, v in response.items()}}  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
    return 0
