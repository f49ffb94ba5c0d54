"""One way to read a config dataclass from a mapping (a YAML file's fields), for every package.

:func:`config_from_dict` rejects unknown keys (naming the known ones, and the closest when it is a typo),
checks the type of every simple field (``int``, ``float``, ``bool``, ``str``, paths, optionals, lists, tuples and
mappings) and builds nested dataclass sections from nested mappings, so a wrong value fails when the file is
read, with the field's name, rather than deep inside a run. The dataclass's own ``__post_init__`` then checks
ranges. Pure Python: no numpy, no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

T = TypeVar("T")


def config_from_dict(cls: type[T], values: Any, name: str, *, flat_sections: Sequence[str] = ()) -> T:
    """An instance of dataclass ``cls`` from ``values``; ``name`` prefixes the errors (e.g. ``"sft config"``).

    ``flat_sections`` names nested sections whose fields an older, flat file may give at the top level: such a
    key moves into the section (or the section's own nested section) that has a field of its name.

    Raises:
        ValueError: ``values`` is not a mapping, holds an unknown key, a key both flat and in its section, or a
            value of the wrong type (naming the field, what was expected and what was found).
    """
    return _build(cls, values, name, "", flat_sections)


def _build(cls: type[T], values: Any, name: str, prefix: str, flat_sections: Sequence[str] = ()) -> T:
    """``config_from_dict`` of a section whose keys are spelled ``prefix + key`` in the errors."""
    if not isinstance(values, Mapping):
        where = f"{prefix[:-1]} must be" if prefix else "expected"
        raise ValueError(f"{name}: {where} a mapping of fields, found {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    if flat_sections:
        values = _into_sections(values, known, {s: hints[s] for s in flat_sections}, name)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown fields {[prefix + k for k in unknown]}{_did_you_mean(unknown, known)}; "
                         f"known fields{' of ' + prefix[:-1] if prefix else ''}: {', '.join(sorted(known))}")  # fmt: skip
    return cls(**{key: _field_value(hints[key], value, name, prefix + key) for key, value in values.items()})


def _into_sections(
    values: Mapping[str, Any], known: list[str], sections: dict[str, Any], name: str
) -> dict[str, Any]:
    """``values`` with each key that is no field of their own moved to where a section has it."""
    out = dict(values)
    for key in sorted(set(values) - set(known)):
        path = next((p for s, hint in sections.items() if (p := _path_to(hint, key, [s]))), None)
        if path is None:
            continue  # unknown everywhere: config_from_dict names it
        node = out
        for part in path[:-1]:
            child = node.get(part) or {}
            if not isinstance(child, Mapping):
                raise ValueError(f"{name}: {part} must be a mapping of fields, found {child!r}")
            node[part] = node = dict(child)  # copies: the caller's mappings stay as they were
        if key in node:
            raise ValueError(
                f"{name}: {key} is given twice, at the top and as {'.'.join(path)}; keep the second"
            )
        node[key] = out.pop(key)
    return out


def _path_to(hint: Any, key: str, prefix: list[str]) -> list[str] | None:
    """The field names from a dataclass ``hint`` down to a field ``key`` (depth first), or None."""
    if not (dataclasses.is_dataclass(hint) and isinstance(hint, type)):
        return None
    names = [f.name for f in dataclasses.fields(hint) if f.init]
    if key in names:
        return [*prefix, key]
    nested = typing.get_type_hints(hint)
    return next((p for n in names if (p := _path_to(nested[n], key, [*prefix, n]))), None)


def _did_you_mean(unknown: list[str], known: list[str]) -> str:
    close = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
    hints = [f"{match[0]!r} for {key!r}" for key, match in close.items() if match]
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def _field_value(hint: Any, value: Any, name: str, key: str) -> Any:
    """``value`` for a field typed ``hint``: a nested section built, anything else checked and kept as given."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type) and isinstance(value, Mapping):
        return _build(hint, value, name, key + ".")
    if not _matches(hint, value):
        raise ValueError(f"{name}: {key} must be {_describe(hint)}, found {value!r} ({type(value).__name__})"
                         f"{_yaml_hint(hint, value)}")  # fmt: skip
    return value


def _matches(hint: Any, value: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, TypeVar):
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(arg, value) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is Path:
        return isinstance(value, (str, Path))
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        element = args[0] if args and (origin is not tuple or args[-1] is Ellipsis or len(args) == 1) else Any
        return all(_matches(element, v) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a form this reader does not check (Literal, Callable, ...): the dataclass checks it


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path",
             type(None): "null"}  # fmt: skip
    if hint in names:
        return names[hint]
    if origin in (list, tuple) or hint in (list, tuple):
        plurals = {
            bool: "true/false values",
            int: "integers",
            float: "numbers",
            str: "strings",
            Path: "paths",
        }
        return f"a list of {plurals[args[0]]}" if args and args[0] in plurals else "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} fields"  # type: ignore[union-attr]
    return getattr(hint, "__name__", str(hint))


def _yaml_hint(hint: Any, value: Any) -> str:
    # YAML 1.1 reads 1e-3 (no dot) as text: the commonest way a number arrives as a string.
    if isinstance(value, str) and _matches(hint, 1.0):
        try:
            float(value)
        except ValueError:
            return ""
        return "; YAML reads a number without a dot in its mantissa (1e-3) as text: write 1.0e-3"
    return ""
