"""`dyadic render`: a clip's speaker beside its listener (ground truth or agents' rollouts) as MP4 / contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from experiments.errors import UserError

GROUND_TRUTH = "gt"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render a clip: speaker beside the ground-truth listener or agents' closed-loop rollouts (MP4, PNG)",
        description="Render one clip of a dataset as an H.264 MP4 (speaker | listener, with the speaker's "
        "current words as a caption) and/or a contact sheet: the speaker and each listener at evenly spaced "
        "times of the clip, one row each, so agents can be compared on the same clip.",
    )
    parser.add_argument("--dataset", required=True, help="dataset directory or synthetic:PRESET")
    parser.add_argument("--clip", required=True, help="clip id to render (see `dyadic data info`)")
    parser.add_argument("--split", default=None, help="split holding the clip (default: found by search)")
    parser.add_argument(
        "--agent",
        default=None,
        help="listeners to roll out, comma-separated: baselines (random, random-train, nn, neutral, mirror, mean) and "
        f"'{GROUND_TRUTH}' for the ground truth (default: {GROUND_TRUTH})",
    )
    parser.add_argument(
        "--policy", default=None, help="a VLA checkpoint directory to roll out as listener 'vla'"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="MP4 to write (several listeners: one file each, NAME-suffixed)",
    )
    parser.add_argument("--sheet", type=Path, default=None, help="PNG contact sheet to write")
    parser.add_argument("--sheet-frames", type=int, default=8, help="columns (times) of the contact sheet")
    parser.add_argument("--size", type=int, default=256, help="pixels of one face panel (square, even)")
    parser.add_argument(
        "--backend",
        default=None,
        choices=["osmesa", "egl"],
        help="offscreen OpenGL backend (default: $PYOPENGL_PLATFORM if set, else osmesa)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the agents and the environment")
    parser.add_argument(
        "--words-window-s", type=float, default=3.0, help="caption: words of the last N seconds"
    )
    parser.add_argument("--no-captions", action="store_true", help="no caption line")
    parser.add_argument(
        "--approximate", action="store_true",
        help="flame data without the licensed FLAME model: show its head pose and jaw on the open ICT head, "
        "expression neutral unless --expression-map (every frame labelled APPROXIMATE; see "
        "dyadic_env.render.approximate)",
    )  # fmt: skip
    parser.add_argument(
        "--expression-map", type=Path, default=None,
        help="with --approximate: a (50, 50) .npy map from FLAME expression coefficients to ICT weights",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dyadic_env.data import load_dataset

    if args.output is None and args.sheet is None:
        raise UserError("nothing to write: give -o OUT.mp4 and/or --sheet OUT.png")
    if args.output is not None and args.output.suffix.lower() != ".mp4":
        raise UserError(f"-o {args.output}: videos are H.264 MP4; use a name ending in .mp4")
    if args.size < 16 or args.size % 2:
        raise UserError(f"--size {args.size}: expected an even number of pixels, at least 16")
    if args.sheet_frames < 1:
        raise UserError(f"--sheet-frames {args.sheet_frames}: expected at least 1")
    data = load_dataset(args.dataset)
    split = _find_split(data, args.clip, args.split)
    clip = data.clip(args.clip)
    listeners = _listeners(args, data, split, clip)
    captions = None if args.no_captions else _captions(clip, args.words_window_s)
    approximation = None
    if args.approximate or args.expression_map is not None:
        from dyadic_env.render.approximate import APPROXIMATE_LABEL

        approximation = _approximation(args, data)
        listeners = {name: approximation(motion) for name, motion in listeners.items()}
        captions = [f"{APPROXIMATE_LABEL} {c}".strip() for c in (captions or [""] * clip.num_frames)]
    _render(args, data, clip, listeners, captions, approximation)
    return 0


def _approximation(args: argparse.Namespace, data: Any) -> Any:
    """FLAME frames -> their approximation on the ICT head (dyadic_env.render.approximate)."""
    from dyadic_env.render.approximate import flame_on_ict, load_expression_map

    if not args.approximate:
        raise UserError("--expression-map applies with --approximate")
    if data.expression_basis != "flame":
        raise UserError(
            f"--approximate: {data.path} is {data.expression_basis!r} data, which renders exactly; drop the flag"
        )
    try:
        matrix = None if args.expression_map is None else load_expression_map(args.expression_map)
    except ValueError as e:
        raise UserError(str(e)) from None
    return lambda motion: flame_on_ict(motion, matrix)


def _find_split(data: Any, clip_id: str, split: str | None) -> str:
    if split is not None:
        if split not in data.splits:
            raise UserError(f"--split {split!r}: {data.path} has splits {list(data.splits)}")
        if clip_id not in data.split(split).clip_ids:
            raise UserError(f"--clip {clip_id!r} is not in split {split!r} of {data.path}")
        return split
    for name in data.splits:
        if clip_id in data.split(name).clip_ids:
            return name
    examples = ", ".join(list(data.split(next(iter(data.splits))).clip_ids)[:5])
    raise UserError(
        f"--clip {clip_id!r}: no such clip in {data.path} (e.g. {examples}; `dyadic data info` lists them)"
    )


def _listeners(args: argparse.Namespace, data: Any, split: str, clip: Any) -> dict[str, Any]:
    """Listener motion (T, 56) by name: the ground truth and/or closed-loop rollouts."""
    import numpy as np

    names = [n.strip() for n in (args.agent or "").split(",") if n.strip()]
    if not names and not args.policy:
        names = [GROUND_TRUTH]
    agents: dict[str, Any] = {}
    for name in names:
        if name == GROUND_TRUTH:
            continue
        from agents.baselines import agent_names, make_agent

        if name not in agent_names():
            raise UserError(f"--agent {name!r}: expected {GROUND_TRUTH} or one of {', '.join(agent_names())}")
        agents[name] = make_agent(name, data, args.seed)
    if args.policy:
        from experiments.commands.eval import load_policy

        agents["vla"] = load_policy(args.policy)
    out: dict[str, Any] = {}
    for name in [*names, *(["vla"] if args.policy else [])]:
        if name == GROUND_TRUTH:
            out[name] = np.asarray(clip.listener_motion, np.float32)
        else:
            out[name] = _rollout(agents[name], data, split, clip.clip_id, args.seed)
    return out


def _rollout(agent: Any, data: Any, split: str, clip_id: str, seed: int) -> Any:
    from agents.rollout import rollout
    from dyadic_env.envs.listener import ListenerEnv

    env = ListenerEnv(data, split, chunk_size=getattr(agent, "chunk_size", 1))
    try:
        return rollout(env, agent, clip_id=clip_id, seed=seed).frames
    finally:
        env.close()


def _captions(clip: Any, window_s: float) -> list[str]:
    return [" ".join(w.text for w in clip.words_until(t, window_s=window_s)) for t in range(clip.num_frames)]


def _render(
    args: argparse.Namespace,
    data: Any,
    clip: Any,
    listeners: dict[str, Any],
    captions: Any,
    approximation: Any = None,
) -> None:
    import numpy as np

    from dyadic_env.render import Renderer, contact_sheet, render_video, save_image

    basis = data.expression_basis
    speaker = np.asarray(clip.speaker_motion, np.float32)
    if approximation is not None:  # --approximate: flame frames already mapped onto the ICT head
        basis, speaker = "ict-arkit", approximation(speaker)
    with Renderer(args.size, args.size, backend=args.backend) as renderer:
        if args.output is not None:
            for name, motion in listeners.items():
                path = (
                    args.output
                    if len(listeners) == 1
                    else args.output.with_name(f"{args.output.stem}_{name}.mp4")
                )
                render_video(path, speaker, motion, clip.fps, captions, basis, renderer=renderer)
                print(f"wrote {path} ({clip.num_frames} frames at {clip.fps:g} fps, listener: {name})")
        if args.sheet is not None:
            times = np.unique(np.linspace(0, clip.num_frames - 1, args.sheet_frames).round().astype(int))
            rows = {"speaker": speaker, **listeners}
            images, labels = [], []
            for row, motion in rows.items():
                images += list(renderer.render_faces(motion[times], basis))
                labels += [
                    f"{row} {t / clip.fps:.1f}s{', approx.' * (approximation is not None)}" for t in times
                ]
            save_image(args.sheet, contact_sheet(images, labels, columns=len(times)))
            print(f"wrote {args.sheet} (rows: {', '.join(rows)}; {len(times)} times)")
