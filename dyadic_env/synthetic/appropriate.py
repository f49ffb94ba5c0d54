"""Appropriate-reaction sets of the synthetic benchmark: several fitting listeners for one speaker.

For each val and test clip the generator draws ``k`` further listeners of the ``appropriate`` kind, each a
new persona (style: expressivity, lag, nod rate, preferred responses) with its own random stream, answering
the clip's speaker as planned in its ``meta``. Each is appropriate by construction, and the hidden oracle
checks it: a draw whose weighted score is below ``min_score`` is dropped and another is drawn (at most
``max_draws`` in all). The clip's recorded listener joins its set when it is of the appropriate kind and
passes the same check; the socially poor kinds never do.

Draws come from their own streams, ``SeedSequence([seed, GENERATOR_VERSION, stream, crc32(clip_id)])``,
so adding sets changes no byte of the clips a seed generates. :func:`held_out_listeners` draws from another
stream: fresh appropriate listeners that are in no set, a reference row for REACT-style metrics.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.synthetic.config import SyntheticConfig
from dyadic_env.synthetic.generator import GENERATOR_VERSION, iter_clips
from dyadic_env.synthetic.motion import listener_motion
from dyadic_env.synthetic.oracle import Oracle
from dyadic_env.synthetic.plans import SpeakerPlan, listener_style

DEFAULT_SET_SIZE = 10
# Raise SETS_VERSION when the sets a seed gives change; it is part of the cache directory name.
SETS_VERSION = 1
SET_STREAM, HELD_OUT_STREAM = 1, 2
# The weighted oracle score a set member must reach: about the 5th percentile of fresh appropriate listeners
# on the small preset, above the generic-positive kind's mean (about 2.6).
MIN_ORACLE_SCORE = 3.5


@dataclass(frozen=True)
class SetDraw:
    """How the sets are drawn: ``k`` members per clip, each with an oracle score of at least ``min_score``,
    from at most ``max(max_draws_per_member * k, min_draws)`` draws."""

    k: int = DEFAULT_SET_SIZE
    min_score: float = MIN_ORACLE_SCORE
    max_draws_per_member: int = 4
    min_draws: int = 40

    @property
    def max_draws(self) -> int:
        return max(self.k * self.max_draws_per_member, self.min_draws)

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_draws_per_member < 1:
            raise ValueError(
                f"appropriate sets: k and max_draws_per_member must be positive, found {self.k}, "
                f"{self.max_draws_per_member}"
            )
        if not 1.0 <= self.min_score <= 5.0:
            raise ValueError(
                f"appropriate sets: min_score is on the oracle's 1-5 scale, found {self.min_score}"
            )


def draw_listeners(
    clip: Clip, draw: SetDraw, *, seed: int, stream: int = SET_STREAM, config: SyntheticConfig | None = None,
    oracle: Oracle | None = None, fill: bool = False,
) -> tuple[list[np.ndarray], list[float]]:  # fmt: skip
    """Up to ``draw.k`` appropriate listeners for ``clip``'s speaker that the oracle accepts, and their scores.

    Draw i is the same whatever ``draw.k`` is. With ``fill``, the best-scoring rejected draws make up a
    shortfall (for reference rows, which need K listeners)."""
    config = config or SyntheticConfig()
    oracle = oracle or Oracle(fps=clip.fps)
    plan = SpeakerPlan.from_clip(clip)
    root = np.random.SeedSequence([seed, GENERATOR_VERSION, stream, zlib.crc32(clip.clip_id.encode())])
    listeners: list[np.ndarray] = []
    scores: list[float] = []
    rejected: list[tuple[float, np.ndarray]] = []
    for child in root.spawn(draw.max_draws):
        rng = np.random.default_rng(child)
        style = listener_style(rng, f"{clip.clip_id}-appropriate", "appropriate", config)
        motion = listener_motion(rng, plan, style, config.tracker_noise)[0]
        score = oracle.score(clip.speaker_motion, motion, clip.speaker_words)["weighted"]
        if score >= draw.min_score:
            listeners.append(motion)
            scores.append(float(score))
            if len(listeners) == draw.k:
                break
        else:
            rejected.append((float(score), motion))
    if fill and len(listeners) < draw.k:
        best = sorted(rejected, key=lambda pair: -pair[0])[: draw.k - len(listeners)]
        listeners += [motion for _, motion in best]
        scores += [score for score, _ in best]
    return listeners, scores


def held_out_listeners(
    clip: Clip, k: int = DEFAULT_SET_SIZE, *, seed: int = 0, config: SyntheticConfig | None = None
) -> list[np.ndarray]:
    """``k`` oracle-checked appropriate listeners for ``clip``'s speaker that are in no appropriate set
    (``config``: the generator settings of the clip's dataset, for the listeners' lag and nod ranges). When
    fewer than ``k`` of the draws pass the oracle, the best-scoring others fill the shortfall."""
    return draw_listeners(clip, SetDraw(k=k), seed=seed, stream=HELD_OUT_STREAM, config=config, fill=True)[0]


def dataset_config(manifest: dict[str, Any]) -> SyntheticConfig | None:
    """The generator settings a synthetic dataset's manifest records, or None."""
    fields = (manifest.get("synthetic") or {}).get("config")
    if not isinstance(fields, dict):
        return None
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return SyntheticConfig(**values)


def iter_clips_with_sets(
    config: SyntheticConfig, seed: int, draw: SetDraw, report: dict[str, Any]
) -> Iterator[tuple[str, Clip] | tuple[str, Clip, list[Any]]]:
    """The clips of :func:`~dyadic_env.synthetic.generator.iter_clips`, val and test ones with their sets.

    ``report`` is filled while the clips stream (``write_dataset`` reads it once they are written): the
    drawing parameters and the oracle scores and sizes of the sets.
    """
    oracle = Oracle(fps=config.fps)
    scores: list[float] = []
    short = recorded = 0
    for split, clip in iter_clips(config, seed):
        if split == "train":
            yield split, clip
            continue
        listeners, member_scores = draw_listeners(clip, draw, seed=seed, config=config, oracle=oracle)
        entries: list[Any] = list(listeners)
        if clip.meta.get("listener_kind") == "appropriate":
            own = oracle.score(clip.speaker_motion, clip.listener_motion, clip.speaker_words)["weighted"]
            if own >= draw.min_score:
                entries.insert(0, clip.clip_id)  # its own recorded listener
                recorded += 1
        scores += member_scores
        short += len(listeners) < draw.k
        yield split, clip, entries
    report.update(method="synthetic-personas", params={
        "k": draw.k, "min_oracle_score": draw.min_score, "max_draws": draw.max_draws,
        "seed": seed, "stream": SET_STREAM, "sets_version": SETS_VERSION,
        "drawn_oracle_score": {"min": round(min(scores), 4), "mean": round(float(np.mean(scores)), 4)} if scores else None,
        "recorded_listeners_included": recorded, "clips_short_of_k": short,
    })  # fmt: skip
