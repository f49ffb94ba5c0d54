"""Building campaigns: a campaign, its clips (the speaker side), candidate groups and candidates.

Whatever builds a campaign (``dyadic feedback collect``, the alignment pipelines, tests, benchmarks) goes
through these functions, which check every value against what its column can hold, so the same input is
refused with the same message on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from human_feedback.errors import Conflict, Invalid
from human_feedback.media import relative_media_path
from human_feedback.store import (
    Campaign,
    Candidate,
    CandidateGroup,
    ClipRecord,
    Store,
    check_length,
    media_root,
    session_sqlite_path,
)

_CAMPAIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SOURCES = ("policy", "ground_truth", "broken")
MAX_COUNT = 100_000  # R and repeat_every: far above any real campaign, far below a 32-bit column's limit
MAX_SEED = 2**63 - 1


def check_campaign_name(name: str) -> str:
    if not _CAMPAIGN_NAME.match(name or ""):
        raise Invalid(
            f"campaign name {name!r} is not allowed; use 1-128 letters, digits or . _ - (no spaces or slashes)"
        )
    return name


def _fits(value: str | None, column: Any, what: str) -> None:
    try:
        check_length(value, column, what)
    except ValueError as e:
        raise Invalid(str(e)) from None


def _check_settings(kind: str, ratings_per_group: int, repeat_every: int, seed: int) -> None:
    if kind not in ("preference", "study"):
        raise Invalid(f"campaign kind must be 'preference' or 'study', found {kind!r}")
    if not 1 <= ratings_per_group <= MAX_COUNT:
        raise Invalid(f"ratings per group must be 1-{MAX_COUNT}, found {ratings_per_group}")
    if not 0 <= repeat_every <= MAX_COUNT:
        raise Invalid(
            f"repeat_every must be 0-{MAX_COUNT} (0 turns repeated-group checks off), found {repeat_every}"
        )
    if not 0 <= seed <= MAX_SEED:
        raise Invalid(f"seed must be 0-{MAX_SEED}, found {seed}")


def create_campaign(
    store: Store,
    name: str,
    *,
    media_dir: str | Path,
    kind: str = "preference",
    ratings_per_group: int = 3,
    repeat_every: int = 8,
    seed: int = 0,
    dataset_spec: str | None = None,
    split: str | None = None,
    expression_basis: str | None = None,
    tokenizer: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    instructions: str = "",
) -> int:
    """Create a campaign and its directory; returns its database id.

    Raises:
        Conflict: a campaign of that name exists.
        Invalid: a bad name or setting.
    """
    check_campaign_name(name)
    _check_settings(kind, ratings_per_group, repeat_every, seed)
    _fits(split, Campaign.split, "split")
    _fits(expression_basis, Campaign.expression_basis, "expression basis")
    media = Path(media_dir).expanduser().resolve()
    media.mkdir(parents=True, exist_ok=True)
    with store.write() as session:
        if session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
            raise Conflict(
                f"campaign {name!r} already exists in {store.url}; choose another --campaign name, "
                "or add groups to it with --append"
            )
        campaign = Campaign(
            name=name, kind=kind, media_dir=store.stored_media_dir(media), ratings_per_group=ratings_per_group,
            repeat_every=repeat_every, seed=seed, dataset_spec=dataset_spec, split=split,
            expression_basis=expression_basis, tokenizer=tokenizer, config=_jsonable(dict(config or {})),
            instructions=instructions,
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        return campaign.id


def add_clip(
    session: Session,
    campaign: Campaign,
    *,
    clip_id: str,
    fps: float,
    speaker_motion: np.ndarray,
    speaker_words: Sequence[Any] = (),
    split: str | None = None,
    meta: dict[str, Any] | None = None,
) -> ClipRecord:
    """Copy a clip's speaker side into the campaign (words as ``(start, end, text)`` triples)."""
    motion = np.ascontiguousarray(speaker_motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[0] < 1:
        raise Invalid(f"clip {clip_id}: speaker_motion must be (T, D) with T >= 1, found {motion.shape}")
    if not fps > 0:
        raise Invalid(f"clip {clip_id}: fps must be positive, found {fps}")
    _fits(clip_id, ClipRecord.clip_id, "clip id")
    _fits(split, ClipRecord.split, "split")
    words = [[float(w[0]), float(w[1]), str(w[2])] for w in speaker_words]
    record = ClipRecord(
        campaign_id=campaign.id,
        clip_id=clip_id,
        split=split,
        fps=float(fps),
        num_frames=int(motion.shape[0]),
        speaker_motion=motion.tobytes(),
        speaker_words=words,
        meta=_jsonable(meta or {}),
    )
    session.add(record)
    session.flush()
    return record


def add_group(session: Session, campaign: Campaign, clip: ClipRecord) -> CandidateGroup:
    position = session.scalar(select(func.count()).where(CandidateGroup.campaign_id == campaign.id)) or 0
    group = CandidateGroup(campaign_id=campaign.id, clip_pk=clip.id, position=int(position))
    session.add(group)
    session.flush()
    return group


def add_candidate(
    session: Session,
    campaign: Campaign,
    group: CandidateGroup,
    *,
    source: str,
    policy_name: str,
    tokens: np.ndarray,
    video_path: str | Path | None = None,
    sample_index: int = 0,
    seed: int | None = None,
    meta: dict[str, Any] | None = None,
    public_id: str | None = None,
) -> Candidate:
    """Add one trajectory to a group; its video (if any) must lie inside the campaign directory."""
    if source not in SOURCES:
        raise Invalid(f"candidate source must be one of {SOURCES}, found {source!r}")
    _fits(policy_name, Candidate.policy_name, "policy name")
    _fits(public_id, Candidate.public_id, "candidate id")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise Invalid(f"candidate seed must be 0-{MAX_SEED}, found {seed}")
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise Invalid(
            f"candidate tokens must be a 2-D integer array (T, 56), found {tokens.dtype} {tokens.shape}"
        )
    clip = session.get(ClipRecord, group.clip_pk)
    if clip is not None and tokens.shape[0] != clip.num_frames:
        raise Invalid(
            f"candidate of clip {clip.clip_id} has {tokens.shape[0]} frames, the clip has {clip.num_frames}"
        )
    if tokens.size and (tokens.min() < 0 or tokens.max() > np.iinfo(np.uint16).max):
        raise Invalid("candidate tokens must be in [0, 65535]")
    dtype = np.uint8 if tokens.size == 0 or tokens.max() < 256 else np.uint16
    root = media_root(campaign.media_dir, session_sqlite_path(session))
    stored_video = None if video_path is None else relative_media_path(root, video_path)
    candidate = Candidate(
        group_id=group.id,
        source=source,
        policy_name=policy_name,
        sample_index=sample_index,
        seed=seed,
        num_frames=int(tokens.shape[0]),
        tokens=np.ascontiguousarray(tokens, dtype=dtype).tobytes(),
        tokens_dtype=np.dtype(dtype).name,
        video_path=stored_video,
        meta=_jsonable(meta or {}),
    )
    if public_id is not None:
        candidate.public_id = public_id
    session.add(candidate)
    session.flush()
    return candidate


def relocate_media(store: Store, name: str, media_dir: str | Path) -> str:
    """Point campaign ``name`` at ``media_dir`` (where its videos are now); a line saying what changed.

    Raises:
        ValueError: ``media_dir`` lacks some of the campaign's videos (nothing is changed then).
        LookupError: no such campaign.
    """
    new = Path(media_dir).expanduser().resolve()
    with store.write() as session:
        campaign = store.campaign(session, name)
        videos = session.scalars(
            select(Candidate.video_path)
            .join(CandidateGroup, Candidate.group_id == CandidateGroup.id)
            .where(CandidateGroup.campaign_id == campaign.id, Candidate.video_path.is_not(None))
        ).all()
        missing = [v for v in videos if v is not None and not (new / v).is_file()]
        if missing:
            raise ValueError(
                f"{new} lacks {len(missing)} of campaign {name}'s {len(videos)} videos (e.g. {missing[0]}); "
                "give the directory that holds its videos/ folder"
            )
        old, campaign.media_dir = campaign.media_dir, store.stored_media_dir(new)
        return f"campaign {name}: videos now read from {new} (stored as {campaign.media_dir}, was {old})"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
