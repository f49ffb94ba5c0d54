"""Dataset specs ``SCHEME:NAME`` that :func:`~dyadic_env.data.load_dataset` resolves to a directory.

A scheme maps to a resolver ``fn(name) -> directory``, registered by string entry point
(``"package.module:function"``) and imported on first use, as Gymnasium registers environments. The data
layer so names no package above it: ``dyadic_env`` registers ``synthetic`` (its generator's cache), and a
user can add a scheme for their own data store.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

Resolver = Callable[[str], "str | os.PathLike"]
_SCHEMES: dict[str, str | Resolver] = {}


def register_scheme(scheme: str, resolver: str | Resolver, *, overwrite: bool = False) -> None:
    """Resolve ``SCHEME:NAME`` specs with ``resolver(NAME)`` (a callable or a ``"module:function"`` string)."""
    if not scheme.isidentifier():
        raise ValueError(f"scheme: expected a name such as 'synthetic', found {scheme!r}")
    if scheme in _SCHEMES and not overwrite and _SCHEMES[scheme] != resolver:
        raise ValueError(f"a dataset scheme {scheme!r} is registered; pass overwrite=True to replace it")
    _SCHEMES[scheme] = resolver


def schemes() -> list[str]:
    return sorted(_SCHEMES)


def resolve_spec(spec: str) -> Path:
    """The directory of ``spec``: a path as is, or ``SCHEME:NAME`` through the scheme's resolver.

    A spec whose prefix is no registered scheme is a path (so ``C:/data`` and ``./a:b`` stay paths).
    """
    scheme, sep, name = spec.partition(":")
    if not sep or scheme not in _SCHEMES:
        return Path(spec)
    resolver = _SCHEMES[scheme]
    if isinstance(resolver, str):
        module, _, attribute = resolver.partition(":")
        resolver = getattr(importlib.import_module(module), attribute)
        _SCHEMES[scheme] = resolver
    return Path(resolver(name))  # type: ignore[operator]
