"""Where face models live: the package's assets, the build cache and the registered FLAME model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

ICT_ASSET = Path(__file__).resolve().parent.parent / "assets" / "ict-facekit" / "ict_facekit_expr.npz"
FLAME_CONFIG_NAME = "flame.json"
FLAME_PATH_ENV = "DYADIC_FLAME_PATH"
# File names smplx.FLAME reads from a model directory (with ext="npz").
MODEL_FILE = "FLAME_NEUTRAL.npz"
STATIC_EMBEDDING_FILE = "flame_static_embedding.pkl"
DYNAMIC_EMBEDDING_FILE = "flame_dynamic_embedding.npy"


def face_cache_dir() -> Path:
    """``$DYADIC_CACHE/face`` (default ``~/.cache/dyadic/face``), where built and imported models go."""
    root = Path(os.environ.get("DYADIC_CACHE", "~/.cache/dyadic")).expanduser()
    return root / "face"


def build_atomically(final_dir: Path, build: Callable[[Path], object]) -> Path:
    """Run ``build(tmp_dir)`` and move the result to ``final_dir`` in one rename.

    A reader never sees a half-written model; if another process finished first, its copy is kept.
    """
    if final_dir.is_dir():
        return final_dir
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".partial", dir=final_dir.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final_dir)
        except OSError:
            if not final_dir.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final_dir


def flame_config_path() -> Path:
    return face_cache_dir() / FLAME_CONFIG_NAME


def registered_flame_dir() -> Path | None:
    """The FLAME model directory set by ``$DYADIC_FLAME_PATH`` or ``dyadic face import-flame``, if any."""
    env = os.environ.get(FLAME_PATH_ENV)
    if env:
        return Path(env).expanduser()
    config = flame_config_path()
    if config.is_file():
        return Path(json.loads(config.read_text())["model_dir"])
    return None


def register_flame_dir(model_dir: Path) -> Path:
    """Record ``model_dir`` as the FLAME model that ``flame`` data renders with; returns the config file."""
    config = flame_config_path()
    config.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.with_suffix(".json.partial")
    tmp.write_text(json.dumps({"model_dir": str(Path(model_dir).resolve())}, indent=2) + "\n")
    os.replace(tmp, config)
    return config
