"""Importers of published dyadic datasets into the toolkit's format.

``import_dataset(format, src, out)`` reads ``src`` in one of :data:`FORMATS` and writes a dataset directory
(with its fitted action tokenizer) to ``out``. The ``read_*`` functions return the clips without
writing, for custom pipelines.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

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
    the reader (``fps``, ``fractions``, ``trust_pickle`` for LM-listener).
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
    return ImportResult(path, data.num_clips, data.notes)


__all__ = [
    "FORMATS",
    "ImportResult",
    "ImportedData",
    "import_dataset",
    "read_dualtalk",
    "read_l2l",
    "read_lm_listener",
]
