"""The feedback store: SQLAlchemy 2.x models and how a database is opened.

Tables: campaigns, clips, candidate groups, candidates, annotators, credentials (hashed tokens),
assignments, submissions and ratings, plus ``schema_info`` holding the schema version, which is checked
every time a database is opened.

SQLite is the default (a file next to the campaign's videos); any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/feedback`` for a team. On SQLite every connection turns on foreign keys,
WAL journaling (readers never block the writer), ``synchronous=FULL`` (a commit that was acknowledged
survives a crash of the server process and of the machine) and a busy timeout; write transactions begin
with ``BEGIN IMMEDIATE`` so that read-then-write steps (handing out assignments) are serialized.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.pool import StaticPool

from human_feedback.criteria import MAX_RATING, MIN_RATING

SCHEMA_VERSION = 1
SCHEMA_NAME = "dyadic-feedback"


class SchemaError(RuntimeError):
    """The database is not a feedback store of the schema version this toolkit reads."""


def utcnow() -> dt.datetime:
    """Naive UTC now (SQLite keeps no time zone; every timestamp in the store is UTC)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_public_id(prefix: str) -> str:
    """An opaque random id shown to clients; it carries no information about what it names."""
    return f"{prefix}_{secrets.token_urlsafe(9)}"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class SchemaInfo(Base):
    __tablename__ = "schema_info"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Campaign(Base):
    """A set of candidate groups rated under one configuration.

    ``media_dir`` is the campaign directory: every video path is relative to it and must stay inside it.
    """

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="preference")  # preference | study
    media_dir: Mapped[str] = mapped_column(Text)
    ratings_per_group: Mapped[int] = mapped_column(Integer, default=3)
    dataset_spec: Mapped[str | None] = mapped_column(Text, default=None)
    split: Mapped[str | None] = mapped_column(String(64), default=None)
    expression_basis: Mapped[str | None] = mapped_column(String(32), default=None)
    tokenizer: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Attention checks: repeat one finished group after every `repeat_every` groups (0 = never).
    repeat_every: Mapped[int] = mapped_column(Integer, default=8)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    instructions: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (CheckConstraint("ratings_per_group >= 1", name="ck_campaign_r"),)

    clips: Mapped[list[ClipRecord]] = relationship(back_populates="campaign", cascade="all, delete-orphan")
    groups: Mapped[list[CandidateGroup]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan"
    )


class ClipRecord(Base):
    """The speaker side of one dataset clip, copied in so a campaign is self-contained."""

    __tablename__ = "clips"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    clip_id: Mapped[str] = mapped_column(String(256))
    split: Mapped[str | None] = mapped_column(String(64), default=None)
    fps: Mapped[float] = mapped_column(Float)
    num_frames: Mapped[int] = mapped_column(Integer)
    speaker_motion: Mapped[bytes] = mapped_column(LargeBinary)  # (T, 56) float32, C order
    speaker_words: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[start, end, text], ...]
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    __table_args__ = (UniqueConstraint("campaign_id", "clip_id", name="uq_clip_campaign"),)

    campaign: Mapped[Campaign] = relationship(back_populates="clips")

    def speaker_array(self) -> np.ndarray:
        return np.frombuffer(self.speaker_motion, dtype=np.float32).reshape(self.num_frames, -1)


class CandidateGroup(Base):
    """Candidates for one clip that annotators rate side by side on one page."""

    __tablename__ = "candidate_groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_public_id("g"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    clip_pk: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="groups")
    clip: Mapped[ClipRecord] = relationship()
    candidates: Mapped[list[Candidate]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="Candidate.id"
    )


class Candidate(Base):
    """One listener trajectory in a group.

    ``source`` is ``policy``, ``ground_truth`` or ``broken`` (an attention check); ``policy_name`` names the
    agent. Neither ever reaches an annotator: clients see only ``public_id``.
    """

    __tablename__ = "candidates"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_public_id("c"))
    group_id: Mapped[int] = mapped_column(ForeignKey("candidate_groups.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    policy_name: Mapped[str] = mapped_column(String(256))
    sample_index: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    num_frames: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[bytes] = mapped_column(LargeBinary)  # (T, 56) uint8 or uint16, C order
    tokens_dtype: Mapped[str] = mapped_column(String(8), default="uint8")
    video_path: Mapped[str | None] = mapped_column(Text, default=None)  # relative to the campaign media_dir
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        CheckConstraint("source IN ('policy', 'ground_truth', 'broken')", name="ck_candidate_source"),
    )

    group: Mapped[CandidateGroup] = relationship(back_populates="candidates")

    def token_array(self) -> np.ndarray:
        return np.frombuffer(self.tokens, dtype=np.dtype(self.tokens_dtype)).reshape(self.num_frames, -1)


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_public_id("a"))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="human")  # human | simulated
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Credential(Base):
    """A sign-in token, stored only as its SHA-256 (tokens are 256-bit random, so no salt is needed)."""

    __tablename__ = "credentials"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # annotator | admin
    annotator_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id", ondelete="CASCADE"), default=None
    )
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    __table_args__ = (
        CheckConstraint("role IN ('annotator', 'admin')", name="ck_credential_role"),
        CheckConstraint("role = 'admin' OR annotator_id IS NOT NULL", name="ck_credential_owner"),
    )

    annotator: Mapped[Annotator | None] = relationship()


class Assignment(Base):
    """One group handed to one annotator. ``kind='repeat'`` is the attention check that re-shows a group."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_public_id("t"))
    group_id: Mapped[int] = mapped_column(ForeignKey("candidate_groups.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="regular")
    shuffle_seed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    __table_args__ = (
        UniqueConstraint("group_id", "annotator_id", "kind", name="uq_assignment_once"),
        CheckConstraint("kind IN ('regular', 'repeat')", name="ck_assignment_kind"),
    )

    group: Mapped[CandidateGroup] = relationship()
    annotator: Mapped[Annotator] = relationship()


class Submission(Base):
    """One submitted page of ratings, keyed by the client-generated id that makes retries idempotent."""

    __tablename__ = "submissions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), unique=True, index=True
    )
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    time_spent_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Rating(Base):
    """Four 1-5 ratings of one candidate by one annotator within one assignment."""

    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    empathy: Mapped[int] = mapped_column(Integer)
    appropriateness: Mapped[int] = mapped_column(Integer)
    engagement: Mapped[int] = mapped_column(Integer)
    naturalness: Mapped[int] = mapped_column(Integer)
    watched_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("assignment_id", "candidate_id", name="uq_rating_once"),
        *(
            CheckConstraint(f"{k} BETWEEN {MIN_RATING} AND {MAX_RATING}", name=f"ck_rating_{k}")
            for k in ("empathy", "appropriateness", "engagement", "naturalness")
        ),
    )

    candidate: Mapped[Candidate] = relationship()


def database_url(text: str | os.PathLike) -> str:
    """Turn a SQLAlchemy URL or a plain file path into a URL (a path becomes an absolute SQLite URL)."""
    text = os.fspath(text)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN, so writes can ask for BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """An open feedback database.

    Args:
        url: a SQLAlchemy URL, or a file path for SQLite.
        create: create the tables when the database is empty; otherwise an empty database is an error.

    Raises:
        SchemaError: the database is missing, not a feedback store, or of another schema version.
    """

    def __init__(self, url: str | os.PathLike, *, create: bool = False) -> None:
        self.url = database_url(url)
        self.sqlite_path = _sqlite_path(self.url)
        if self.sqlite_path is not None:
            if not create and not self.sqlite_path.exists():
                raise SchemaError(
                    f"no feedback database at {self.sqlite_path}; create one with "
                    "`dyadic feedback init --db PATH --campaign NAME` or `dyadic feedback collect`"
                )
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if self.sqlite_path is None:
                kwargs["poolclass"] = StaticPool
            else:
                kwargs.update(pool_size=16, max_overflow=48)
        self.engine = create_engine(self.url, **kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        )
        self._write = sessionmaker(write_engine, expire_on_commit=False)
        self._check_schema(create)

    def _check_schema(self, create: bool) -> None:
        tables = set(inspect(self.engine).get_table_names())
        if "schema_info" not in tables:
            if tables - {"schema_info"}:
                raise SchemaError(
                    f"{self.url}: the database holds tables {sorted(tables)[:5]} but no schema_info; it is "
                    "not a dyadic feedback store. Point --db at a new file or a feedback database."
                )
            if not create:
                raise SchemaError(f"{self.url}: empty database; create it with `dyadic feedback init`")
            Base.metadata.create_all(self.engine)
            with self.write() as session:
                session.add(SchemaInfo(id=1, name=SCHEMA_NAME, version=SCHEMA_VERSION))
            return
        with self.read() as session:
            info = session.get(SchemaInfo, 1)
        if info is None or info.name != SCHEMA_NAME:
            raise SchemaError(f"{self.url}: schema_info does not name a {SCHEMA_NAME} store")
        if info.version != SCHEMA_VERSION:
            raise SchemaError(
                f"{self.url}: feedback store schema version {info.version}, but this toolkit reads version "
                f"{SCHEMA_VERSION}. Use the toolkit version that wrote it, or export its ratings and start a "
                "new database."
            )

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; closing it ends its transaction and detaches what was loaded."""
        with self._read() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits at the end (SQLite: ``BEGIN IMMEDIATE``), or rolls back."""
        # SQLite has one writer at a time; queueing writers of this process on a lock is fairer and faster
        # than letting them poll the database lock (its busy handler sleeps up to 100 ms between tries).
        with self._write_lock or contextlib.nullcontext(), self._write() as session, session.begin():
            yield session

    def campaign(self, session: Session, name: str) -> Campaign:
        """The campaign called ``name``; a ``LookupError`` naming the existing ones otherwise."""
        found = session.scalar(select(Campaign).where(Campaign.name == name))
        if found is None:
            names = session.scalars(select(Campaign.name).order_by(Campaign.id)).all()
            raise LookupError(
                f"no campaign {name!r} in {self.url}; existing campaigns: {', '.join(names) or 'none'}"
            )
        return found

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
