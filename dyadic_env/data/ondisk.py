"""Low-level pieces of the on-disk dataset format, shared by the reader, the writer and the validator.

Layout of a dataset directory::

    manifest.json        schema version, fps, expression basis, feature dim, splits, array table, file sizes
    clip_index.npy       (N, 6) int64 per clip: frame offset, frames, split number, words, and the byte
                         range of the clip's line in clips.jsonl
    clip_ids.npy         (N,) unicode clip ids
    clips.jsonl          one JSON object per clip: ids, split, words, meta (parsed only when a clip is read)
    speaker_motion.npy   (F, 56) float32, all clips' frames end to end
    listener_motion.npy  (F, 56) float32
    speaker_features.npy (F, d) float32      optional
    speaker_affect.npy   (F, 2) float32      optional (valence, arousal)
    listener_affect.npy  (F, 2) float32      optional
    tokenizer.json       the ActionTokenizer fitted on the train split's listener motion
    appropriate_index.npy   (M, 4) int64, optional (schema 2): appropriate listener reactions per clip
    appropriate_motion.npy  (F', 56) float32, optional: the stored ones (see dyadic_env.data.appropriate)

Every array, the index included, is opened with ``mmap_mode="r"``: opening a dataset reads the manifest
and the ``.npy`` headers only, whatever the number of clips.

Schema versions: 1 is the layout above without appropriate sets; 2 adds them (``manifest["appropriate"]``).
Version 1 datasets still load (they have no sets); every dataset written now says 2.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dyadic_env.data.errors import DataValidationError, array_load_problem
from dyadic_env.expression_basis import EXPRESSION_BASES, FRAME_DIM

FORMAT_NAME = "dyadic-dataset"
SCHEMA_VERSION = 2
SUPPORTED_SCHEMA_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
CLIP_LINES = "clips.jsonl"
CLIP_INDEX = "clip_index.npy"
CLIP_IDS = "clip_ids.npy"
TOKENIZER = "tokenizer.json"
REQUIRED_ARRAYS = ("speaker_motion", "listener_motion")
OPTIONAL_ARRAYS = ("speaker_features", "speaker_affect", "listener_affect")
ARRAY_WIDTH: dict[str, int | None] = {
    "speaker_motion": FRAME_DIM, "listener_motion": FRAME_DIM, "speaker_features": None,
    "speaker_affect": 2, "listener_affect": 2,
}  # fmt: skip
INDEX_COLUMNS = ("offset", "length", "split", "num_words", "line_start", "line_bytes")
OFFSET, LENGTH, SPLIT, NUM_WORDS, LINE_START, LINE_BYTES = range(len(INDEX_COLUMNS))
MANIFEST_KEYS = ("format", "schema_version", "fps", "expression_basis", "splits", "arrays", "num_clips")
RECREATE_HINT = "The file may be truncated or edited; re-create or re-import the dataset."
# Fixed header size of the .npy files the writer streams: room for any shape, and 64-byte aligned.
NPY_HEADER_BYTES = 128
# Above this a frame rate is almost surely a unit mistake (e.g. milliseconds per frame).
MAX_FPS = 1000.0


def fps_problem(fps: object) -> str | None:
    """Why ``fps`` is not a valid frame rate, or None when it is."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.floating, np.integer)):
        return f"{fps!r} (not a number)"
    if not np.isfinite(fps) or not 0 < fps <= MAX_FPS:
        return repr(float(fps))
    return None


def read_manifest(path: Path) -> tuple[dict[str, Any] | None, list[DataValidationError]]:
    """The manifest of dataset directory ``path`` and every problem found in it."""
    file = path / MANIFEST
    if not file.exists():
        return None, [
            DataValidationError(
                str(file), MANIFEST, "a manifest file", "no file", "Is this a dataset directory?"
            )
        ]
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, [
            DataValidationError(str(file), MANIFEST, "valid JSON", f"unreadable ({e})", RECREATE_HINT)
        ]
    if not isinstance(manifest, dict):
        return None, [DataValidationError(str(file), MANIFEST, "a JSON object", type(manifest).__name__)]
    problems = [
        DataValidationError(str(file), key, "a key of the manifest", "missing key", RECREATE_HINT)
        for key in MANIFEST_KEYS
        if key not in manifest
    ]
    problems += _manifest_value_problems(str(file), manifest)
    return manifest, problems


def _manifest_value_problems(file: str, manifest: dict[str, Any]) -> list[DataValidationError]:
    problems = []

    def bad(key: str, expected: str, hint: str = "") -> None:
        problems.append(DataValidationError(file, key, expected, repr(manifest[key]), hint))

    if manifest.get("format", FORMAT_NAME) != FORMAT_NAME:
        bad("format", repr(FORMAT_NAME))
    version = manifest.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        bad(
            "schema_version", f"one of {list(SUPPORTED_SCHEMA_VERSIONS)}",
            "The dataset was written by another version of the toolkit; re-create it with this one.",
        )  # fmt: skip
    elif version < 2 and "appropriate" in manifest:
        bad("schema_version", "2 (the manifest names appropriate sets, which schema 1 has not)")
    if "fps" in manifest and fps_problem(manifest["fps"]):
        bad("fps", f"a frame rate in (0, {MAX_FPS:g}]")
    if manifest.get("expression_basis", EXPRESSION_BASES[0]) not in EXPRESSION_BASES:
        bad("expression_basis", f"one of {EXPRESSION_BASES}")
    splits = manifest.get("splits", ["train"])
    if not isinstance(splits, list) or not splits or not all(isinstance(s, str) and s for s in splits):
        bad("splits", "a non-empty list of split names")
    num_clips = manifest.get("num_clips", 1)
    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1:
        bad("num_clips", "a positive integer")
    arrays = manifest.get("arrays", {name: {} for name in REQUIRED_ARRAYS})
    if not isinstance(arrays, dict):
        bad("arrays", "an object naming each array file")
    else:
        for name in REQUIRED_ARRAYS:
            if name not in arrays:
                problems.append(
                    DataValidationError(file, f"arrays.{name}", "an entry for a required array", "none")
                )
        for name in arrays:
            if name not in ARRAY_WIDTH:
                problems.append(
                    DataValidationError(file, f"arrays.{name}", f"one of {list(ARRAY_WIDTH)}", repr(name))
                )
    return problems


def array_file(path: Path, name: str, manifest: dict[str, Any] | None) -> Path:
    spec = ((manifest or {}).get("arrays") or {}).get(name)
    return path / (spec.get("file", f"{name}.npy") if isinstance(spec, dict) else f"{name}.npy")


def open_npy(file: Path, field: str, expected: str) -> tuple[np.ndarray | None, DataValidationError | None]:
    """Memory-map ``file`` (headers only are read); a problem instead when it is missing or unreadable."""
    if not file.exists():
        return None, DataValidationError(str(file), field, expected, "no file", RECREATE_HINT)
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False), None
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        return None, DataValidationError(
            str(file), field, f"a readable .npy, {expected}", array_load_problem(e), RECREATE_HINT
        )


def open_motion_array(
    path: Path, name: str, manifest: dict[str, Any] | None
) -> tuple[np.ndarray | None, list[DataValidationError]]:
    """Memory-map one frame array and check its header against the format and the manifest."""
    file = array_file(path, name, manifest)
    width = ARRAY_WIDTH.get(name)
    expected = f"a float32 array of shape (frames, {width if width is not None else 'd'})"
    array, problem = open_npy(file, name, expected)
    if array is None:
        return None, [problem] if problem else []
    problems = []
    if array.dtype != np.float32:
        problems.append(DataValidationError(str(file), name, "dtype float32", f"dtype {array.dtype}"))
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        problems.append(
            DataValidationError(str(file), name, expected.split(" of ")[1], f"shape {array.shape}")
        )
    if problems:
        return None, problems
    # A length that disagrees with the manifest still gives a usable array, so validation can also
    # compare it with the other arrays' lengths.
    spec = ((manifest or {}).get("arrays") or {}).get(name)
    if isinstance(spec, dict) and "shape" in spec and list(array.shape) != list(spec["shape"]):
        problems.append(
            DataValidationError(
                str(file), name, f"shape {tuple(spec['shape'])} (manifest.json)", f"shape {array.shape}"
            )
        )
    return array, problems


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 ``.npy`` header of fixed size, so it can be rewritten once the length is known."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    body_bytes = NPY_HEADER_BYTES - 10
    if len(text) + 1 > body_bytes:
        raise ValueError(f"shape {shape} too large for a {NPY_HEADER_BYTES}-byte .npy header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body_bytes) + text.ljust(body_bytes - 1) + b"\n"


class NpyAppender:
    """Writes a ``(rows, width)`` ``.npy`` file row block by row block, without knowing the row count."""

    def __init__(self, file: Path, width: int, dtype: type | np.dtype = np.float32) -> None:
        self.file, self.width, self.dtype, self.rows = file, width, np.dtype(dtype), 0
        self._handle: BinaryIO = open(file, "wb")  # noqa: SIM115 (closed by close(), after the last block)
        self._handle.write(npy_header((0, width), self.dtype))

    def append(self, block: np.ndarray) -> None:
        self._handle.write(np.ascontiguousarray(block, dtype=self.dtype.newbyteorder("<")).tobytes())
        self.rows += int(block.shape[0])

    def close(self) -> None:
        if self._handle.closed:
            return
        self._handle.seek(0)
        self._handle.write(npy_header((self.rows, self.width), self.dtype))
        self._handle.close()


def open_index(
    path: Path, manifest: dict[str, Any] | None
) -> tuple[np.ndarray | None, np.ndarray | None, list[DataValidationError]]:
    """Memory-map the clip index and the clip ids, checking their headers against the manifest."""
    problems = []
    count = (manifest or {}).get("num_clips")
    rows = count if isinstance(count, int) else "N"
    shape = f"({rows}, {len(INDEX_COLUMNS)})"
    index, problem = open_npy(path / CLIP_INDEX, "clip index", f"int64 of shape {shape}")
    if problem:
        problems.append(problem)
    elif index is not None and (
        index.dtype != np.int64 or index.ndim != 2 or index.shape[1] != len(INDEX_COLUMNS)
        or (isinstance(count, int) and len(index) != count)
    ):  # fmt: skip
        problems.append(
            DataValidationError(
                str(path / CLIP_INDEX),
                "clip index",
                f"int64 of shape {shape} (num_clips in manifest.json)",
                f"{index.dtype} of shape {index.shape}",
                RECREATE_HINT,
            )
        )
        index = None
    ids, problem = open_npy(path / CLIP_IDS, "clip ids", f"a unicode array of {rows} ids")
    if problem:
        problems.append(problem)
    elif ids is not None and (
        ids.dtype.kind != "U" or ids.ndim != 1 or (isinstance(count, int) and len(ids) != count)
    ):
        problems.append(
            DataValidationError(
                str(path / CLIP_IDS),
                "clip ids",
                f"a unicode array of {rows} ids (num_clips in manifest.json)",
                f"{ids.dtype} of shape {ids.shape}",
                RECREATE_HINT,
            )
        )
        ids = None
    return index, ids, problems
