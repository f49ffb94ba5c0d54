"""The shipped YAML configs, and how a config file is read.

A config may start from another with ``base: other.yaml`` (a path relative to the file's folder, else a
shipped config's name): the base's fields are read first and the file's own fields override them (a section,
such as ``model:``, key by key), so a variant states only what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parent


def read_config(path: str | Path) -> dict[str, Any]:
    """The fields of a YAML config, with its ``base`` chain resolved. ``path`` may name a shipped config.

    Raises:
        ValueError: a missing file, invalid YAML, a file that is not a mapping, or a ``base`` cycle, naming
            the file at fault.
    """
    path = Path(path)
    return _read(path if path.exists() else CONFIGS / path, ())


def _read(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    import yaml

    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path}: 'base' configs form a cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    if not path.exists():
        where = f" (the base of {seen[-1]})" if seen else ""
        raise ValueError(f"{path}{where}: no such config file (shipped configs live in {CONFIGS})")
    try:
        fields = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: expected a mapping of fields, found {type(fields).__name__}")
    base = fields.pop("base", None)
    if base is None:
        return fields
    if not isinstance(base, str):
        raise ValueError(f"{path}: 'base' must name a YAML file, found {base!r}")
    near = path.parent / base
    base_path = near if near.exists() or not (CONFIGS / base).exists() else CONFIGS / base
    return merge_fields(_read(base_path, (*seen, path)), fields)


def merge_fields(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``changes``; where both hold a mapping, the mappings merge key by key."""
    merged = dict(base)
    for key, value in changes.items():
        old = merged.get(key)
        merged[key] = merge_fields(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged
