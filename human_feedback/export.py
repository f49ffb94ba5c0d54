"""Exports of a campaign: the preference dataset (eq. 10 scores, ranked pairs) and a ratings CSV."""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import make_url

from dyadic_env.criteria import CRITERIA
from human_feedback.analysis import annotator_stats, load_ratings
from human_feedback.preferences import PairingReport, PreferenceDataset, build_pairs
from human_feedback.store import Candidate, CandidateGroup, Store

CSV_COLUMNS = (
    "group_id",
    "clip_id",
    "split",
    "candidate_id",
    "source",
    "policy_name",
    "sample_index",
    "annotator",
    "annotator_kind",
    "page_kind",
    *CRITERIA,
    "watched_ms",
    "time_spent_ms",
    "submitted_at",
)


@dataclass
class ExportResult:
    dataset: PreferenceDataset
    report: PairingReport
    excluded_annotators: list[str]
    min_ratings: int


def campaign_tokens(store: Store, campaign_name: str) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Candidate id -> tokens, and group id -> its non-broken candidate ids."""
    tokens: dict[str, np.ndarray] = {}
    groups: dict[str, list[str]] = defaultdict(list)
    with store.read() as session:
        campaign = store.campaign(session, campaign_name)
        rows = session.execute(
            select(Candidate, CandidateGroup.public_id)
            .join(CandidateGroup, Candidate.group_id == CandidateGroup.id)
            .where(CandidateGroup.campaign_id == campaign.id, Candidate.source != "broken")
        ).all()
        for candidate, group_id in rows:
            tokens[candidate.public_id] = candidate.token_array().copy()
            groups[group_id].append(candidate.public_id)
    return tokens, dict(groups)


def export_preferences(
    store: Store,
    campaign_name: str,
    out: str | os.PathLike,
    *,
    weights: Mapping[str, float],
    mode: str = "best-worst",
    min_margin: float = 0.0,
    min_ratings: int | None = None,
    exclude_flagged: bool = False,
    exclude_annotators: Sequence[str] = (),
    overwrite: bool = False,
    seed: int = 0,
) -> ExportResult:
    """Score, rank and pair a campaign's candidates and write the preference dataset to ``out``.

    ``min_ratings`` defaults to the campaign's ratings per group. ``exclude_flagged`` drops the ratings of
    annotators who failed attention checks (see :mod:`human_feedback.analysis`).
    """
    rows = load_ratings(store, campaign_name)
    excluded = set(exclude_annotators)
    if exclude_flagged:
        excluded |= {s.name for s in annotator_stats(store, campaign_name, rows) if s.flagged}
    rows = [r for r in rows if r.annotator not in excluded]
    tokens, groups = campaign_tokens(store, campaign_name)
    with store.read() as session:
        campaign = store.campaign(session, campaign_name)
        info: dict[str, Any] = {
            "dataset": campaign.dataset_spec,
            "split": campaign.split,
            "tokenizer": campaign.tokenizer,
            "r": campaign.ratings_per_group,
            "seed": campaign.seed,
        }
    needed = info["r"] if min_ratings is None else min_ratings
    pairs, report = build_pairs(
        rows,
        tokens,
        weights,
        mode=mode,
        min_margin=min_margin,
        min_ratings=needed,
        group_candidates=groups,
        seed=seed,
    )
    source = {
        "campaign": campaign_name,
        "database": _safe_url(store.url),
        "mode": mode,
        "min_margin": min_margin,
        "min_ratings": needed,
        "excluded_annotators": sorted(excluded),
        "seed": seed,
        "skipped_groups": {k: v for k, v in report.skipped_groups.items()},
    }
    dataset = PreferenceDataset.write(
        out,
        pairs,
        weights=weights,
        dataset_spec=info["dataset"],
        split=info["split"],
        source=source,
        counts=report.counts(),
        tokenizer=info["tokenizer"],
        overwrite=overwrite,
    )
    return ExportResult(dataset, report, sorted(excluded), needed)


def _safe_url(url: str) -> str:
    """The database URL without its password (it goes into a manifest)."""
    return make_url(url).render_as_string(hide_password=True)


def ratings_csv(store: Store, campaign_name: str) -> str:
    """Every rating of a campaign as CSV text (one row per candidate, annotator and page)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for r in load_ratings(store, campaign_name):
        writer.writerow([_cell(getattr(r, c)) for c in CSV_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat() + "Z"
    return "" if value is None else value


def write_ratings_csv(store: Store, campaign_name: str, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(ratings_csv(store, campaign_name))
    return path
