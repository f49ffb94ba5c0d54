"""Blinding: candidates that nothing but their motion tells apart, down to the bytes a browser receives.

One rendering rule for the whole project (``dyadic feedback collect`` and the alignment pipelines call
:func:`render_group`): every candidate, the ground truth included, is rendered from action tokens decoded
by the campaign's tokenizer, so the ground truth is quantized exactly like a policy's output. The speaker
side and captions are identical within a group. Files get random names, are rendered in a shuffled order
and share one timestamp.

Serving adds the rest (:mod:`human_feedback.server`): videos go out without ``ETag`` or
``Last-Modified`` (validators would link a repeated page to the first one and date the files), under
per-page URLs, and padded to one size per group with an MP4 ``free`` box (:func:`padding`), so
``Content-Length`` says nothing either; ``free`` boxes are part of the MP4 format and players skip them.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from human_feedback.store import new_public_id

FREE_BOX_HEADER = 8  # 32-bit size + b"free"


def captions_for(clip: Any, window_s: float = 3.0, max_chars: int = 48) -> list[str]:
    """The speaker's recent words at every frame (burned into the video: the clips have no audio)."""
    times = np.arange(clip.num_frames) / clip.fps
    words = sorted(clip.speaker_words, key=lambda w: w[0])
    out = []
    for t in times:
        text = " ".join(str(w[2]) for w in words if w[0] <= t and w[1] >= t - window_s)
        out.append(text[-max_chars:].lstrip() if len(text) > max_chars else text)
    return out


def render_group(
    renderer: Any,
    media_dir: str | os.PathLike,
    clip: Any,
    tokens: Sequence[np.ndarray],
    tokenizer: Any,
    expression_basis: str,
    *,
    seed: int = 0,
) -> list[Path]:
    """Render one group's candidates as speaker|listener MP4s under ``media_dir/videos``.

    Args:
        renderer: a :class:`dyadic_env.render.Renderer` (its panel size is the videos' size).
        media_dir: the campaign directory.
        clip: the clip (speaker motion, words, fps).
        tokens: each candidate's listener as (T, 56) action tokens; the ground truth as
            ``tokenizer.encode(listener_motion)``, like every other candidate.
        tokenizer: the campaign's action tokenizer (decodes the tokens).
        expression_basis: the dataset's expression basis.
        seed: seeds the order of rendering.

    Returns:
        the video paths, in the order of ``tokens``.
    """
    from dyadic_env.render import write_video

    captions = captions_for(clip)
    speaker = renderer.render_faces(np.asarray(clip.speaker_motion, dtype=np.float32), expression_basis)
    width, height = renderer.width, renderer.height
    # Absolute: a store reads a relative video path against the campaign's media directory, not the cwd.
    paths = [Path(media_dir).resolve() / "videos" / f"{new_public_id('v')}.mp4" for _ in tokens]
    for i in np.random.default_rng([seed, 17]).permutation(len(tokens)):
        listener = renderer.render_faces(tokenizer.decode(np.asarray(tokens[i])), expression_basis)
        write_video(paths[i], _frames(speaker, listener, captions, width), clip.fps, (2 * width, height))
    stamp = time.time()
    for path in paths:
        os.utime(path, (stamp, stamp))
    return paths


def _frames(
    speaker: np.ndarray, listener: np.ndarray, captions: list[str], width: int
) -> Iterator[np.ndarray]:
    from dyadic_env.render.text import draw_caption, draw_labels

    for t in range(len(speaker)):
        image = np.concatenate([speaker[t], listener[t]], axis=1)
        draw_labels(image, ("speaker", "listener"), width)
        if captions[t]:
            draw_caption(image, captions[t])
        yield image


def served_size(sizes: Sequence[int]) -> int:
    """The one size every video of a group is served at: room for at least an empty ``free`` box each."""
    return max(sizes) + FREE_BOX_HEADER


def padding(size: int, served: int) -> bytes:
    """The MP4 ``free`` box that takes a ``size``-byte file to ``served`` bytes."""
    extra = served - size
    if extra < FREE_BOX_HEADER:
        raise ValueError(f"a free box needs at least {FREE_BOX_HEADER} bytes, {extra} are left")
    return struct.pack(">I", extra) + b"free" + bytes(extra - FREE_BOX_HEADER)
