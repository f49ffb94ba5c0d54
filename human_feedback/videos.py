"""Serving a candidate's video so that nothing but its pictures tells it apart (:mod:`.blinding`).

Every video of a group goes out at one size (padded with an MP4 ``free`` box), whole or as one byte range
(browsers seek with ranges), and without ``ETag`` or ``Last-Modified``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import Response, StreamingResponse

from human_feedback import blinding
from human_feedback.media import MediaPathError, resolve_media


def served_size(root: Path, group: list[str]) -> int:
    """The size every video of a group is served at (stored paths relative to the campaign ``root``)."""
    sizes = []
    for stored in group:
        try:
            sizes.append(resolve_media(root, stored).stat().st_size)
        except (MediaPathError, FileNotFoundError):
            continue  # a sibling that cannot be served does not set the size
    return blinding.served_size(sizes)


def video_response(path: Path, served: int, range_header: str | None) -> Response:
    """The video padded to ``served`` bytes, whole or one byte range, without validators (no ETag, no
    Last-Modified: they would date the file and link repeated pages)."""
    size = path.stat().st_size
    tail = blinding.padding(size, served)
    start, end, status = 0, served - 1, 200
    if range_header:
        wanted = _byte_range(range_header, served)
        if isinstance(wanted, str):
            return Response(status_code=416, headers={"content-range": f"bytes */{served}"})
        if wanted is not None:
            (start, end), status = wanted, 206
    headers = {"accept-ranges": "bytes", "cache-control": "private, max-age=3600"}
    if status == 206:
        headers["content-range"] = f"bytes {start}-{end}/{served}"
    headers["content-length"] = str(end - start + 1)

    def chunks() -> Any:
        with path.open("rb") as f:
            f.seek(min(start, size))
            left = max(0, min(end + 1, size) - start)
            while left > 0:
                chunk = f.read(min(left, 256 * 1024))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        if end >= size:
            yield tail[max(0, start - size) : end + 1 - size]

    return StreamingResponse(chunks(), status_code=status, media_type="video/mp4", headers=headers)


def _byte_range(header: str, total: int) -> tuple[int, int] | str | None:
    """One ``bytes=a-b`` range (``a-`` and ``-n`` too) clipped to ``total``; "unsatisfiable"; or None for a
    header to ignore (malformed or several ranges: the whole body is sent, as HTTP allows)."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep or not (first.isdigit() or last.isdigit()):
        return None
    if not first.isdigit():  # the last n bytes
        n = int(last)
        return (max(0, total - n), total - 1) if n > 0 else "unsatisfiable"
    start = int(first)
    end = min(int(last), total - 1) if last.isdigit() else total - 1
    if start >= total:
        return "unsatisfiable"
    return None if end < start else (start, end)
