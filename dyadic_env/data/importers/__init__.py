"""Importers of published dyadic datasets into the toolkit's format.

``import_dataset(format, src, out)`` reads ``src`` in one of :data:`FORMATS` and writes a dataset directory
(with its fitted action tokenizer) to ``out``. The ``read_*`` functions return the clips without
writing, for custom pipelines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dyadic_env.data.importers._common import ImportedData
from dyadic_env.data.importers.dualtalk import read_dualtalk
from dyadic_env.data.importers.l2l import read_l2l
from dyadic_env.data.importers.lm_listener import read_lm_listener

FORMATS: dict[str, Callable[..., ImportedData]] = {
    "l2l": read_l2l,
    "lm-listener": read_lm_listener,
    "dualtalk": read_dualtalk,
}


class ImportResult(NamedTuple):
    """Where the dataset went, how many clips it holds, and what the importer changed or assumed."""

    path: Path
    num_clips: int
    notes: list[str]


def import_dataset(
    format: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    name: str = "",
    **options: Any,
) -> ImportResult:
    """Read ``src`` in ``format`` (``l2l``, ``lm-listener`` or ``dualtalk``) and write a dataset to ``out``.

    ``seed`` draws the splits of sources that have none (LM-listener keeps its own). ``options`` go to
    the reader (``fps``, ``fractions``, ``trust_pickle`` for LM-listener, ``unpaired`` for DualTalk).
    When some clips are speaker-only, the tokenizer is fitted on the train split's real faces: the recorded
    listeners and those clips' speakers (their placeholder listeners would squeeze every bin onto zero).
    """
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {list(FORMATS)}, found {format!r}")
    if format != "lm-listener":
        options["seed"] = seed
    data = FORMATS[format](src, **options)
    from dyadic_env.data.writer import write_dataset

    # The notes list grows while the clips stream; the manifest is serialized after the last clip.
    import_info = {"format": format, "source": str(Path(src).resolve()), "seed": seed, "notes": data.notes}
    path = write_dataset(
        out, data.clips, fps=data.fps, expression_basis=data.expression_basis, name=name or Path(out).name,
        extra_manifest={"import": import_info},
    )  # fmt: skip
    if data.speaker_only:
        _fit_tokenizer_on_real_faces(path)
    return ImportResult(path, data.num_clips, data.notes)


def _fit_tokenizer_on_real_faces(path: Path, max_frames: int = 500_000) -> None:
    from dyadic_env.data.storage import DyadicDataset
    from dyadic_env.tokenizer import ActionTokenizer

    dataset = DyadicDataset(path)
    split = "train" if "train" in dataset.splits else dataset.splits[0]
    clips = dataset.split(split)
    step = max(1, clips.num_frames // max_frames)
    frames = np.concatenate([
        np.asarray(c.speaker_motion if c.meta.get("speaker_only") else c.listener_motion)[::step] for c in clips
    ])  # fmt: skip
    ActionTokenizer.fit(frames).save(path)
    manifest_file = path / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["tokenizer"] = {
        **(manifest.get("tokenizer") or {"file": "tokenizer.json"}), "frames": len(frames),
        "fitted_on": f"{split}: listeners, and the speakers of speaker-only clips",
    }  # fmt: skip
    partial = manifest_file.with_name(manifest_file.name + ".partial")
    partial.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, manifest_file)


__all__ = [
    "FORMATS",
    "ImportResult",
    "ImportedData",
    "import_dataset",
    "read_dualtalk",
    "read_l2l",
    "read_lm_listener",
]
