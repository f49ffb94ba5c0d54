"""Reading ratings back: the ratings table, per-annotator statistics, attention checks and agreement.

Attention checks:
- a *broken* candidate (jittering or frozen listener, added to some groups at collection) passes when the
  annotator rates its naturalness at most ``BROKEN_MAX_NATURALNESS`` (a broken trajectory can keep a
  fitting expression, so only naturalness is sure to be poor);
- a *repeated* group (shown again after ``repeat_every`` pages, reshuffled, with fresh ids) passes when the
  mean absolute difference between the two ratings of each candidate and criterion is at most
  ``REPEAT_TOLERANCE``.
An annotator is flagged when they fail half or more of either kind of check. Repeated pages and broken
candidates never count toward scores, agreement or preference pairs.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select

from human_feedback.agreement import alpha_bootstrap
from human_feedback.criteria import CRITERION_KEYS
from human_feedback.ratings import RatingRow, scoring_rows
from human_feedback.store import (
    Annotator,
    Assignment,
    Campaign,
    Candidate,
    CandidateGroup,
    ClipRecord,
    Rating,
    Store,
    Submission,
)
from human_feedback.viewing import watch_times

BROKEN_MAX_NATURALNESS = 2
REPEAT_TOLERANCE = 1.0


def load_ratings(store: Store, campaign_name: str) -> list[RatingRow]:
    """Every rating of a campaign, oldest first."""
    with store.read() as session:
        campaign = store.campaign(session, campaign_name)
        rows = session.execute(
            select(
                Rating,
                Candidate,
                CandidateGroup.public_id,
                CandidateGroup.position,
                ClipRecord,
                Annotator,
                Assignment.kind,
                Submission,
            )
            .join(Candidate, Rating.candidate_id == Candidate.id)
            .join(CandidateGroup, Candidate.group_id == CandidateGroup.id)
            .join(ClipRecord, CandidateGroup.clip_pk == ClipRecord.id)
            .join(Annotator, Rating.annotator_id == Annotator.id)
            .join(Assignment, Rating.assignment_id == Assignment.id)
            .join(Submission, Rating.submission_id == Submission.id)
            .where(CandidateGroup.campaign_id == campaign.id)
            .order_by(Rating.id)
        ).all()
        return [
            RatingRow(
                group_id=gid,
                clip_id=clip.clip_id,
                split=clip.split,
                candidate_id=cand.public_id,
                source=cand.source,
                policy_name=cand.policy_name,
                sample_index=cand.sample_index,
                annotator=ann.name,
                annotator_kind=ann.kind,
                page_kind=kind,
                empathy=r.empathy,
                appropriateness=r.appropriateness,
                engagement=r.engagement,
                naturalness=r.naturalness,
                watched_ms=r.watched_ms,
                time_spent_ms=sub.time_spent_ms,
                submitted_at=r.created_at,
                group_position=position,
            )
            for r, cand, gid, position, clip, ann, kind, sub in rows
        ]


@dataclass
class AnnotatorStats:
    name: str
    kind: str
    pages_done: int
    pages_open: int
    ratings: int
    median_page_seconds: float | None
    # Watch times: seconds from a page's first video fetch to its submission (the server's clock), and
    # the playing time per video the browser reported; None where the annotator's pages had no videos.
    median_view_seconds: float | None
    median_reported_play_seconds: float | None
    mean_rating: float | None
    broken_checks: int
    broken_passed: int
    repeat_checks: int
    repeat_passed: int
    repeat_mean_abs_diff: float | None
    flagged: bool
    flag_reasons: list[str]


def attention_checks(rows: Sequence[RatingRow]) -> dict[str, dict[str, Any]]:
    """Per annotator: broken-candidate and repeated-group results (see the module docstring)."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"broken": [], "repeat": []})
    pages: dict[tuple[str, str, str], list[RatingRow]] = defaultdict(list)
    for r in rows:
        pages[(r.annotator, r.group_id, r.page_kind)].append(r)
    for (annotator, group, kind), page in pages.items():
        if kind == "regular":
            out[annotator]["broken"].extend(
                r.naturalness <= BROKEN_MAX_NATURALNESS for r in page if r.source == "broken"
            )
        if kind == "repeat":
            first = {r.candidate_id: r for r in pages.get((annotator, group, "regular"), [])}
            diffs = [
                abs(a - b)
                for r in page
                if r.candidate_id in first
                for a, b in zip(r.values(), first[r.candidate_id].values())
            ]
            if diffs:
                out[annotator]["repeat"].append(statistics.fmean(diffs))
    return dict(out)


def annotator_stats(
    store: Store, campaign_name: str, rows: Sequence[RatingRow] | None = None
) -> list[AnnotatorStats]:
    """Work done, speed, and attention-check results of everyone who has had a page of the campaign."""
    rows = load_ratings(store, campaign_name) if rows is None else rows
    checks = attention_checks(rows)
    with store.read() as session:
        campaign = store.campaign(session, campaign_name)
        campaign_id = campaign.id
        counts = session.execute(
            select(Annotator.name, Annotator.kind, Assignment.completed_at.is_not(None), func.count())
            .join(Assignment, Assignment.annotator_id == Annotator.id)
            .join(CandidateGroup, Assignment.group_id == CandidateGroup.id)
            .where(CandidateGroup.campaign_id == campaign.id)
            .group_by(Annotator.name, Annotator.kind, Assignment.completed_at.is_not(None))
        ).all()
    pages: dict[str, dict[str, Any]] = defaultdict(lambda: {"kind": "human", "done": 0, "open": 0})
    for name, kind, done, n in counts:
        pages[name]["kind"] = kind
        pages[name]["done" if done else "open"] += int(n)
    by_annotator: dict[str, list[RatingRow]] = defaultdict(list)
    for r in rows:
        by_annotator[r.annotator].append(r)
    watched = watch_times(store, campaign_id)
    stats = []
    for name in sorted(pages):
        mine = by_annotator.get(name, [])
        page_times = {(r.group_id, r.page_kind): r.time_spent_ms for r in mine if r.time_spent_ms is not None}
        check = checks.get(name, {"broken": [], "repeat": []})
        broken, repeat = check["broken"], check["repeat"]
        repeat_ok = [d <= REPEAT_TOLERANCE for d in repeat]
        reasons = []
        if broken and sum(broken) * 2 <= len(broken):
            reasons.append(
                f"rated the broken candidate as well as the others in {len(broken) - sum(broken)}/{len(broken)} checks"
            )
        if repeat and sum(repeat_ok) * 2 <= len(repeat_ok):
            reasons.append(
                f"inconsistent on {len(repeat_ok) - sum(repeat_ok)}/{len(repeat_ok)} repeated pages"
            )
        stats.append(
            AnnotatorStats(
                name=name,
                kind=pages[name]["kind"],
                pages_done=pages[name]["done"],
                pages_open=pages[name]["open"],
                ratings=len(mine),
                median_page_seconds=statistics.median(page_times.values()) / 1000 if page_times else None,
                median_view_seconds=watched.get(name, {}).get("median_view_seconds"),
                median_reported_play_seconds=watched.get(name, {}).get("median_reported_play_seconds"),
                mean_rating=statistics.fmean(r.mean() for r in mine) if mine else None,
                broken_checks=len(broken),
                broken_passed=int(sum(broken)),
                repeat_checks=len(repeat),
                repeat_passed=int(sum(repeat_ok)),
                repeat_mean_abs_diff=statistics.fmean(repeat) if repeat else None,
                flagged=bool(reasons),
                flag_reasons=reasons,
            )
        )
    return stats


def agreement(
    rows: Sequence[RatingRow],
    *,
    levels: Sequence[str] = ("ordinal", "interval"),
    seed: int = 0,
    num_samples: int = 500,
) -> dict[str, dict[str, dict[str, float]]]:
    """Krippendorff's alpha per criterion and level with a bootstrap 95 % interval over candidates.

    Units are candidates, raters are annotators; only :func:`scoring_rows` count.
    """
    units: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in CRITERION_KEYS}
    for r in scoring_rows(rows):
        for key, value in zip(CRITERION_KEYS, r.values()):
            units[key][r.candidate_id].append(float(value))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key in CRITERION_KEYS:
        per_unit = list(units[key].values())
        pairable = sum(1 for u in per_unit if len(u) >= 2)
        out[key] = {}
        for level in levels:
            alpha, low, high = alpha_bootstrap(per_unit, level, num_samples=num_samples, seed=seed)  # type: ignore[arg-type]
            out[key][level] = {"alpha": alpha, "low": low, "high": high, "units": float(pairable)}
    return out


def campaign_overview(store: Store, campaign_name: str, *, seed: int = 0) -> dict[str, Any]:
    """Progress, agreement and per-annotator statistics of a campaign (the admin view)."""
    rows = load_ratings(store, campaign_name)
    with store.read() as session:
        campaign: Campaign = store.campaign(session, campaign_name)
        group_ids = list(
            session.scalars(select(CandidateGroup.id).where(CandidateGroup.campaign_id == campaign.id))
        )
        num_candidates = (
            session.scalar(
                select(func.count()).select_from(Candidate).where(Candidate.group_id.in_(group_ids))
            )
            if group_ids
            else 0
        )
        done_per_group = dict(
            session.execute(
                select(Assignment.group_id, func.count())
                .where(
                    Assignment.group_id.in_(group_ids),
                    Assignment.kind == "regular",
                    Assignment.completed_at.is_not(None),
                )
                .group_by(Assignment.group_id)
            ).all()
        )
        info: dict[str, Any] = {
            "name": campaign.name,
            "kind": campaign.kind,
            "ratings_per_group": campaign.ratings_per_group,
            "repeat_every": campaign.repeat_every,
            "dataset": campaign.dataset_spec,
            "split": campaign.split,
            "created_at": campaign.created_at.isoformat() + "Z",
        }
    complete = sum(1 for g in group_ids if done_per_group.get(g, 0) >= info["ratings_per_group"])
    pages_done = sum(done_per_group.values())
    stats = annotator_stats(store, campaign_name, rows)
    return {
        **info,
        "groups": len(group_ids),
        "candidates": int(num_candidates or 0),
        "groups_complete": complete,
        "pages_needed": len(group_ids) * info["ratings_per_group"],
        "pages_done": int(pages_done),
        "ratings": len(rows),
        "agreement": agreement(rows, seed=seed),
        "annotators": [asdict(s) for s in stats],
    }


def method_order(store: Store, campaign_name: str) -> list[str]:
    """The campaign's policies in the order they were given at collection, then the ground truth."""
    with store.read() as session:
        config = store.campaign(session, campaign_name).config or {}
    policies = [p["name"] for p in config.get("collect", {}).get("policies", [])]
    return [*policies, "Ground truth"]
