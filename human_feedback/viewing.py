"""What the server knows about watching: which videos of a page were fetched, and when.

The browser's "play to the end" lock is a convenience; the rule that counts is enforced here, on the
server, from its own records (:class:`~human_feedback.store.MediaFetch`):

- a page whose candidates have videos is accepted only after every one of those videos was fetched for
  that page (``/media/PAGE/ITEM.mp4``; any request, a range request included, counts);
- when the campaign asks for it (config ``require_watch_time``), also only once at least the clip's
  duration has passed since each video's first fetch.

Candidates without a video (campaigns collected with ``--no-render``, or the groups the alignment
pipelines leave unrendered) have nothing to fetch, so the rule does not apply to them: simulated
annotators rate those from the motion directly, and fetch the videos that do exist like a browser would.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from human_feedback.store import (
    Annotator,
    Assignment,
    Candidate,
    CandidateGroup,
    MediaFetch,
    Rating,
    Store,
    Submission,
    utcnow,
)


def record_fetch(store: Store, assignment_id: int, candidate_id: int) -> None:
    """Note the first fetch of a page's video (later fetches, such as range requests, change nothing)."""
    with store.read() as session:
        seen = session.scalar(
            select(MediaFetch.id).where(
                MediaFetch.assignment_id == assignment_id, MediaFetch.candidate_id == candidate_id
            )
        )
    if seen is not None:
        return
    try:
        with store.write() as session:
            session.add(MediaFetch(assignment_id=assignment_id, candidate_id=candidate_id, first_at=utcnow()))
    except IntegrityError:
        pass  # a parallel request of the same video recorded it first


def unwatched(session: Session, assignment: Assignment, now: dt.datetime) -> str | None:
    """Why the page cannot be submitted yet, or None when its videos were fetched (and watched long enough,
    if the campaign requires it)."""
    with_video = [c for c in assignment.group.candidates if c.video_path is not None]
    if not with_video:
        return None
    fetched = dict(
        session.execute(
            select(MediaFetch.candidate_id, MediaFetch.first_at).where(
                MediaFetch.assignment_id == assignment.id
            )
        ).all()
    )
    missing = [c for c in with_video if c.id not in fetched]
    if missing:
        return (
            f"{len(missing)} of the {len(with_video)} videos on this page were never loaded; "
            "play every video before rating"
        )
    campaign = assignment.group.campaign
    if not (campaign.config or {}).get("require_watch_time", False):
        return None
    clip = assignment.group.clip
    duration = dt.timedelta(seconds=clip.num_frames / clip.fps)
    waiting = max(fetched[c.id] + duration - now for c in with_video)
    if waiting > dt.timedelta(0):
        return (
            f"this page's videos last {duration.total_seconds():.1f} s; watch them to the end "
            f"({waiting.total_seconds():.1f} s more) before submitting"
        )
    return None


def watch_times(store: Store, campaign_id: int) -> dict[str, dict[str, float | None]]:
    """Per annotator: the median seconds from a page's first video fetch to its submission (measured by
    the server) and the median playing time per video that their browser reported."""
    with store.read() as session:
        viewed = session.execute(
            select(Annotator.name, Submission.created_at, func.min(MediaFetch.first_at))
            .join(Assignment, Assignment.annotator_id == Annotator.id)
            .join(CandidateGroup, Assignment.group_id == CandidateGroup.id)
            .join(Submission, Submission.assignment_id == Assignment.id)
            .join(MediaFetch, MediaFetch.assignment_id == Assignment.id)
            .where(CandidateGroup.campaign_id == campaign_id)
            .group_by(Annotator.name, Submission.id, Submission.created_at)
        ).all()
        reported = session.execute(
            select(Annotator.name, Rating.watched_ms)
            .join(Rating, Rating.annotator_id == Annotator.id)
            .join(Candidate, Rating.candidate_id == Candidate.id)
            .join(CandidateGroup, Candidate.group_id == CandidateGroup.id)
            .where(CandidateGroup.campaign_id == campaign_id, Candidate.video_path.is_not(None))
        ).all()
    server: dict[str, list[float]] = defaultdict(list)
    for name, submitted, first in viewed:
        server[name].append((submitted - first).total_seconds())
    client: dict[str, list[float]] = defaultdict(list)
    for name, ms in reported:
        if ms is not None:
            client[name].append(ms / 1000)
    return {
        name: {
            "median_view_seconds": _median(server.get(name)),
            "median_reported_play_seconds": _median(client.get(name)),
        }
        for name in set(server) | set(client)
    }


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None
