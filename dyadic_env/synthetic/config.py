"""Configuration of the synthetic generator and its named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

POOR_KINDS: tuple[str, ...] = ("generic_positive", "inattentive")
LISTENER_KINDS: tuple[str, ...] = ("appropriate", *POOR_KINDS)


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(
            f"SyntheticConfig.{name}: expected (min, max) with {low} <= min <= max <= {high}, found {value}"
        )


@dataclass(frozen=True)
class SyntheticConfig:
    """What the generator makes; every random choice comes from ``seed``."""

    num_clips: int = 300
    """Number of speaker-listener clips."""
    num_speakers: int = 60
    """Distinct speakers (each with its own style); splits keep a speaker's clips together."""
    num_listeners: int = 40
    """Distinct listener personas (style: expressivity, lag, nod rate); a listener keeps its kind."""
    clip_seconds: tuple[float, float] = (4.0, 10.0)
    """Clip duration range in seconds (uniform)."""
    fps: float = 25.0
    """Frames per second."""
    split_fractions: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    """Share of speakers in each split."""
    poor_listener_fraction: float = 0.3
    """Share of listener personas that are socially poor (generic positivity or inattentive)."""
    poor_kind_weights: dict[str, float] = field(
        default_factory=lambda: {"generic_positive": 0.5, "inattentive": 0.5}
    )
    """Relative frequency of each poor kind among poor listeners."""
    segment_seconds: tuple[float, float] = (1.8, 4.5)
    """Duration range of one emotion segment of a speaker."""
    text_only_fraction: float = 0.25
    """Share of emotional segments where the face is only mildly emotional but the words are strongly so."""
    emotional_word_rate: tuple[float, float] = (0.25, 0.45)
    """Share of words drawn from the segment's emotion lexicon (text-only segments use the top of it)."""
    listener_lag_seconds: tuple[float, float] = (0.2, 0.8)
    """Range of the per-listener reaction lag."""
    nod_rate: tuple[float, float] = (0.55, 0.95)
    """Range of the per-listener probability of nodding at a speaker's phrase end."""
    tracker_noise: float = 0.01
    """Standard deviation of the tracker-like noise on blendshape weights (radians x 0.2 on poses)."""
    seed: int = 0
    """Seed of every random choice (a preset's fixed seed; ``write_preset(..., seed=N)`` overrides it)."""
    description: str = ""
    """One line saying what the configuration is for."""

    def __post_init__(self) -> None:
        for name in ("num_clips", "num_speakers", "num_listeners"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"SyntheticConfig.{name}: expected a positive integer, found {getattr(self, name)}"
                )
        if not 0 < self.fps <= 240:
            raise ValueError(f"SyntheticConfig.fps: expected 0 < fps <= 240, found {self.fps}")
        _check_range("clip_seconds", self.clip_seconds, 1.0, 600.0)
        _check_range("segment_seconds", self.segment_seconds, 0.5, 60.0)
        _check_range("emotional_word_rate", self.emotional_word_rate, 0.0, 1.0)
        _check_range("listener_lag_seconds", self.listener_lag_seconds, 0.0, 3.0)
        _check_range("nod_rate", self.nod_rate, 0.0, 1.0)
        for name in ("poor_listener_fraction", "text_only_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"SyntheticConfig.{name}: expected a value in [0, 1], found {getattr(self, name)}"
                )
        if not 0.0 <= self.tracker_noise <= 0.2:
            raise ValueError(
                f"SyntheticConfig.tracker_noise: expected a value in [0, 0.2], found {self.tracker_noise}"
            )
        fractions = self.split_fractions
        if not fractions or any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
            raise ValueError(
                f"SyntheticConfig.split_fractions: expected non-negative shares summing to 1, found {fractions}"
            )
        weights = self.poor_kind_weights
        if (
            set(weights) - set(POOR_KINDS)
            or any(w < 0 for w in weights.values())
            or sum(weights.values()) <= 0
        ):
            raise ValueError(
                f"SyntheticConfig.poor_kind_weights: expected non-negative weights over {POOR_KINDS} with a "
                f"positive sum, found {weights}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (tuples as lists), as stored in a dataset's manifest."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


PRESETS: dict[str, SyntheticConfig] = {
    "tiny": SyntheticConfig(
        num_clips=24, num_speakers=8, num_listeners=8, clip_seconds=(4.0, 4.0),
        split_fractions={"train": 0.5, "val": 0.25, "test": 0.25}, poor_listener_fraction=0.35, seed=0,
        description="24 clips of 4 s, for tests",
    ),
    "small": SyntheticConfig(
        num_clips=300, num_speakers=60, num_listeners=40, clip_seconds=(4.0, 10.0), seed=0,
        description="300 clips of 4-10 s, for the quickstart",
    ),
    "full": SyntheticConfig(
        num_clips=3000, num_speakers=400, num_listeners=200, clip_seconds=(4.0, 12.0), seed=0,
        description="3000 clips of 4-12 s, for benchmarks",
    ),
}  # fmt: skip
"""Named presets with fixed seeds: ``tiny`` (tests), ``small`` (quickstart), ``full`` (benchmarks)."""
