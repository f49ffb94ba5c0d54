"""Video paths: stored relative to the campaign directory, and never allowed to leave it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class MediaPathError(ValueError):
    """A video path that is absolute, climbs out of the campaign directory, or resolves outside it."""


def relative_media_path(media_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    """The path of a video file as stored: relative to ``media_dir``, POSIX separators.

    ``path`` may be absolute (it must lie inside ``media_dir`` after resolving symlinks) or relative to
    ``media_dir``.

    Raises:
        MediaPathError: the file lies outside the campaign directory.
    """
    root = Path(media_dir).resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not full.is_relative_to(root):
        raise MediaPathError(f"video {path} is outside the campaign directory {root}; keep videos inside it")
    return full.relative_to(root).as_posix()


def resolve_media(media_dir: str | os.PathLike, stored: str) -> Path:
    """The file a stored video path names, checked to be a regular file inside ``media_dir``.

    Symlinks are followed before the check, so a link that points outside the directory is refused.

    Raises:
        MediaPathError: absolute paths, ``..`` components, or a target outside the directory.
        FileNotFoundError: the file is missing.
    """
    rel = PurePosixPath(stored)
    if rel.is_absolute() or ".." in rel.parts or "\\" in stored or "\x00" in stored:
        raise MediaPathError(f"stored video path {stored!r} must be relative and stay inside the campaign")
    root = Path(media_dir).resolve()
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise MediaPathError(f"video path {stored!r} resolves outside the campaign directory")
    if not full.is_file():
        raise FileNotFoundError(f"video {stored!r} is missing from the campaign directory {root}")
    return full
