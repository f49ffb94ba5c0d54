"""Benchmarks behind `dyadic bench NAME`.

A benchmark is a function registered with :func:`benchmark` in a module of this package. It returns a
flat dict of figures; the framework prints them as JSON and as a Markdown table and can save both.
Speed targets are ratios against a baseline measured in the same run, never absolute timings in tests.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

Figures = dict[str, Any]
_REGISTRY: dict[str, tuple[Callable[..., Figures], str]] = {}


def benchmark(name: str, help: str) -> Callable[[Callable[..., Figures]], Callable[..., Figures]]:
    """Register ``fn(quick: bool) -> figures`` as ``dyadic bench NAME``."""

    def decorate(fn: Callable[..., Figures]) -> Callable[..., Figures]:
        _REGISTRY[name] = (fn, help)
        return fn

    return decorate


def registry() -> dict[str, tuple[Callable[..., Figures], str]]:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_REGISTRY.items()))


def to_markdown(name: str, figures: Figures) -> str:
    lines = [f"### bench {name}", "", "| figure | value |", "|---|---|"]
    for key, value in figures.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines)


def run(name: str, *, quick: bool = False, out_dir: Path | None = None) -> Figures:
    benches = registry()
    if name not in benches:
        raise KeyError(f"no benchmark {name!r}; choose one of {', '.join(benches)}")
    figures = benches[name][0](quick=quick)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"bench_{name}.json").write_text(json.dumps(figures, indent=2))
        (out_dir / f"bench_{name}.md").write_text(to_markdown(name, figures) + "\n")
    return figures
