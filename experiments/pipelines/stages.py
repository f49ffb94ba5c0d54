"""Resumable pipeline stages.

A stage writes its output into ``<output>.partial`` and renames it into place only on success, so an
interrupted run never leaves a half-written output, and a stage whose output exists is skipped on re-run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path


def run_stage(
    name: str, output: Path, build: Callable[[Path], None], *, log: Callable[[str], None] = print
) -> Path:
    """Run ``build(tmp)`` unless ``output`` exists; ``build`` fills ``tmp``, which becomes ``output``.

    ``output`` may be a file or a directory: ``build`` receives the temporary path to create.
    """
    if output.exists():
        log(f"[{name}] done already: {output} (delete it to redo the stage)")
        return output
    partial = output.with_name(output.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)
    elif partial.exists():
        partial.unlink()
    log(f"[{name}] running")
    start = time.perf_counter()
    build(partial)
    if not partial.exists():
        raise RuntimeError(f"stage {name!r} finished without writing {partial}")
    partial.rename(output)
    log(f"[{name}] finished in {time.perf_counter() - start:.1f} s -> {output}")
    return output
