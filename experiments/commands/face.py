"""`dyadic face`: import a licensed FLAME model, build the default ICT head, show what is configured."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "face",
        help="face models: import a licensed FLAME model, build the default ICT head, show the set-up",
        description="Face models used to render motion frames: the ICT-FaceKit head (default, built once into "
        "the cache) and, for data whose expression basis is 'flame', a licensed FLAME model you import.",
    )
    sub = parser.add_subparsers(dest="face_command", metavar="ACTION", required=True)

    imp = sub.add_parser(
        "import-flame",
        help="convert a FLAME model pickle (e.g. generic_model.pkl) to plain arrays and register it",
        description="Reads the FLAME pickle without chumpy, writes the files smplx.FLAME reads into the cache "
        "(or --out) and registers them, so data with expression_basis 'flame' renders with this model.",
    )
    imp.add_argument("path", type=Path, help="the FLAME model pickle (FLAME 2020: generic_model.pkl)")
    imp.add_argument(
        "--static-embedding",
        type=Path,
        default=None,
        help="flame_static_embedding.pkl (default: next to PATH; without one, no landmarks are written)",
    )
    imp.add_argument(
        "--dynamic-embedding",
        type=Path,
        default=None,
        help="flame_dynamic_embedding.npy (default: next to PATH; optional)",
    )
    imp.add_argument(
        "--out", type=Path, default=None, help="write the converted model here instead of the cache"
    )
    imp.add_argument(
        "--no-register", action="store_true", help="only convert; do not make it the model for 'flame' data"
    )
    imp.set_defaults(handler=run_import)

    build = sub.add_parser("build", help="build the default ICT head as a FLAME-format model (cached)")
    build.set_defaults(handler=run_build)

    info = sub.add_parser("info", help="show the face models in use and where they are")
    info.set_defaults(handler=run_info)

    sheet = sub.add_parser(
        "sheet",
        help="render a gallery: neutral, each synthetic emotion, jaw open and a head turn (docs/faces.png)",
    )
    sheet.add_argument("-o", "--output", type=Path, default=Path("docs/faces.png"), help="PNG to write")
    sheet.add_argument("--size", type=int, default=256, help="pixels of one face (square)")
    sheet.add_argument(
        "--backend",
        default=None,
        choices=["osmesa", "egl"],
        help="offscreen OpenGL backend (default: $PYOPENGL_PLATFORM if set, else osmesa)",
    )
    sheet.set_defaults(handler=run_sheet)


def run_import(args: argparse.Namespace) -> int:
    from dyadic_env.face import FlameImportError, import_flame, registered_flame_dir
    from dyadic_env.face.paths import flame_config_path

    for flag, path in (
        ("--static-embedding", args.static_embedding),
        ("--dynamic-embedding", args.dynamic_embedding),
    ):
        if path is not None and not path.is_file():
            raise UserError(f"{flag} {path}: no such file")
    try:
        model_dir = import_flame(
            args.path,
            out_dir=args.out,
            register=not args.no_register,
            static_embedding=args.static_embedding,
            dynamic_embedding=args.dynamic_embedding,
        )
    except FlameImportError as e:
        raise UserError(str(e)) from None
    print(f"converted {args.path} -> {model_dir}")
    if not args.no_register:
        print(f"registered in {flame_config_path()}: data with expression_basis 'flame' now renders with it")
        current = registered_flame_dir()
        if current is not None and current.resolve() != model_dir.resolve():
            print(f"note: $DYADIC_FLAME_PATH={current} is set and takes precedence")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from dyadic_env.face import ict_flame_dir

    print(ict_flame_dir())
    return 0


def run_info(args: argparse.Namespace) -> int:
    from dyadic_env.face import face_cache_dir, registered_flame_dir
    from dyadic_env.face.paths import FLAME_PATH_ENV

    print(f"cache: {face_cache_dir()}")
    print(
        "ict-arkit: the ICT-FaceKit head (dyadic_env/assets/ict-facekit, MIT); `dyadic face build` builds it"
    )
    flame = registered_flame_dir()
    if flame is None:
        print(f"flame: not configured (run `dyadic face import-flame PATH` or set ${FLAME_PATH_ENV})")
    else:
        print(f"flame: {flame}")
    return 0


def gallery_frames() -> tuple[list[str], object]:
    """Labels and (N, 56) ict-arkit frames: neutral, the synthetic emotions at full intensity, jaw, turn."""
    import numpy as np

    from dyadic_env.expression_basis import JAW_POSE, NECK_POSE
    from dyadic_env.synthetic.emotions import JAW_TENDENCY, LISTENER_EMOTIONS, NECK_TENDENCY, prototype

    labels, frames = [], []
    for emotion in LISTENER_EMOTIONS:
        f = np.zeros(56, np.float32)
        f[:50] = prototype(emotion)
        f[NECK_POSE] = NECK_TENDENCY[emotion]  # each emotion's typical head pose and jaw, as generated
        f[JAW_POSE.start] = JAW_TENDENCY[emotion]
        labels.append(emotion)
        frames.append(f)
    jaw, turn = np.zeros(56, np.float32), np.zeros(56, np.float32)
    jaw[JAW_POSE.start] = 0.35
    turn[NECK_POSE.start + 1] = 0.5
    return [*labels, "jaw open 0.35 rad", "head turn 0.5 rad"], np.stack([*frames, jaw, turn])


def run_sheet(args: argparse.Namespace) -> int:
    from dyadic_env.render import Renderer, contact_sheet, save_image

    labels, frames = gallery_frames()
    with Renderer(args.size, args.size, backend=args.backend) as renderer:
        images = renderer.render_faces(frames)  # type: ignore[arg-type]
    save_image(args.output, contact_sheet(list(images), labels, columns=5))
    print(f"wrote {args.output} ({len(labels)} faces: {', '.join(labels)})")
    return 0
