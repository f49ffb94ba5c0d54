"""What the annotation server does, as plain functions over a :class:`Store`.

The HTTP API calls these and nothing else touches ratings, so people, simulated annotators and tests all
go through the same code. Every function raises a :class:`FeedbackError` subclass carrying the HTTP status
that fits and a message that says what was wrong. Campaigns are built with :mod:`human_feedback.campaigns`
(re-exported here, where the pipelines have always found them).

One file, a little over 500 lines, on purpose: every rule the server applies to an annotator's request
(hand-out, blinding, submission, what they may read back) reads top to bottom in one place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from human_feedback.campaigns import (  # noqa: F401  (re-exported: the API for building campaigns)
    SOURCES,
    add_candidate,
    add_clip,
    add_group,
    check_campaign_name,
    create_campaign,
)
from human_feedback.criteria import CRITERION_KEYS, MAX_RATING, MIN_RATING
from human_feedback.errors import Conflict, FeedbackError, Invalid, NotFound  # noqa: F401  (re-exported)
from human_feedback.store import (
    Annotator,
    Assignment,
    Campaign,
    Candidate,
    CandidateGroup,
    Rating,
    Store,
    Submission,
    check_length,
    utcnow,
)
from human_feedback.viewing import unwatched

# An assignment nobody submitted within this time no longer holds one of the group's R places.
DEFAULT_LEASE_MINUTES = 120


# ----------------------------------------------------------------------------------------------------------
# What an annotator sees


@dataclass
class PageItem:
    """One candidate as an annotator sees it: an id valid only inside this assignment, a label, a video."""

    item_id: str
    label: str
    has_video: bool
    ratings: dict[str, int] | None = None


@dataclass
class AssignmentPage:
    assignment_id: str
    campaign: str
    instructions: str
    clip_duration_s: float
    transcript: list[tuple[float, float, str]]
    items: list[PageItem]
    completed: bool
    progress: dict[str, int] = field(default_factory=dict)
    require_full_view: bool = True
    require_watch_time: bool = False


def item_id(assignment_public_id: str, candidate_public_id: str) -> str:
    """The per-assignment alias of a candidate: different on every page, so ids never identify a candidate
    across annotators or repeated groups (the candidate's own id never reaches a client)."""
    digest = hashlib.sha256(f"{assignment_public_id}/{candidate_public_id}".encode()).hexdigest()
    return "i" + digest[:15]


def shuffle_seed(campaign_seed: int, annotator_id: int, group_id: int, kind: str) -> int:
    entropy = [campaign_seed, annotator_id, group_id, 1 if kind == "repeat" else 0]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def shown_order(assignment: Assignment, candidates: list[Candidate]) -> list[Candidate]:
    """The blinded order of a group's candidates on one annotator's page (seeded by the assignment)."""
    ordered = sorted(candidates, key=lambda c: c.id)
    permutation = np.random.default_rng(assignment.shuffle_seed).permutation(len(ordered))
    return [ordered[i] for i in permutation]


def _label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"#{i + 1}"


def _page(session: Session, assignment: Assignment, annotator_id: int) -> AssignmentPage:
    group = assignment.group
    campaign = group.campaign
    clip = group.clip
    order = shown_order(assignment, list(group.candidates))
    given: dict[int, Rating] = {}
    if assignment.completed_at is not None:
        given = {
            r.candidate_id: r
            for r in session.scalars(select(Rating).where(Rating.assignment_id == assignment.id))
        }
    items = [
        PageItem(
            item_id=item_id(assignment.public_id, c.public_id),
            label=_label(i),
            has_video=c.video_path is not None,
            ratings={k: getattr(given[c.id], k) for k in CRITERION_KEYS} if c.id in given else None,
        )
        for i, c in enumerate(order)
    ]
    return AssignmentPage(
        assignment_id=assignment.public_id,
        campaign=campaign.name,
        instructions=campaign.instructions,
        clip_duration_s=clip.num_frames / clip.fps,
        transcript=[(float(w[0]), float(w[1]), str(w[2])) for w in clip.speaker_words],
        items=items,
        completed=assignment.completed_at is not None,
        progress=_progress(session, campaign, annotator_id),
        require_full_view=bool(campaign.config.get("require_full_view", True)),
        require_watch_time=bool(campaign.config.get("require_watch_time", False)),
    )


def _progress(session: Session, campaign: Campaign, annotator_id: int) -> dict[str, int]:
    """Pages done, pages still to come for this annotator (unfinished + groups open to them), groups."""
    mine = dict(
        session.execute(
            select(Assignment.completed_at.is_not(None), func.count())
            .join(CandidateGroup, Assignment.group_id == CandidateGroup.id)
            .where(CandidateGroup.campaign_id == campaign.id, Assignment.annotator_id == annotator_id)
            .group_by(Assignment.completed_at.is_not(None))
        ).all()
    )
    groups = session.scalar(select(func.count()).where(CandidateGroup.campaign_id == campaign.id)) or 0
    open_groups = session.scalar(
        select(func.count()).select_from(_open_groups(session, campaign, annotator_id, utcnow()).subquery())
    )
    return {
        "done": int(mine.get(True, 0)),
        "remaining": int(open_groups or 0) + int(mine.get(False, 0)),
        "groups": int(groups),
    }


def _open_groups(session: Session, campaign: Campaign, annotator_id: int, now: dt.datetime) -> Any:
    """Groups that still need ratings (fewer than R regular pages done or in progress within the lease) and
    that this annotator has never had, with their active count; a query, evaluated inside the database."""
    lease = dt.timedelta(minutes=float(campaign.config.get("lease_minutes", DEFAULT_LEASE_MINUTES)))
    active = (
        select(func.count())
        .where(
            Assignment.group_id == CandidateGroup.id,
            Assignment.kind == "regular",
            (Assignment.completed_at.is_not(None)) | (Assignment.created_at > now - lease),
        )
        .correlate(CandidateGroup)
        .scalar_subquery()
    )
    mine = select(Assignment.group_id).where(Assignment.annotator_id == annotator_id)
    return select(CandidateGroup.id, active.label("active"), CandidateGroup.position).where(
        CandidateGroup.campaign_id == campaign.id,
        CandidateGroup.id.not_in(mine),
        active < campaign.ratings_per_group,
    )


def _annotator(session: Session, annotator_id: int) -> Annotator:
    annotator = session.get(Annotator, annotator_id)
    if annotator is None or not annotator.active:
        raise NotFound("unknown or deactivated annotator")
    return annotator


def _campaign(session: Session, name: str, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.name == name)
    # Row lock on servers such as PostgreSQL, so concurrent hand-outs of one campaign queue up (SQLite's
    # BEGIN IMMEDIATE already serializes every writer; SQLAlchemy leaves FOR UPDATE out there).
    campaign = session.scalar(query.with_for_update() if lock else query)
    if campaign is None:
        raise NotFound(f"no campaign {name!r}")
    return campaign


def next_assignment(store: Store, annotator_id: int, campaign_name: str) -> AssignmentPage | None:
    """The annotator's unfinished page, else a new one; None when nothing is left for them.

    A new page is a repeat of a group they already rated (attention check) once every
    ``campaign.repeat_every`` pages, else the group with the most raters in progress below R that they have
    never had (so groups complete one after another). The choice runs in one write transaction that holds
    the campaign (a row lock on PostgreSQL, the write lock on SQLite), so concurrent calls never hand a
    group to more than R annotators; the page is read afterwards, so the lock is held only for the choice.
    """
    with store.read() as session:  # a page already open needs no lock (reloads, retries)
        unfinished = _unfinished(session, _campaign(session, campaign_name), annotator_id)
        if unfinished is not None:
            _annotator(session, annotator_id)
            return _page(session, unfinished, annotator_id)
    with store.write() as session:
        _annotator(session, annotator_id)
        campaign = _campaign(session, campaign_name, lock=True)
        assignment = _unfinished(session, campaign, annotator_id)
        if assignment is None:
            assignment = _repeat_check(session, campaign, annotator_id) or _new_regular(
                session, campaign, annotator_id, utcnow()
            )
            if assignment is None:
                return None
            session.add(assignment)
            session.flush()
        public_id = assignment.public_id
    with store.read() as session:
        chosen = session.scalar(select(Assignment).where(Assignment.public_id == public_id))
        assert chosen is not None  # committed above
        return _page(session, chosen, annotator_id)


def _pages_of(campaign: Campaign, annotator_id: int, *, submitted: bool) -> Any:
    """A query of the annotator's pages in the campaign, submitted or still open."""
    state = Assignment.completed_at.is_not(None) if submitted else Assignment.completed_at.is_(None)
    return (
        select(Assignment)
        .join(CandidateGroup, Assignment.group_id == CandidateGroup.id)
        .where(CandidateGroup.campaign_id == campaign.id, Assignment.annotator_id == annotator_id, state)
    )


def _unfinished(session: Session, campaign: Campaign, annotator_id: int) -> Assignment | None:
    return session.scalars(_pages_of(campaign, annotator_id, submitted=False).order_by(Assignment.id)).first()


def _new_regular(
    session: Session, campaign: Campaign, annotator_id: int, now: dt.datetime
) -> Assignment | None:
    open_groups = _open_groups(session, campaign, annotator_id, now).subquery()
    # Fill the groups closest to complete first; among equals keep the campaign's order.
    group_id = session.scalar(
        select(open_groups.c.id)
        .order_by(open_groups.c.active.desc(), open_groups.c.position, open_groups.c.id)
        .limit(1)
    )
    if group_id is None:
        return None
    return Assignment(
        group_id=group_id,
        annotator_id=annotator_id,
        kind="regular",
        shuffle_seed=shuffle_seed(campaign.seed, annotator_id, group_id, "regular"),
    )


def _repeat_check(session: Session, campaign: Campaign, annotator_id: int) -> Assignment | None:
    if campaign.repeat_every <= 0:
        return None
    done = session.execute(
        select(Assignment.group_id, Assignment.kind)
        .join(CandidateGroup, Assignment.group_id == CandidateGroup.id)
        .where(
            CandidateGroup.campaign_id == campaign.id,
            Assignment.annotator_id == annotator_id,
            Assignment.completed_at.is_not(None),
        )
        .order_by(Assignment.completed_at, Assignment.id)
    ).all()
    regular = [g for g, kind in done if kind == "regular"]
    repeated = {g for g, kind in done if kind == "repeat"}
    if len(regular) < (len(repeated) + 1) * campaign.repeat_every:
        return None
    # Not the page they just did (too easy to remember), and each group at most once.
    pool = [g for g in regular[:-1] if g not in repeated]
    if not pool:
        return None
    rng = np.random.default_rng([campaign.seed, annotator_id, len(repeated), 7])
    group_id = int(pool[int(rng.integers(len(pool)))])
    return Assignment(
        group_id=group_id,
        annotator_id=annotator_id,
        kind="repeat",
        shuffle_seed=shuffle_seed(campaign.seed, annotator_id, group_id, "repeat"),
    )


def _own_assignment(session: Session, annotator_id: int, public_id: str) -> Assignment:
    assignment = session.scalar(select(Assignment).where(Assignment.public_id == public_id))
    # Someone else's assignment reads exactly like a missing one: ids reveal nothing.
    if assignment is None or assignment.annotator_id != annotator_id:
        raise NotFound(f"no assignment {public_id!r} for you; open the next page from the start page")
    return assignment


def get_assignment(store: Store, annotator_id: int, public_id: str) -> AssignmentPage:
    with store.read() as session:
        return _page(session, _own_assignment(session, annotator_id, public_id), annotator_id)


@dataclass
class MediaItem:
    """A video to serve: the campaign directory, its stored path, and those of the whole group (served at
    one size, see :mod:`human_feedback.blinding`)."""

    root: Path
    stored: str
    group: list[str]
    assignment_id: int
    candidate_id: int


def open_media(store: Store, annotator_id: int | None, assignment_public_id: str, item: str) -> MediaItem:
    """The video of an item on a page; admins (annotator_id None) may open any page.

    The server notes the fetch (:func:`human_feedback.viewing.record_fetch`) once it has the file, for
    the page's annotator only: admins' fetches count for nobody.
    """
    with store.read() as session:
        assignment = session.scalar(select(Assignment).where(Assignment.public_id == assignment_public_id))
        if assignment is None or (annotator_id is not None and assignment.annotator_id != annotator_id):
            raise NotFound("no such video")
        candidates = assignment.group.candidates
        wanted = next((c for c in candidates if item_id(assignment.public_id, c.public_id) == item), None)
        if wanted is None:
            raise NotFound("no such video")
        if wanted.video_path is None:
            raise NotFound("this candidate has no video (collected with --no-render)")
        return MediaItem(
            root=store.media_root(assignment.group.campaign.media_dir),
            stored=wanted.video_path,
            group=[c.video_path for c in candidates if c.video_path is not None],
            assignment_id=assignment.id,
            candidate_id=wanted.id,
        )


@dataclass
class SubmitAck:
    submission_id: str
    assignment_id: str
    ratings: int
    duplicate: bool
    received_at: str


def _payload_hash(ratings: Sequence[dict[str, Any]]) -> str:
    canonical = sorted((str(r["item_id"]), *(int(r[k]) for k in CRITERION_KEYS)) for r in ratings)
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def submit(
    store: Store,
    annotator_id: int,
    assignment_public_id: str,
    *,
    submission_id: str,
    ratings: Sequence[dict[str, Any]],
    time_spent_ms: int | None = None,
) -> SubmitAck:
    """Store a page of ratings in one transaction; a retry with the same ``submission_id`` is a no-op.

    ``ratings`` holds one dict per item on the page: ``item_id``, the four criteria (1-5) and optionally
    ``watched_ms``. Every item must be rated exactly once.

    Raises:
        NotFound: the assignment is not the annotator's.
        Invalid: missing, unknown or repeated items, or ratings outside 1-5.
        Conflict: the page was already submitted under another id, or this id was used for other ratings;
            or its videos were not fetched (or not long enough ago, see :mod:`human_feedback.viewing`).
    """
    _check_submission(submission_id, ratings, time_spent_ms)
    payload_hash = _payload_hash(ratings)
    try:
        with store.write() as session:
            previous = session.get(Submission, submission_id)
            if previous is not None:
                return _replayed(session, previous, annotator_id, assignment_public_id, payload_hash)
            assignment = _own_assignment(session, annotator_id, assignment_public_id)
            if assignment.completed_at is not None:
                raise Conflict(
                    f"page {assignment_public_id} was already submitted; ratings cannot be changed"
                )
            by_item = _match_items(assignment, ratings)
            now = utcnow()
            reason = unwatched(session, assignment, now)
            if reason is not None:
                raise Conflict(reason)
            session.add(
                Submission(
                    id=submission_id,
                    assignment_id=assignment.id,
                    annotator_id=annotator_id,
                    payload_sha256=payload_hash,
                    time_spent_ms=time_spent_ms,
                    created_at=now,
                )
            )
            session.flush()  # the submission row first: ratings reference it
            for candidate, r in by_item:
                session.add(
                    Rating(
                        submission_id=submission_id,
                        assignment_id=assignment.id,
                        candidate_id=candidate.id,
                        annotator_id=annotator_id,
                        watched_ms=r.get("watched_ms"),
                        created_at=now,
                        **{k: int(r[k]) for k in CRITERION_KEYS},
                    )
                )
            assignment.completed_at = now
            return SubmitAck(submission_id, assignment.public_id, len(by_item), False, now.isoformat() + "Z")
    except IntegrityError:
        # Two submits of one page raced past the checks above (another process writing to the same
        # database); the loser replays the winner's acknowledgement or reports the conflict.
        with store.read() as session:
            previous = session.get(Submission, submission_id)
            if previous is not None:
                return _replayed(session, previous, annotator_id, assignment_public_id, payload_hash)
            done = session.scalar(
                select(Assignment.completed_at).where(Assignment.public_id == assignment_public_id)
            )
        if done is not None:
            raise Conflict(
                f"page {assignment_public_id} was already submitted; ratings cannot be changed"
            ) from None
        raise


def _check_submission(
    submission_id: str, ratings: Sequence[dict[str, Any]], time_spent_ms: int | None
) -> None:
    """What can be checked before touching the database (the API's models check the same)."""
    try:
        check_length(submission_id, Submission.id, "submission id")
    except ValueError as e:
        raise Invalid(str(e)) from None
    if time_spent_ms is not None and not 0 <= time_spent_ms < 2**62:
        raise Invalid(f"time_spent_ms must be a non-negative number of milliseconds, found {time_spent_ms}")
    for r in ratings:
        for key in CRITERION_KEYS:
            value = r.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not MIN_RATING <= value <= MAX_RATING:
                raise Invalid(
                    f"item {r.get('item_id')!r}: {key} must be an integer {MIN_RATING}-{MAX_RATING}, found {value!r}"
                )


def _replayed(
    session: Session, previous: Submission, annotator_id: int, assignment_public_id: str, payload_hash: str
) -> SubmitAck:
    assignment = session.get(Assignment, previous.assignment_id)
    if (
        previous.annotator_id != annotator_id
        or assignment is None
        or assignment.public_id != assignment_public_id
        or previous.payload_sha256 != payload_hash
    ):
        raise Conflict(
            f"submission id {previous.id!r} was already used for different ratings; generate a new id per page"
        )
    count = session.scalar(select(func.count()).where(Rating.submission_id == previous.id)) or 0
    return SubmitAck(
        previous.id, assignment_public_id, int(count), True, previous.created_at.isoformat() + "Z"
    )


def _match_items(
    assignment: Assignment, ratings: Sequence[dict[str, Any]]
) -> list[tuple[Candidate, dict[str, Any]]]:
    by_item = {item_id(assignment.public_id, c.public_id): c for c in assignment.group.candidates}
    seen: set[str] = set()
    matched = []
    for r in ratings:
        key = str(r.get("item_id"))
        if key not in by_item:
            raise Invalid(f"item {key!r} is not on page {assignment.public_id}")
        if key in seen:
            raise Invalid(f"item {key!r} is rated twice")
        seen.add(key)
        matched.append((by_item[key], r))
    missing = sorted(set(by_item) - seen)
    if missing:
        raise Invalid(f"rate every video on the page before submitting; {len(missing)} not rated")
    return matched


def annotator_campaigns(store: Store, annotator_id: int) -> list[dict[str, Any]]:
    """Campaigns with this annotator's progress in each."""
    with store.read() as session:
        campaigns = session.scalars(select(Campaign).order_by(Campaign.id)).all()
        return [{"name": c.name, "kind": c.kind, **_progress(session, c, annotator_id)} for c in campaigns]


def own_ratings(store: Store, annotator_id: int, campaign_name: str) -> list[dict[str, Any]]:
    """The annotator's own submitted pages with the ratings they gave (item ids as on their pages)."""
    with store.read() as session:
        campaign = _campaign(session, campaign_name)
        assignments = session.scalars(
            _pages_of(campaign, annotator_id, submitted=True).order_by(Assignment.completed_at)
        ).all()
        out = []
        for a in assignments:
            page = _page(session, a, annotator_id)
            out.append(
                {
                    "assignment_id": a.public_id,
                    "submitted_at": a.completed_at.isoformat() + "Z" if a.completed_at else None,
                    "items": [
                        {"item_id": i.item_id, "label": i.label, "ratings": i.ratings} for i in page.items
                    ],
                }
            )
        return out


@dataclass
class WatchedItem:
    """What a simulated annotator 'sees' of one item: the motion a person would see in its video."""

    key: int
    fps: float
    speaker_motion: np.ndarray
    listener_tokens: np.ndarray
    speaker_words: list[tuple[float, float, str]]


def watch_item(store: Store, annotator_id: int, assignment_public_id: str, item: str) -> WatchedItem:
    """The stand-in for playing an item's video, for simulated annotators: same ownership check as the
    video endpoint, and the motion the video was rendered from (listener as tokens)."""
    with store.read() as session:
        assignment = _own_assignment(session, annotator_id, assignment_public_id)
        clip = assignment.group.clip
        for candidate in assignment.group.candidates:
            if item_id(assignment.public_id, candidate.public_id) == item:
                return WatchedItem(
                    key=candidate.id, fps=clip.fps, speaker_motion=clip.speaker_array().copy(),
                    listener_tokens=candidate.token_array().copy(),
                    speaker_words=[(float(w[0]), float(w[1]), str(w[2])) for w in clip.speaker_words],
                )  # fmt: skip
    raise NotFound(f"no item {item!r} on page {assignment_public_id}")
