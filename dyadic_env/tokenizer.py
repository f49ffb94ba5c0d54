"""The action tokenizer of paper section III-C2 (as in RT-2/OpenVLA).

Each of the 56 frame dimensions is discretized into 256 uniform bins spread between the 1st and 99th
percentile of the training values; values outside are clipped to the end bins; a token decodes to its bin
centre.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKENIZER_FORMAT = "dyadic-action-tokenizer"
# A dimension with no spread in training (e.g. an unused blendshape) still gets bins this wide, so
# encoding is defined and decoding returns the constant.
MIN_RANGE = 1e-6


@dataclass(frozen=True)
class ActionTokenizer:
    """Per-dimension uniform binning between clipping bounds ``low`` and ``high`` (each ``(D,)``)."""

    low: np.ndarray
    high: np.ndarray
    num_bins: int = 256
    clip_quantile: float = 0.01

    def __post_init__(self) -> None:
        low, high = np.asarray(self.low, np.float64), np.asarray(self.high, np.float64)
        if low.ndim != 1 or low.shape != high.shape:
            raise ValueError(
                f"low and high must be 1-D of the same length, found {low.shape} and {high.shape}"
            )
        if not (np.isfinite(low).all() and np.isfinite(high).all()) or (high < low).any():
            raise ValueError("low and high must be finite with high >= low in every dimension")
        if not 2 <= self.num_bins <= 65536:
            raise ValueError(f"num_bins must be in [2, 65536], found {self.num_bins}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", np.maximum(high, low + MIN_RANGE))

    @classmethod
    def fit(cls, frames: np.ndarray, num_bins: int = 256, clip_quantile: float = 0.01) -> ActionTokenizer:
        """Fit clipping bounds on training frames ``(N, D)`` (any leading shape, last axis D)."""
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim < 2 or frames.shape[-1] < 1:
            raise ValueError(f"fit expects frames of shape (N, D), found {frames.shape}")
        flat = frames.reshape(-1, frames.shape[-1])
        if not np.isfinite(flat).all():
            raise ValueError(
                "fit: frames contain NaN or inf; validate the dataset first (`dyadic data validate`)"
            )
        if not 0 <= clip_quantile < 0.5:
            raise ValueError(f"clip_quantile must be in [0, 0.5), found {clip_quantile}")
        low, high = np.quantile(flat, [clip_quantile, 1 - clip_quantile], axis=0)
        return cls(low=low, high=high, num_bins=num_bins, clip_quantile=clip_quantile)

    @property
    def dim(self) -> int:
        return int(self.low.shape[0])

    @property
    def bin_width(self) -> np.ndarray:
        return (self.high - self.low) / self.num_bins

    @property
    def bin_centers(self) -> np.ndarray:
        """``(D, num_bins)`` continuous value of every token."""
        return self.low[:, None] + (np.arange(self.num_bins)[None, :] + 0.5) * self.bin_width[:, None]

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Continuous ``(..., D)`` frames to int64 tokens of the same shape."""
        frames = np.asarray(frames, dtype=np.float64)
        self._check_last_axis(frames, "encode")
        if not np.isfinite(frames).all():
            raise ValueError("encode: frames contain NaN or inf")
        scaled = (np.clip(frames, self.low, self.high) - self.low) / self.bin_width
        return np.clip(np.floor(scaled), 0, self.num_bins - 1).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens ``(..., D)`` to float32 bin-centre frames."""
        tokens = np.asarray(tokens)
        self._check_last_axis(tokens, "decode")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"decode: tokens must be integers, found dtype {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.num_bins):
            bad = tokens[(tokens < 0) | (tokens >= self.num_bins)].ravel()[0]
            raise ValueError(f"decode: token {bad} out of range; tokens must be in [0, {self.num_bins - 1}]")
        return (self.low + (tokens + 0.5) * self.bin_width).astype(np.float32)

    def round_trip_error(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Per-dimension mean and max absolute error of ``decode(encode(frames))``."""
        frames = np.asarray(frames, dtype=np.float64).reshape(-1, self.dim)
        error = np.abs(self.decode(self.encode(frames)) - frames)
        return {"mean": error.mean(axis=0), "max": error.max(axis=0)}

    def to_dict(self) -> dict:
        return {
            "format": TOKENIZER_FORMAT, "version": 1, "num_bins": self.num_bins,
            "clip_quantile": self.clip_quantile, "low": self.low.tolist(), "high": self.high.tolist(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict, source: str = "tokenizer") -> ActionTokenizer:
        if data.get("format") != TOKENIZER_FORMAT:
            raise ValueError(f"{source}: not an action tokenizer file (format {data.get('format')!r})")
        for key in ("num_bins", "low", "high"):
            if key not in data:
                raise ValueError(f"{source}: missing key {key!r}")
        return cls(
            low=np.array(data["low"]), high=np.array(data["high"]), num_bins=int(data["num_bins"]),
            clip_quantile=float(data.get("clip_quantile", 0.01)),
        )  # fmt: skip

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ActionTokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no tokenizer file; fit one with ActionTokenizer.fit") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: unreadable tokenizer JSON ({e})") from None
        return cls.from_dict(data, source=str(path))

    def _check_last_axis(self, array: np.ndarray, what: str) -> None:
        if array.ndim == 0 or array.shape[-1] != self.dim:
            raise ValueError(f"{what}: expected shape (..., {self.dim}), found {array.shape}")
