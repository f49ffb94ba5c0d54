"""Convert a licensed FLAME model pickle (chumpy objects inside) to plain arrays, without chumpy.

The FLAME pickles (``generic_model.pkl``, ``FLAME_NEUTRAL.pkl``, Python 2 era) store most arrays as
``chumpy.ch.Ch`` objects and ``J_regressor`` as a SciPy sparse matrix. chumpy does not import on Python 3.11
with NumPy 2, so :class:`ChumpyFreeUnpickler` builds stand-ins for chumpy classes and this module reads
their stored value (``x``). The result is the directory layout ``smplx.FLAME(ext="npz")`` reads.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from dyadic_env.face import paths

REQUIRED = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")


class FlameImportError(ValueError):
    """The file is not a usable FLAME model; the message says what is wrong and how to fix it."""


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling; keeps the object's state."""

    chumpy_class = "chumpy object"
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class ChumpyFreeUnpickler(pickle.Unpickler):
    """Unpickles FLAME/SMPL model files with chumpy classes replaced by stand-ins.

    Old SciPy module paths (``scipy.sparse.csc``) map onto today's public ``scipy.sparse`` names.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
        if module.startswith("scipy.sparse"):
            import scipy.sparse

            if hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
        return super().find_class(module, name)


def _plain(value: Any, key: str) -> np.ndarray:
    """A stored value as a plain NumPy array (chumpy stand-ins give their ``x``; sparse becomes dense)."""
    if isinstance(value, _ChumpyStandIn):
        state = value.state
        if isinstance(state, dict) and "x" in state:
            return np.asarray(_plain(state["x"], key))
        raise FlameImportError(
            f"FLAME key {key!r} is a {value.chumpy_class} that stores no plain value ('x'); only plain "
            "chumpy arrays can be read without chumpy. Re-export the model with plain arrays."
        )
    if hasattr(value, "toarray"):
        return np.asarray(value.toarray())
    return np.asarray(value)


def read_flame_pickle(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a FLAME pickle that smplx needs, as plain NumPy arrays (no chumpy needed)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = ChumpyFreeUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
        raise FlameImportError(f"{path} is not a readable FLAME pickle ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise FlameImportError(f"{path} holds a {type(raw).__name__}, expected the dict of a FLAME model")
    return _validated({k: _plain(raw[k], k) for k in REQUIRED if k in raw}, path)


def _validated(arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise FlameImportError(
            f"{path} lacks FLAME keys {missing}; is it a FLAME model file (generic_model.pkl)?"
        )
    v = arrays["v_template"].shape[0]
    expected = {
        "v_template": (v, 3),
        "shapedirs": (v, 3, 400),
        "posedirs": (v, 3, 36),
        "J_regressor": (5, v),
        "kintree_table": (2, 5),
        "weights": (v, 5),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            hint = (
                " (300 shape + 100 expression directions: smplx would silently cap expressions at 10 otherwise;"
                " use FLAME 2020 or later)"
                if key == "shapedirs"
                else ""
            )
            raise FlameImportError(f"{path}: {key} has shape {arrays[key].shape}, expected {shape}{hint}")
    if arrays["f"].ndim != 2 or arrays["f"].shape[1] != 3:
        raise FlameImportError(f"{path}: f has shape {arrays['f'].shape}, expected (F, 3) triangles")
    out = {
        k: arrays[k].astype(np.float32)
        for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights")
    }
    out["f"] = arrays["f"].astype(np.int64)
    out["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    return out


def _read_embedding(path: Path) -> Any:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=True, encoding="latin1")[()]
    with open(path, "rb") as f:
        return ChumpyFreeUnpickler(f, encoding="latin1").load()


def convert_flame(
    source: Path,
    out_dir: Path,
    *,
    static_embedding: Path | None = None,
    dynamic_embedding: Path | None = None,
) -> Path:
    """Write ``FLAME_NEUTRAL.npz`` and the landmark embeddings smplx reads into ``out_dir``.

    Embeddings default to ``flame_static_embedding.pkl`` / ``flame_dynamic_embedding.npy`` next to
    ``source``. Without a static embedding an empty one (no landmarks) is written, since smplx always
    reads the file and rendering does not use landmarks.
    """
    source = Path(source)
    arrays = read_flame_pickle(source)
    static_embedding = static_embedding or source.parent / paths.STATIC_EMBEDDING_FILE
    dynamic_embedding = dynamic_embedding or source.parent / paths.DYNAMIC_EMBEDDING_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / paths.MODEL_FILE, **arrays)  # type: ignore[arg-type]
    if static_embedding.is_file():
        data = _read_embedding(static_embedding)
        static = {k: np.asarray(data[k]) for k in ("lmk_face_idx", "lmk_b_coords")}
    else:
        static = {"lmk_face_idx": np.zeros(0, np.int64), "lmk_b_coords": np.zeros((0, 3))}
    with open(out_dir / paths.STATIC_EMBEDDING_FILE, "wb") as f:
        pickle.dump(static, f, protocol=4)
    if dynamic_embedding.is_file():
        data = _read_embedding(dynamic_embedding)
        dynamic = {k: np.asarray(data[k]) for k in ("lmk_face_idx", "lmk_b_coords")}
        np.save(out_dir / paths.DYNAMIC_EMBEDDING_FILE, np.array(dynamic, dtype=object))
    return out_dir


def import_flame(
    source: Path,
    *,
    out_dir: Path | None = None,
    register: bool = True,
    static_embedding: Path | None = None,
    dynamic_embedding: Path | None = None,
) -> Path:
    """Convert ``source`` into the cache (or ``out_dir``) and register it for ``flame`` data; returns the dir."""
    source = Path(source).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"no FLAME model file at {source}; pass the path of generic_model.pkl")
    embeddings = {"static_embedding": static_embedding, "dynamic_embedding": dynamic_embedding}
    if out_dir is None:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        final = paths.face_cache_dir() / f"flame-{digest}"
        if final.is_dir():
            shutil.rmtree(final)  # re-import: the embeddings next to the source may have changed
        model_dir = paths.build_atomically(final, lambda tmp: convert_flame(source, tmp, **embeddings))
    else:
        model_dir = convert_flame(source, Path(out_dir), **embeddings)
    if register:
        paths.register_flame_dir(model_dir)
    return model_dir
