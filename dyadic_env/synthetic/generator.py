"""The synthetic dyadic generator: speakers with emotion trajectories, timed words, and listeners.

A clip is planned first (emotion segments, phrases, words: small JSON-able lists kept in ``Clip.meta``),
then rendered into motion with vectorized signal builders (one numpy pass per clip, no per-frame loops).

Speaker: segments of emotions (neutral, happiness, sadness, surprise, disgust, anger) with smooth
transitions; some segments are *text-only*: the face is only mildly emotional but the words are strongly
so. Talking moves the jaw at a syllable rate, the talking mouth shapes and the head; pauses separate
phrases; words (about 2.5-3.3 a second, only while talking) come from the segment's emotion lexicon or are
neutral fillers.

Listeners (``meta["listener_kind"]``):

- ``appropriate``: answers each segment, after a per-listener lag, with a fitting emotion (sadness ->
  concern or sadness, disgust -> disgust, joy -> smile, anger -> concern or a serious face, surprise ->
  surprise or interest) at an intensity that follows what the speaker shows and says; nods and flashes
  the brows at phrase ends; blinks; per-listener style (expressivity, lag, nod rate).
- ``generic_positive``: smiles regardless (also at disgust and sadness), nods at random times.
- ``inattentive``: nearly frozen (``meta["listener_mode"] == "frozen"``) or drifting through random
  expressions and head turns unrelated to the speaker (``"drifting"``).

Styles and plans live in :mod:`dyadic_env.synthetic.plans`, their rendering into frames in
:mod:`dyadic_env.synthetic.motion`; this module draws whole clips (and re-exports the names it always had).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.data.splits import assign_splits
from dyadic_env.synthetic.config import POOR_KINDS, SyntheticConfig
from dyadic_env.synthetic.emotions import affect_of
from dyadic_env.synthetic.motion import listener_motion, speaker_motion, timeline
from dyadic_env.synthetic.plans import (
    ListenerStyle,
    SpeakerPlan,
    SpeakerStyle,
    listener_style,
    plan_speaker,
    speaker_style,
)

GENERATOR_VERSION = 1
SOURCE = "synthetic"


def _listener_kinds(config: SyntheticConfig, rng: np.random.Generator) -> list[str]:
    n = config.num_listeners
    n_poor = round(config.poor_listener_fraction * n)
    weights = np.array([config.poor_kind_weights.get(k, 0.0) for k in POOR_KINDS])
    counts = np.floor(n_poor * weights / weights.sum()).astype(int)
    for i in np.argsort(-(n_poor * weights / weights.sum() - counts))[: n_poor - counts.sum()]:
        counts[i] += 1
    kinds = ["appropriate"] * (n - n_poor) + [k for k, c in zip(POOR_KINDS, counts) for _ in range(c)]
    return [kinds[i] for i in rng.permutation(n)]


def generate_clips(config: SyntheticConfig, seed: int | None = None) -> list[tuple[str, Clip]]:
    """Generate ``(split, Clip)`` pairs for ``config`` (seeded by ``seed``, default ``config.seed``)."""
    return list(iter_clips(config, seed))


def iter_clips(config: SyntheticConfig, seed: int | None = None) -> Iterator[tuple[str, Clip]]:
    """Yield the ``(split, Clip)`` pairs of :func:`generate_clips` one at a time, grouped by split.

    Each clip has its own random stream (spawned from the seed by clip index), so the order of
    generation does not change any clip, and a large preset streams to disk without being held in memory.
    """
    seed = config.seed if seed is None else int(seed)
    root = np.random.SeedSequence([seed, GENERATOR_VERSION])
    style_seq, clip_seq = root.spawn(2)
    style_rng = np.random.default_rng(style_seq)
    speakers = [speaker_style(style_rng, f"spk{i:04d}") for i in range(config.num_speakers)]
    kinds = _listener_kinds(config, style_rng)
    listeners = [
        listener_style(style_rng, f"lis{i:04d}", kinds[i], config) for i in range(config.num_listeners)
    ]
    speaker_of = style_rng.permutation(np.arange(config.num_clips) % config.num_speakers)
    listener_of = style_rng.permutation(np.arange(config.num_clips) % config.num_listeners)
    lengths = style_rng.uniform(*config.clip_seconds, size=config.num_clips)
    splits = assign_splits([speakers[s].speaker_id for s in speaker_of], config.split_fractions, seed=seed)
    clip_seeds = clip_seq.spawn(config.num_clips)
    rank = {name: k for k, name in enumerate(config.split_fractions)}
    for i in sorted(range(config.num_clips), key=lambda i: (rank[splits[i]], i)):
        rng = np.random.default_rng(clip_seeds[i])
        frames = max(2, round(lengths[i] * config.fps))
        clip = make_clip(
            rng, f"syn{i:05d}", speakers[speaker_of[i]], listeners[listener_of[i]], frames, config
        )
        yield splits[i], clip


def make_clip(
    rng: np.random.Generator, clip_id: str, speaker: SpeakerStyle, listener: ListenerStyle, frames: int,
    config: SyntheticConfig,
) -> Clip:  # fmt: skip
    """One clip: a planned speaker, its motion, a listener of ``listener.kind`` and both affects."""
    plan = plan_speaker(rng, speaker, frames, config)
    speaker_frames = speaker_motion(rng, plan, speaker, config.tracker_noise)
    listener_frames, listener_distribution = listener_motion(rng, plan, listener, config.tracker_noise)
    felt = timeline(frames, config.fps, [(s.start, s.end, s.emotion, s.felt) for s in plan.segments], 0.2)
    meta = {
        "generator": "dyadic-synthetic", "generator_version": GENERATOR_VERSION,
        "listener_kind": listener.kind, "listener_mode": listener.mode, "listener_style": listener.summary(),
        **plan.to_meta(),
    }  # fmt: skip
    return Clip(
        clip_id=clip_id, fps=config.fps, speaker_motion=speaker_frames, listener_motion=listener_frames,
        speaker_words=plan.words, speaker_affect=affect_of(felt).astype(np.float32),
        listener_affect=affect_of(listener_distribution).astype(np.float32), speaker_id=speaker.speaker_id,
        listener_id=listener.listener_id, source=SOURCE, meta=meta,
    )  # fmt: skip


def synthesize_listener(
    clip: Clip, kind: str, *, seed: int = 0, mode: str | None = None, config: SyntheticConfig | None = None
) -> np.ndarray:
    """A new ``(T, 56)`` listener of ``kind`` for a synthetic clip's speaker (from its ``meta`` truth).

    For reports and tests: it lets every listener kind answer the very same speaker. ``mode`` picks
    ``"frozen"`` or ``"drifting"`` for inattentive listeners.
    """
    if kind not in ("appropriate", *POOR_KINDS):
        raise ValueError(f"kind: expected one of appropriate, {', '.join(POOR_KINDS)}; found {kind!r}")
    config = config or SyntheticConfig()
    plan = SpeakerPlan.from_clip(clip)
    rng = np.random.default_rng([seed, zlib.crc32(clip.clip_id.encode()), zlib.crc32(kind.encode())])
    style = listener_style(rng, "variant", kind, config)
    if mode is not None:
        if kind != "inattentive" or mode not in ("frozen", "drifting"):
            raise ValueError(f"mode: only inattentive listeners take 'frozen' or 'drifting', found {mode!r}")
        style = ListenerStyle(**{**style.__dict__, "mode": mode})
    return listener_motion(rng, plan, style, config.tracker_noise)[0]


__all__ = [
    "GENERATOR_VERSION", "ListenerStyle", "SpeakerPlan", "SpeakerStyle", "generate_clips", "iter_clips",
    "listener_motion", "listener_style", "make_clip", "plan_speaker", "speaker_motion", "speaker_style",
    "synthesize_listener",
]  # fmt: skip
