"""Affect (valence) estimators for L2 Affect.

The paper reads valence with EMOCA. Here the estimator is pluggable: the data's own affect arrays when it
has them (the synthetic benchmark does), otherwise a linear probe from expression to valence fitted on
frames whose valence is known.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LinearAffectProbe:
    """Ridge regression ``valence = frame @ weights + bias`` fitted on labelled frames."""

    weights: np.ndarray
    bias: float

    @classmethod
    def fit(cls, frames: np.ndarray, valence: np.ndarray, ridge: float = 1e-3) -> LinearAffectProbe:
        """Fit on ``(N, D)`` frames and ``(N,)`` valence labels."""
        frames, valence = np.asarray(frames, np.float64), np.asarray(valence, np.float64).ravel()
        if frames.ndim != 2 or len(frames) != len(valence) or len(frames) < 2:
            raise ValueError(
                f"fit expects (N, D) frames and (N,) valence, found {frames.shape}, {valence.shape}"
            )
        mean_x, mean_y = frames.mean(0), valence.mean()
        centred = frames - mean_x
        gram = centred.T @ centred + ridge * len(frames) * np.eye(frames.shape[1])
        weights = np.linalg.solve(gram, centred.T @ (valence - mean_y))
        return cls(weights=weights, bias=float(mean_y - mean_x @ weights))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Valence ``(T,)`` of ``(T, D)`` frames."""
        frames = np.asarray(frames, np.float64)
        if frames.shape[-1] != len(self.weights):
            raise ValueError(f"probe expects frames with {len(self.weights)} dims, found {frames.shape}")
        return frames @ self.weights + self.bias

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps({"weights": self.weights.tolist(), "bias": self.bias}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearAffectProbe:
        data = json.loads(Path(path).read_text())
        return cls(weights=np.asarray(data["weights"]), bias=float(data["bias"]))
