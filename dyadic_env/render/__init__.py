"""Rendering faces: speaker|listener images and H.264 videos of motion frames (pyrender, offscreen).

Importing this package is cheap; pyrender, torch and smplx load when a :class:`Renderer` is created.
"""

from dyadic_env.render.renderer import BACKENDS, Renderer, RenderingUnavailable
from dyadic_env.render.video import (
    contact_sheet,
    read_video,
    render_pair_frame,
    render_video,
    save_image,
    write_video,
)

__all__ = [
    "BACKENDS", "Renderer", "RenderingUnavailable", "contact_sheet", "read_video", "render_pair_frame",
    "render_video", "save_image", "write_video",
]  # fmt: skip
