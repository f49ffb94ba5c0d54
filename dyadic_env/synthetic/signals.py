"""Small vectorized signal builders shared by the speaker and listener generators."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

# A blink closes and reopens the eyes in about 0.2 s (5 frames at 25 fps).
_BLINK_SHAPE = np.array([0.35, 0.85, 1.0, 0.7, 0.3])


def smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along time (axis 0); edges reflect, so levels hold at the clip ends."""
    if sigma_frames <= 0:
        return np.asarray(x, dtype=np.float64)
    return gaussian_filter1d(np.asarray(x, dtype=np.float64), sigma_frames, axis=0, mode="nearest")


def lowpass_noise(rng: np.random.Generator, frames: int, width: int, sigma_frames: float) -> np.ndarray:
    """``(frames, width)`` smooth Gaussian noise with unit standard deviation (in expectation)."""
    white = rng.standard_normal((frames, width))
    # Var of Gaussian-filtered unit white noise is 1 / (2 sqrt(pi) sigma); scale it back to 1.
    return smooth(white, sigma_frames) * np.sqrt(2.0 * np.sqrt(np.pi) * max(sigma_frames, 0.5))


def box_track(
    frames: int, fps: float, spans: list[tuple[float, float, int, float]], width: int
) -> np.ndarray:
    """``(frames, width)`` piecewise-constant track: span ``(start_s, end_s, column, value)`` sets a block."""
    track = np.zeros((frames, width))
    for start, end, column, value in spans:
        a, b = max(0, round(start * fps)), min(frames, round(end * fps))
        if b > a:
            track[a:b, column] = value
    return track


def bumps(
    frames: int, fps: float, times_s: np.ndarray, durations_s: np.ndarray, amplitudes: np.ndarray
) -> np.ndarray:
    """``(frames,)`` sum of raised-sine bumps (a nod, a brow flash) starting at ``times_s``."""
    out = np.zeros(frames)
    t = np.arange(frames) / fps
    for start, duration, amplitude in zip(times_s, durations_s, amplitudes):
        u = (t - start) / duration
        inside = (u >= 0) & (u <= 1)
        out[inside] += amplitude * np.sin(np.pi * u[inside]) ** 2
    return out


def blink_track(rng: np.random.Generator, frames: int, fps: float, rate_hz: float) -> np.ndarray:
    """``(frames,)`` eyelid closure in [0, 1]: blinks as a Poisson process of ``rate_hz`` per second."""
    out = np.zeros(frames)
    count = rng.poisson(rate_hz * frames / fps)
    for start in rng.integers(0, max(frames, 1), size=count):
        part = _BLINK_SHAPE[: frames - start]
        out[start : start + len(part)] = np.maximum(out[start : start + len(part)], part)
    return out


def syllable_jaw(rng: np.random.Generator, frames: int, fps: float) -> np.ndarray:
    """``(frames,)`` jaw opening pattern in [0, 1] of speech: about 4-5.5 syllables per second."""
    rate_hz = 4.7 + 0.8 * lowpass_noise(rng, frames, 1, 6.0)[:, 0]
    phase = 2 * np.pi * np.cumsum(np.clip(rate_hz, 2.5, 7.0)) / fps + rng.uniform(0, 2 * np.pi)
    depth = np.clip(0.7 + 0.3 * lowpass_noise(rng, frames, 1, 3.0)[:, 0], 0.2, 1.0)
    return depth * 0.5 * (1 - np.cos(phase))
