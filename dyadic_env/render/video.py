"""Videos (H.264 MP4 through imageio-ffmpeg), single pair frames for the environment, contact sheets."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from dyadic_env.render.renderer import Renderer, _check_pair


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> Path:
    """Write uint8 RGB images of ``size`` (width, height) as an H.264 MP4; returns the path.

    The file is written next to its destination and renamed at the end, so a failure leaves no partial
    video under the final name.
    """
    import imageio_ffmpeg

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"videos are written as H.264 MP4; give a path ending in .mp4, not {path.name!r}")
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"H.264 (yuv420p) needs even width and height; got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.mp4")
    writer = imageio_ffmpeg.write_frames(
        str(tmp),
        (width, height),
        fps=float(fps),
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        quality=None,
        # faststart: browsers (the annotation app) can start playing before the whole file arrives.
        output_params=["-preset", "veryfast", "-crf", "20", "-movflags", "+faststart"],
    )
    writer.send(None)
    try:
        for image in frames:
            if image.shape != (height, width, 3) or image.dtype != np.uint8:
                raise ValueError(
                    f"video frames must be uint8 ({height}, {width}, 3); got {image.dtype} {image.shape}"
                )
            writer.send(np.ascontiguousarray(image))
        writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            writer.close()
            tmp.unlink()
    return path


def render_video(
    path: str | Path,
    speaker_frames: np.ndarray,
    listener_frames: np.ndarray,
    fps: float,
    captions: Sequence[str] | None = None,
    expression_basis: str = "ict-arkit",
    size: int = 256,
    *,
    renderer: Renderer | None = None,
    backend: str | None = None,
) -> Path:
    """Render speaker|listener side by side to an H.264 MP4 at ``fps``; each panel is ``size`` square.

    Frames are rendered and encoded in chunks, so a long clip needs little memory.
    """
    speaker, listener = _check_pair(speaker_frames, listener_frames, captions)
    own = renderer is None
    r = renderer or Renderer(size, size, backend=backend)
    try:
        images = r.iter_frames(speaker, listener, captions, expression_basis)
        return write_video(path, images, fps, (2 * r.width, r.height))
    finally:
        if own:
            r.close()


def render_pair_frame(
    renderer: Renderer,
    speaker_frame: np.ndarray,
    listener_frame: np.ndarray,
    caption: str | None = None,
    expression_basis: str = "ict-arkit",
) -> np.ndarray:
    """One speaker|listener image, uint8 (H, 2W, 3): what ``ListenerEnv.render()`` returns."""
    speaker = np.asarray(speaker_frame, np.float32).reshape(1, -1)
    listener = np.asarray(listener_frame, np.float32).reshape(1, -1)
    captions = [caption] if caption else None
    return renderer.render_frames(speaker, listener, captions, expression_basis)[0]


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames of a video as uint8 (T, H, W, 3) and its frame rate."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(height, width, 3) for b in reader]
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8), float(meta["fps"])


def contact_sheet(
    images: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int | None = None
) -> np.ndarray:
    """Tile equally sized images into a grid (row-major) with an optional label under each tile."""
    from dyadic_env.render.text import font

    if not images:
        raise ValueError("a contact sheet needs at least one image")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise ValueError("all images of a contact sheet must have the same size")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    size = max(10, h // 14)
    label_h = int(size * 1.8) if labels is not None else 0
    pad = 4
    sheet = np.full((rows * (h + label_h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        y, x = pad + r * (h + label_h + pad), pad + c * (w + pad)
        sheet[y : y + h, x : x + w] = image[..., :3]
    if labels is not None:
        from PIL import Image, ImageDraw

        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        for k, label in enumerate(labels):
            r, c = divmod(k, columns)
            cx, cy = pad + c * (w + pad) + w / 2, pad + r * (h + label_h + pad) + h + label_h / 2
            draw.text((cx, cy), label, font=font(size), fill=(40, 40, 40), anchor="mm")
        sheet = np.asarray(pil)
    return sheet


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Save a uint8 RGB image (PNG or JPEG by suffix)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path
