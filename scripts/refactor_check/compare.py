"""Compare two run folders of ``stages.py`` file by file and print a Markdown report.

Usage: ``python compare.py BASE_DIR HEAD_DIR [--title TITLE]``.

Files are paired by relative path (TensorBoard event files by folder, their names hold a time and a host).
A pair is *identical* (same bytes), *same values* (bytes differ, every array, tensor, table row and JSON value
is equal, e.g. a JSON file written with other formatting or a key order), *shared values equal* (one side has
keys the other lacks, e.g. a new field, and every key both have holds the same value) or *differs*, with what
differs: arrays and tensors (shape, dtype, how many entries, the largest difference), JSON values by key path,
SQLite tables by column, text by line. Values that hold wall-clock times are listed apart as *volatile*.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

SKIP = {"log.txt", "code_paths.json"}
TRANSIENT = ("-wal", "-shm", "-journal")  # SQLite's side files: their content is read through the database
EVENTS = "events.out.tfevents"
VOLATILE = re.compile(r"(^|[._/])(time|times|timings|seconds|elapsed|wall|created|started|finished|date)"
                      r"|_s$|_seconds$|_at$|seconds_|per_second", re.IGNORECASE)  # fmt: skip
MAX_LINES = 8


def files(root: Path) -> dict[str, Path]:
    """Relative path -> file; TensorBoard event files keyed by their folder."""
    found = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if rel in SKIP or rel.endswith(TRANSIENT):
            continue
        if path.name.startswith(EVENTS):
            rel = f"{path.parent.relative_to(root).as_posix()}/{EVENTS}*"
        found[rel] = path
    return found


# --- value loaders: a file as a flat dict of named values ------------------------------------------------------
def arrays(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix
    if suffix == ".npy":
        return {"": np.load(path, allow_pickle=False)}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    if suffix == ".pt":
        import torch

        loaded = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.numpy() for k, v in _tensors(loaded, "")}
    raise ValueError(suffix)


def _tensors(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    import torch

    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{prefix}[{i}]")
    else:
        yield prefix, torch.tensor(np.array(repr(value)).view(np.uint8))


def json_values(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".jsonl":
        return _flatten([json.loads(line) for line in text.splitlines() if line.strip()], "")
    return _flatten(json.loads(text), "")


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: value}


def sqlite_rows(path: Path) -> dict[str, Any]:
    """Every table's rows as ``table.column[i]`` values (rows in primary-key order)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        out: dict[str, Any] = {}
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
            out[f"{table}.rows"] = len(rows)
            for i, row in enumerate(rows):
                for column, value in zip(columns, row):
                    out.update(_cell(f"{table}.{column}[{i}]", value))
        return out
    finally:
        db.close()


def _cell(key: str, value: Any) -> dict[str, Any]:
    """A table cell as values: bytes as hex, a JSON object or list stored as text by its keys."""
    if isinstance(value, bytes):
        return {key: value.hex()}
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _flatten(json.loads(value), key)
        except json.JSONDecodeError:
            pass
    return {key: value}


def event_scalars(path: Path) -> dict[str, Any]:
    """Every scalar of a TensorBoard log folder as ``tag@step`` values (the wall times left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path.parent), size_guidance={"scalars": 0})
    acc.Reload()
    return {f"{tag}@{e.step}": e.value for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}


# --- comparison -------------------------------------------------------------------------------------------------
def compare_values(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(what differs among the keys both have, what only one has or moved, volatile keys that differ).

    A key only one side has whose value the other holds under another section (``x`` -> ``model.x``, the
    config loader's nesting) counts as moved, not as lost and added.
    """
    differs, added, volatile = [], [], []
    for key in sorted(set(a) & set(b), key=str):
        if not _equal(a[key], b[key]):
            line = f"`{key}`: {_text_diff(a[key], b[key]) or _show(a[key]) + ' -> ' + _show(b[key])}"
            if VOLATILE.search(re.sub(r"\[\d+\]", "", key)):
                volatile.append(line)
            elif _lines_added(a[key], b[key]):  # e.g. a table that gained a row: every old line kept
                added.append(line)
            else:
                differs.append(line)
    return differs, _unshared(a, b) + added, volatile


def _lines_added(x: Any, y: Any) -> bool:
    """Whether ``y`` is the multi-line text ``x`` with lines added (none changed or removed)."""
    return isinstance(x, str) and isinstance(y, str) and set(x.splitlines()) <= set(y.splitlines())


def _unshared(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    only_a, only_b = sorted(set(a) - set(b), key=str), sorted(set(b) - set(a), key=str)
    moved = []
    for key in list(only_a):
        target = next((k for k in only_b if _nested(key, k) and _equal(a[key], b[k])), None)
        if target is not None:
            moved.append(f"`{key}` -> `{target}`")
            only_a.remove(key)
            only_b.remove(target)
    lines = []
    if moved:
        lines.append(f"{len(moved)} keys moved with the same value: " + ", ".join(moved[:4])
                     + (", ..." if len(moved) > 4 else ""))  # fmt: skip
    for side, keys in (("base", only_a), ("head", only_b)):
        if keys:
            families = _families(keys)
            shown = ", ".join(f"`{k}`" for k in families[:8]) + (", ..." if len(families) > 8 else "")
            lines.append(f"{len(keys)} keys only in {side}: {shown}")
    return lines


def _nested(old: str, new: str) -> bool:
    """Whether ``new`` is ``old`` with sections inserted or removed in one place (``a.b`` <-> ``a.model.b``)."""
    longer, shorter = (new, old) if new.count(".") > old.count(".") else (old, new)
    parts, cut = longer.split("."), longer.count(".") - shorter.count(".")
    return cut > 0 and any(".".join(parts[:i] + parts[i + cut :]) == shorter for i in range(len(parts) - cut))


def _families(keys: list[str]) -> list[str]:
    """Keys with list indices folded (``a[0].b``, ``a[1].b`` -> ``a[*].b``), in first-seen order."""
    return list(dict.fromkeys(re.sub(r"\[\d+\]", "[*]", k) for k in keys))


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        return bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    if isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y):
        return True
    return type(x) is type(y) and x == y


def _text_diff(x: Any, y: Any) -> str:
    """For two multi-line strings (e.g. a Markdown table): the lines only one of them has."""
    if not (isinstance(x, str) and isinstance(y, str) and "\n" in x + y):
        return ""
    lines_x, lines_y = x.splitlines(), y.splitlines()
    gone = [line for line in lines_x if line not in lines_y]
    new = [line for line in lines_y if line not in lines_x]
    parts = [f"{len(gone)} lines only in base" + (f" (first: {_show(gone[0])})" if gone else ""),
             f"{len(new)} lines only in head" + (f" (first: {_show(new[0])})" if new else "")]  # fmt: skip
    return "; ".join(parts)


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.dtype}{list(value.shape)}"
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def describe_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    lines = []
    for key in sorted(set(a) | set(b)):
        name = f"`{key}`" if key else "array"
        if key not in a or key not in b:
            lines.append(f"{name} only in {'head' if key not in a else 'base'}")
            continue
        x, y = a[key], b[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            lines.append(f"{name}: {x.dtype}{list(x.shape)} -> {y.dtype}{list(y.shape)}")
        elif not _equal(x, y):
            diff = x != y
            detail = ""
            if x.dtype.kind in "fiu":
                gap = np.abs(x.astype(np.float64) - y.astype(np.float64))
                detail = f", largest difference {float(np.nanmax(gap)):.3g}"
            lines.append(f"{name}: {int(diff.sum())} of {x.size} entries differ{detail}")
    return lines


def compare_file(a: Path, b: Path, rel: str) -> tuple[str, list[str]]:
    """(status, detail lines) of one pair of files."""
    if not rel.endswith("*") and a.read_bytes() == b.read_bytes():
        return "identical", []
    suffix = a.suffix
    volatile: list[str] = []
    unshared: list[str] = []
    if rel.endswith("*"):
        differs, unshared, volatile = compare_values(event_scalars(a), event_scalars(b))
    elif suffix in (".npy", ".npz", ".safetensors", ".pt"):
        differs = describe_arrays(arrays(a), arrays(b))
    elif suffix in (".json", ".jsonl"):
        differs, unshared, volatile = compare_values(json_values(a), json_values(b))
    elif suffix == ".db":
        differs, unshared, volatile = compare_values(sqlite_rows(a), sqlite_rows(b))
    elif suffix in (".md", ".txt", ".yaml", ".csv"):
        diff = difflib.unified_diff(a.read_text().splitlines(), b.read_text().splitlines(), lineterm="", n=0)
        differs = [f"`{line}`" for line in list(diff)[2:] if not line.startswith("@@")]
    else:
        differs = ["bytes differ"]
    if differs:
        return "differs", differs + unshared
    if unshared:
        return "shared values equal" + (" (volatile fields differ)" if volatile else ""), unshared + volatile
    return ("same values" + (" (volatile fields differ)" if volatile else "")), volatile


def report(base: Path, head: Path, title: str) -> str:
    a, b = files(base), files(head)
    rows: dict[str, dict[str, int]] = {}
    details: list[str] = []
    for rel in sorted(set(a) | set(b)):
        stage = rel.split("/")[0] if "/" in rel else rel.rsplit(".", 1)[0]
        if rel not in a or rel not in b:
            status, lines = f"only in {'head' if rel not in a else 'base'}", []
        else:
            status, lines = compare_file(a[rel], b[rel], rel)
        counts = rows.setdefault(stage, {})
        key = status.split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
        if status != "identical":
            details.append(f"- `{rel}`: **{status}**")
            details += [f"  - {line}" for line in lines[:MAX_LINES]]
            if len(lines) > MAX_LINES:
                details.append(f"  - ... and {len(lines) - MAX_LINES} more")
    kinds = ["identical", "same values", "shared values equal", "differs", "only in base", "only in head"]
    out = [f"## {title}", "", "| stage | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for stage, counts in rows.items():
        out.append(f"| {stage} | " + " | ".join(str(counts.get(k, 0)) for k in kinds) + " |")
    out += ["", "Files that are not identical:" if details else "Every file is identical.", "", *details]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("head", type=Path)
    parser.add_argument("--title", default="base against head")
    args = parser.parse_args()
    print(report(args.base, args.head, args.title))


if __name__ == "__main__":
    main()
