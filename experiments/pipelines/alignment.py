"""Building blocks of the alignment pipelines (quickstart, ablations, iterated DPO).

Each function does one stage and writes one output; the pipelines wrap them in
:func:`experiments.pipelines.stages.run_stage` so a re-run skips what exists.

Preference collection goes through the same code path as people: candidate groups are stored in a
feedback database (:mod:`human_feedback.service`), simulated annotators rate them through the annotation API
(:func:`human_feedback.simulate.simulate`), and :func:`human_feedback.export.export_preferences` ranks and pairs
them (paper eq. 10, best vs worst). Only the sampling of candidates is batched here
(:func:`agents.alignment.sampling.sample_trajectories`: the same closed-loop policy as ``VLAAgent`` in the env,
many episodes per forward pass) to keep the quickstart within minutes on a CPU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Log = Callable[[str], None]


def _default_weights() -> dict[str, float]:
    return {"empathy": 0.25, "appropriateness": 0.25, "engagement": 0.25, "naturalness": 0.25}


@dataclass
class FeedbackConfig:
    """How preference data is collected from a policy (paper section III-D).

    Attributes:
        split: dataset split whose clips are rated (never the test split).
        clips: candidate groups (one speaker clip each); 0 or more than the split has: all clips.
        samples: policy rollouts per group (the paper's N = 4), sampled at ``temperature``.
        temperature: sampling temperature of the candidates.
        ground_truth: add the clip's ground-truth listener to each group (as the paper does).
        annotators: simulated annotators.
        ratings_per_group: annotators who rate each group.
        careless_fraction: share of careless annotators (random or constant raters).
        weights: eq. 10 weights of the four criteria.
        mode: ``best-worst`` (the paper) or ``all-pairs``.
        min_margin: smallest score gap that makes a pair.
        render_groups: render MP4s of the first N groups (0: none; the ratings do not need them).
        draw: how candidate tokens are drawn (``multinomial`` or the 2x faster ``inverse-cdf``: the same law, another
            random stream, see :data:`agents.vla.decoding.DRAWS`).
        seed: seeds clip choice, sampling and the annotators.
    """

    split: str = "train"
    clips: int = 0
    samples: int = 4
    temperature: float = 1.0
    ground_truth: bool = True
    annotators: int = 5
    ratings_per_group: int = 3
    careless_fraction: float = 0.1
    weights: dict[str, float] = field(default_factory=_default_weights)
    mode: str = "best-worst"
    min_margin: float = 0.0
    render_groups: int = 0
    draw: str = "multinomial"
    seed: int = 0

    def __post_init__(self) -> None:
        from agents.vla.decoding import DRAWS

        if self.draw not in DRAWS:
            raise ValueError(f"feedback: draw must be one of {DRAWS}, found {self.draw!r}")
        if self.split == "test":
            raise ValueError("feedback: rating test clips would leak them into training; use split=train")
        if self.samples < 1 or self.annotators < 1 or self.ratings_per_group < 1:
            raise ValueError("feedback: samples, annotators and ratings_per_group must be >= 1")
        if self.ratings_per_group > self.annotators:
            raise ValueError(
                f"feedback: ratings_per_group ({self.ratings_per_group}) cannot exceed annotators "
                f"({self.annotators}): a group never goes twice to the same person"
            )
        if self.temperature <= 0:
            raise ValueError(f"feedback: temperature must be > 0, found {self.temperature}")


def choose_clip_ids(dataset: Any, split: str, count: int, seed: int) -> list[str]:
    """``count`` clip ids of ``split`` drawn without replacement (all when ``count`` is 0 or too large)."""
    ids = dataset.split(split).clip_ids
    if count <= 0 or count >= len(ids):
        return list(ids)
    picked = np.random.default_rng([seed, 1]).choice(len(ids), size=count, replace=False)
    return [ids[i] for i in sorted(picked)]


def collect_preferences(
    policy_dir: str | os.PathLike,
    dataset_spec: str,
    out: Path,
    config: FeedbackConfig,
    *,
    policy_name: str = "sft",
    clip_ids: Sequence[str] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """The stages collect -> rate -> export, all under ``out``: candidates of ``policy_dir`` in a feedback
    campaign (``out/feedback.db``), simulated ratings through the annotation API, and the preference dataset
    (``out/preferences/``). Writes ``out/summary.json`` (counts, timings, the rated clips) and returns it.
    ``clip_ids`` rates exactly those clips (default: ``config.clips`` drawn from ``config.split``)."""
    from dyadic_env.data import load_dataset
    from human_feedback.store import Store

    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(dataset_spec)
    if clip_ids is None:
        clip_ids = choose_clip_ids(dataset, config.split, config.clips, config.seed)
    store = Store(out / "feedback.db", create=True)
    try:
        collected = collect_candidates(
            policy_dir, dataset_spec, store, out / "media", clip_ids, config, policy_name, log
        )
        ratings, seconds_rating = rate_candidates(store, config, log)
        result = export_pairs(store, out / "preferences", config)
    finally:
        store.close()
    summary = {
        "groups": len(clip_ids), "candidates_per_group": config.samples + int(config.ground_truth),
        "ratings": ratings, "pairs": len(result.dataset.pairs), "pairing": result.report.counts(),
        "seconds_sampling": collected["seconds_sampling"], "seconds_rating": seconds_rating,
        "videos": collected["videos"], "config": asdict(config), "clip_ids": list(clip_ids),
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(
        f"  {summary['pairs']} preference pairs ({result.report.ground_truth_chosen} with the ground truth chosen)"
    )
    return summary


CAMPAIGN = "preferences"


def collect_candidates(
    policy_dir: str | os.PathLike, dataset_spec: str, store: Any, media: Path, clip_ids: Sequence[str],
    config: FeedbackConfig, policy_name: str = "sft", log: Log = print,
) -> dict[str, Any]:  # fmt: skip
    """Stage *collect*: ``config.samples`` closed-loop samples of the policy per clip (batched), stored as one
    candidate group per clip in a new campaign of ``store`` (with the ground truth when asked)."""
    import time

    import torch

    from agents.alignment.sampling import sample_trajectories
    from agents.vla import VLAForListening
    from dyadic_env.data import load_dataset
    from human_feedback import service

    dataset = load_dataset(dataset_spec)
    model = VLAForListening.from_pretrained(policy_dir).eval()
    tokenizer = model.processor.action_tokenizer
    clips = [dataset.clip(c) for c in clip_ids]
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    samples = sample_trajectories(
        model, clips, config.samples, temperature=config.temperature, seed=config.seed, draw=config.draw
    )
    seconds = time.perf_counter() - started
    log(f"  sampled {len(clips)} x {config.samples} candidates in {seconds:.1f} s")
    service.create_campaign(
        store, CAMPAIGN, media_dir=media, ratings_per_group=config.ratings_per_group, repeat_every=0,
        seed=config.seed, dataset_spec=dataset_spec, split=config.split, expression_basis=dataset.expression_basis,
        tokenizer=tokenizer.to_dict(), config={"alignment_feedback": asdict(config), "policy": str(policy_dir)},
    )  # fmt: skip
    videos = _render_sample(media, clips, samples, tokenizer, dataset, config.render_groups)
    with store.write() as session:
        record = store.campaign(session, CAMPAIGN)
        for i, (clip, trajectories) in enumerate(zip(clips, samples)):
            row = service.add_clip(
                session, record, clip_id=clip.clip_id, fps=clip.fps, speaker_motion=np.asarray(clip.speaker_motion),
                speaker_words=[(w[0], w[1], w[2]) for w in clip.speaker_words], split=config.split,
            )  # fmt: skip
            group = service.add_group(session, record, row)
            if config.ground_truth:
                service.add_candidate(
                    session, record, group, source="ground_truth", policy_name="ground_truth",
                    tokens=tokenizer.encode(np.asarray(clip.listener_motion)), video_path=videos.get((i, -1)),
                )  # fmt: skip
            for k, tokens in enumerate(trajectories):
                service.add_candidate(
                    session, record, group, source="policy", policy_name=policy_name, tokens=tokens,
                    sample_index=k, seed=config.seed, video_path=videos.get((i, k)),
                )  # fmt: skip
    return {"seconds_sampling": seconds, "videos": len(videos)}


def rate_candidates(store: Any, config: FeedbackConfig, log: Log = print) -> tuple[int, float]:
    """Stage *rate*: simulated annotators rate every group through the annotation API; (ratings, seconds)."""
    import time

    from human_feedback.simulate import simulate

    started = time.perf_counter()
    report = simulate(
        store, CAMPAIGN, config.annotators, seed=config.seed, careless_fraction=config.careless_fraction
    )
    seconds = time.perf_counter() - started
    log(f"  {report.ratings} ratings by {config.annotators} simulated annotators in {seconds:.1f} s")
    return report.ratings, seconds


def export_pairs(store: Any, out: Path, config: FeedbackConfig) -> Any:
    """Stage *export*: rank each group by eq. 10 and write the preference dataset (``ExportResult``)."""
    from human_feedback.export import export_preferences

    return export_preferences(
        store,
        CAMPAIGN,
        out,
        weights=config.weights,
        mode=config.mode,
        min_margin=config.min_margin,
        seed=config.seed,
    )


def _render_sample(
    media: Path,
    clips: Sequence[Any],
    samples: Sequence[Sequence[np.ndarray]],
    tokenizer: Any,
    dataset: Any,
    groups: int,
) -> dict[tuple[int, int], str]:
    """Render the candidates of the first ``groups`` groups (key (group, sample), sample -1 = ground truth)
    through the project's one blinded rendering path (:func:`human_feedback.blinding.render_group`): the
    ground truth quantized by the action tokenizer like every sample, random file names."""
    if groups <= 0:
        return {}
    from dyadic_env.render import Renderer
    from human_feedback.blinding import render_group

    videos: dict[tuple[int, int], str] = {}
    with Renderer(256, 256) as renderer:
        for i, (clip, trajectories) in enumerate(list(zip(clips, samples))[:groups]):
            tokens = [tokenizer.encode(np.asarray(clip.listener_motion)), *trajectories]
            paths = render_group(renderer, media, clip, tokens, tokenizer, dataset.expression_basis, seed=i)
            videos.update({(i, k - 1): str(path) for k, path in enumerate(paths)})
    return videos


def load_pairs(preferences: Path) -> tuple[Any, list[Any]]:
    """The preference dataset at ``preferences`` and its pairs."""
    from human_feedback.preferences import PreferenceDataset

    data = PreferenceDataset.load(preferences)
    return data, list(data.pairs)


@dataclass(frozen=True)
class RatedCandidate:
    """One rated candidate: its tokens, its eq. 10 score and its mean rating per criterion."""

    candidate_id: str
    tokens: np.ndarray
    score: float
    criteria: dict[str, float]


@dataclass(frozen=True)
class RatedGroup:
    """The rated candidates of one speaker clip (one page of the campaign)."""

    group_id: str
    clip_id: str
    candidates: tuple[RatedCandidate, ...]


def load_rated_groups(feedback_dir: Path, weights: dict[str, float] | None = None) -> list[RatedGroup]:
    """Every group of a collection's campaign with its candidates scored by eq. 10, in the order they were added."""
    from human_feedback.analysis import load_ratings
    from human_feedback.export import campaign_tokens
    from human_feedback.preferences import score_candidates
    from human_feedback.store import Store

    store = Store(Path(feedback_dir) / "feedback.db")
    try:
        scores = score_candidates(load_ratings(store, CAMPAIGN), weights or _default_weights())
        tokens, groups = campaign_tokens(store, CAMPAIGN)
    finally:
        store.close()
    rated = []
    for group_id, ids in groups.items():
        members = tuple(
            RatedCandidate(c, tokens[c], scores[c].score, dict(scores[c].means)) for c in ids if c in scores
        )
        if members:
            rated.append(RatedGroup(group_id, scores[members[0].candidate_id].clip_id, members))
    return rated
