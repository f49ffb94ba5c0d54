"""Text on rendered frames: panel labels and a caption line (the speaker's current words), drawn with PIL."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=16)
def font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fit_tail(draw: Any, text: str, fnt: Any, max_width: int) -> str:
    """The longest ending of ``text`` that fits: the newest words are the ones to show."""
    if draw.textlength(text, font=fnt) <= max_width:
        return text
    words = text.split()
    while len(words) > 1 and draw.textlength("... " + " ".join(words), font=fnt) > max_width:
        words = words[1:]
    return "... " + " ".join(words)


def draw_caption(image: np.ndarray, text: str) -> None:
    """Draw ``text`` on a dark band along the bottom of ``image`` (H, W, 3 uint8), in place."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    size = max(10, h // 16)
    band = int(size * 1.7)
    pil = Image.fromarray(image[h - band :])
    draw = ImageDraw.Draw(pil)
    fnt = font(size)
    shown = _fit_tail(draw, " ".join(text.split()), fnt, w - size)
    region = np.asarray(pil, dtype=np.float32)
    pil = Image.fromarray((region * 0.35).astype(np.uint8))  # darken the band so white text reads on clay
    draw = ImageDraw.Draw(pil)
    draw.text((w / 2, band / 2), shown, font=fnt, fill=(255, 255, 255), anchor="mm")
    image[h - band :] = np.asarray(pil)


def draw_labels(image: np.ndarray, labels: Sequence[str], panel_width: int) -> None:
    """Write one label in the top-left corner of each panel of ``image``, in place."""
    from PIL import Image, ImageDraw

    h = image.shape[0]
    size = max(9, h // 22)
    strip = int(size * 1.6)
    pil = Image.fromarray(image[:strip])
    draw = ImageDraw.Draw(pil)
    for k, label in enumerate(labels):
        draw.text(
            (k * panel_width + size // 2, strip // 2), label, font=font(size), fill=(90, 90, 90), anchor="lm"
        )
    image[:strip] = np.asarray(pil)
