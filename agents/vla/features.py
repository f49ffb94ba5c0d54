"""Per-frame speaker visual features (paper eq. 2): DINOv2 and SigLIP embeddings, concatenated.

Both encoders load from local directories (``from_pretrained(path)``; nothing is downloaded). Each frame
gives DINOv2's pooled output (the normalised CLS token) and SigLIP's pooled output (its attention-pooling
head), concatenated as ``[v_dino; v_siglip]``: the ``speaker_features`` the VLA projects with ``MLP_vis``.
:func:`add_speaker_features` writes a copy of a dataset with these features computed from speaker videos.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

VIDEO_SUFFIXES = (".mp4", ".npy")
# Used when a model directory has no preprocessor_config.json (e.g. a test model built from a config).
_DEFAULT_STATS = {
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "siglip": ((0.5,) * 3, (0.5,) * 3),
}


class _Encoder:
    """One frozen vision encoder with its preprocessing."""

    def __init__(self, kind: str, path: Path, device: torch.device) -> None:
        from transformers import AutoImageProcessor, Dinov2Model, SiglipVisionModel

        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"--{kind.replace('v2', '')} {path}: no config.json; expected a local {kind} model directory"
            )
        cls = Dinov2Model if kind == "dinov2" else SiglipVisionModel
        self.kind, self.device = kind, device
        self.model = cls.from_pretrained(path).eval().to(device)  # type: ignore[attr-defined]
        self.processor = (
            AutoImageProcessor.from_pretrained(path) if (path / "preprocessor_config.json").exists() else None
        )
        self.size = int(self.model.config.image_size)
        self.dim = int(self.model.config.hidden_size)

    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        if self.processor is not None:
            return self.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(self.device)
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        mean, std = (torch.tensor(v, device=self.device).view(1, 3, 1, 1) for v in _DEFAULT_STATS[self.kind])
        return (x - mean) / std

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.model(pixel_values=self._pixels(frames)).pooler_output.float().cpu().numpy()


class VisualFeatureExtractor:
    """DINOv2 and/or SigLIP features of RGB frames.

    Args:
        dino_path: local ``Dinov2Model`` directory (or None).
        siglip_path: local ``SiglipVisionModel`` (or full SigLIP) directory (or None).
        device: torch device.
        batch_size: frames per forward pass.
    """

    def __init__(
        self,
        dino_path: str | Path | None = None,
        siglip_path: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        if dino_path is None and siglip_path is None:
            raise ValueError("give at least one encoder: dino_path and/or siglip_path")
        dev = torch.device(device)
        self.encoders = [_Encoder(kind, Path(p), dev) for kind, p in (("dinov2", dino_path), ("siglip", siglip_path))
                         if p is not None]  # fmt: skip
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return sum(e.dim for e in self.encoders)

    def describe(self) -> dict[str, Any]:
        return {e.kind: {"dim": e.dim, "image_size": e.size} for e in self.encoders}

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB frames -> (N, dim) float32 ``[v_dino; v_siglip]``."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames: expected (N, H, W, 3) RGB, found shape {frames.shape}")
        out = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start : start + self.batch_size]
            out.append(np.concatenate([enc(chunk) for enc in self.encoders], axis=1))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


def find_video(videos: Path, clip_id: str) -> Path:
    """The speaker video of a clip: ``VIDEOS/<clip_id>.mp4`` or ``.npy`` ((T, H, W, 3) uint8 frames)."""
    for suffix in VIDEO_SUFFIXES:
        path = videos / f"{clip_id}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{videos}: no speaker video for clip {clip_id!r}; expected {clip_id}.mp4 or {clip_id}.npy "
        "(RGB frames, one per motion frame or resampled by time)"
    )


def read_frames(path: Path) -> tuple[np.ndarray, float | None]:
    """RGB frames (N, H, W, 3) uint8 and the video's fps (None for .npy)."""
    if path.suffix == ".npy":
        frames = np.load(path)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"{path}: expected (T, H, W, 3) RGB frames, found shape {frames.shape}")
        return frames.astype(np.uint8), None
    import imageio.v3 as iio

    fps = iio.immeta(path).get("fps")
    return np.stack(list(iio.imiter(path))), (float(fps) if fps else None)


def align_frames(
    frames: np.ndarray, video_fps: float | None, clip_fps: float, num_frames: int, source: str
) -> np.ndarray:
    """Pick the video frame shown at each motion frame's time (same fps: one to one)."""
    rate = 1.0 if video_fps is None else video_fps / clip_fps
    index = np.floor(np.arange(num_frames) * rate + 1e-6).astype(int)
    short = int(index[-1]) - (len(frames) - 1)
    if short > 2:  # a frame or two of rounding at the end is tolerated
        raise ValueError(
            f"{source}: the video has {len(frames)} frames ({video_fps or clip_fps:g} fps) but the clip needs "
            f"{num_frames} motion frames at {clip_fps:g} fps; the video is {short} frames short"
        )
    return frames[np.minimum(index, len(frames) - 1)]


def add_speaker_features(
    dataset: str | Path,
    videos: str | Path,
    out: str | Path,
    extractor: VisualFeatureExtractor,
    *,
    progress: bool = True,
) -> Path:
    """Copy ``dataset`` to ``out`` with ``speaker_features`` computed from ``videos/<clip_id>.mp4|.npy``."""
    from tqdm.auto import tqdm

    from dyadic_env.data import load_dataset, write_dataset

    data = load_dataset(dataset)
    videos = Path(videos)
    if not videos.is_dir():
        raise FileNotFoundError(f"--videos {videos}: no such directory")
    missing = [cid for s in data.splits for cid in data.split(s).clip_ids if not any(
        (videos / f"{cid}{suf}").exists() for suf in VIDEO_SUFFIXES)]  # fmt: skip
    if missing:
        find_video(videos, missing[0])  # raises with the expected file names
    total = sum(len(data.split(s)) for s in data.splits)
    bar = tqdm(total=total, desc="features", disable=not progress)

    def clips() -> Iterator[tuple[str, Any]]:
        for split in data.splits:
            for clip in data.split(split):
                path = find_video(videos, clip.clip_id)
                frames, fps = read_frames(path)
                aligned = align_frames(frames, fps, clip.fps, clip.num_frames, str(path))
                bar.update(1)
                yield split, dataclasses.replace(clip, speaker_features=extractor(aligned))

    extra = {"speaker_features": {"encoders": extractor.describe(), "source_dataset": str(data.path)}}
    path = write_dataset(out, clips(), fps=data.fps, expression_basis=data.expression_basis, name=f"{data.name}-features",
                         extra_manifest=extra, fit_tokenizer=False)  # fmt: skip
    bar.close()
    if (data.path / "tokenizer.json").exists():
        shutil.copy(data.path / "tokenizer.json", path / "tokenizer.json")
    return path
