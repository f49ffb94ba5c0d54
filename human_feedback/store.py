"""The feedback store: SQLAlchemy 2.x models and how a database is opened.

Tables: campaigns, clips, candidate groups, candidates, annotators, credentials (hashed tokens with an
expiry), sign-in sessions, assignments, media fetches (which videos of a page were fetched, and when),
submissions and ratings, plus ``schema_info`` holding the schema version, which is checked every time a
database is opened; :mod:`human_feedback.migrations` upgrades older versions in place.

Columns are sized for every value they can hold: seeds and millisecond counts are 64-bit (a 32-bit column
overflows on PostgreSQL, which, unlike SQLite, enforces sizes), and text that users choose is checked
against its column's length before it is stored (:func:`check_length`).

The schema and how a database is opened stay in one file (a little over 500 lines) so that what a
column holds and how it is checked read together.

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
    BigInteger,
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
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.pool import StaticPool

from dyadic_env.criteria import CRITERIA
from human_feedback.criteria import MAX_RATING, MIN_RATING

SCHEMA_VERSION = 2
DEFAULT_TOKEN_DAYS = 30  # how long a new sign-in token works (human_feedback.auth)
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
    On SQLite it is stored relative to the database's folder when it lies inside it, so a database moved
    together with its campaigns keeps working (:meth:`Store.media_root`).
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
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
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
    seed: Mapped[int | None] = mapped_column(BigInteger, default=None)
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
    """A sign-in token, stored only as its SHA-256 (tokens are 256-bit random, so no salt is needed).

    It stops working at ``expires_at`` or once revoked; signing in with it opens a :class:`SignInSession`.
    """

    __tablename__ = "credentials"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # annotator | admin
    annotator_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id", ondelete="CASCADE"), default=None
    )
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    __table_args__ = (
        CheckConstraint("role IN ('annotator', 'admin')", name="ck_credential_role"),
        CheckConstraint("role = 'admin' OR annotator_id IS NOT NULL", name="ck_credential_owner"),
    )

    annotator: Mapped[Annotator | None] = relationship()


class SignInSession(Base):
    """A browser's signed-in session: what the cookie holds instead of the token itself, so that signing
    out (``revoked_at``) ends it on the server. Valid while its credential is."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    credential: Mapped[Credential] = relationship()


class Assignment(Base):
    """One group handed to one annotator. ``kind='repeat'`` is the attention check that re-shows a group."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_public_id("t"))
    group_id: Mapped[int] = mapped_column(ForeignKey("candidate_groups.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="regular")
    shuffle_seed: Mapped[int] = mapped_column(BigInteger)  # up to 2**32 - 1 (service.shuffle_seed)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    __table_args__ = (
        UniqueConstraint("group_id", "annotator_id", "kind", name="uq_assignment_once"),
        CheckConstraint("kind IN ('regular', 'repeat')", name="ck_assignment_kind"),
    )

    group: Mapped[CandidateGroup] = relationship()
    annotator: Mapped[Annotator] = relationship()


class MediaFetch(Base):
    """The first (and latest) time a page's video was fetched: the server's own record of what was loaded
    before a page was submitted, and when (``service.submit`` checks it)."""

    __tablename__ = "media_fetches"
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    first_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("assignment_id", "candidate_id", name="uq_media_fetch_once"),)


class Submission(Base):
    """One submitted page of ratings, keyed by the client-generated id that makes retries idempotent."""

    __tablename__ = "submissions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), unique=True, index=True
    )
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    time_spent_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
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
    watched_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("assignment_id", "candidate_id", name="uq_rating_once"),
        *(
            CheckConstraint(f"{k} BETWEEN {MIN_RATING} AND {MAX_RATING}", name=f"ck_rating_{k}")
            for k in CRITERIA
        ),
    )

    candidate: Mapped[Candidate] = relationship()


def check_length(value: str | None, column: Any, what: str) -> str | None:
    """``value`` if it fits ``column`` (a String(n) column attribute); a ValueError naming it otherwise.

    SQLite stores longer text silently while PostgreSQL refuses it mid-transaction, so checking first
    gives the same clear error on every database.
    """
    limit = getattr(column.property.columns[0].type, "length", None)
    if value is not None and limit is not None and len(value) > limit:
        raise ValueError(f"{what} {value[:40]!r}... is {len(value)} characters long; at most {limit} fit")
    return value


def database_url(text: str | os.PathLike) -> str:
    """Turn a SQLAlchemy URL or a plain file path into a URL (a path becomes an absolute SQLite URL)."""
    text = os.fspath(text)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_path(url: str | URL) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def session_sqlite_path(session: Session) -> Path | None:
    """The SQLite file a session's database lives in (None for other databases)."""
    bind = session.get_bind()
    return _sqlite_path(bind.engine.url)


def media_root(stored: str, sqlite_path: Path | None) -> Path:
    """The campaign directory a stored ``Campaign.media_dir`` names: absolute as stored, or relative to the
    SQLite database's folder (to the working directory for other databases)."""
    path = Path(stored)
    if path.is_absolute():
        return path
    base = sqlite_path.parent if sqlite_path is not None else Path.cwd()
    return (base / path).resolve()


def _engine(url: str, sqlite_path: Path | None) -> Engine:
    backend = make_url(url).get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if sqlite_path is None:
            kwargs["poolclass"] = StaticPool
        else:
            kwargs.update(pool_size=16, max_overflow=48)
    else:
        # Enough connections for the server's worker threads; pre-ping survives a restarted database.
        kwargs.update(pool_size=16, max_overflow=32, pool_pre_ping=True)
    try:
        return create_engine(url, **kwargs)
    except ModuleNotFoundError as e:
        raise SchemaError(
            f"{url}: the database driver {e.name!r} is not installed; install the feedback extra "
            "(`pip install 'dyadic-listener[feedback]'`, which brings psycopg for postgresql+psycopg:// URLs)"
        ) from None


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
        oldest: the oldest schema version accepted (:func:`human_feedback.migrations.migrate` opens older
            stores to upgrade them); an older version is an error that says how to upgrade.

    Raises:
        SchemaError: the database is missing, not a feedback store, or of another schema version.
    """

    def __init__(self, url: str | os.PathLike, *, create: bool = False, oldest: int = SCHEMA_VERSION) -> None:
        self.url = database_url(url)
        self.sqlite_path = _sqlite_path(self.url)
        if self.sqlite_path is not None:
            if not create and not self.sqlite_path.exists():
                raise SchemaError(
                    f"no feedback database at {self.sqlite_path}; create one with "
                    "`dyadic feedback init --db PATH` or `dyadic feedback collect --db PATH --campaign NAME ...`"
                )
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = _engine(self.url, self.sqlite_path)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        )
        self._write = sessionmaker(write_engine, expire_on_commit=False)
        try:
            self.version = self._check_schema(create, oldest)
        except BaseException:
            self.engine.dispose()
            raise

    def _check_schema(self, create: bool, oldest: int) -> int:
        from sqlalchemy.exc import OperationalError

        try:
            tables = set(inspect(self.engine).get_table_names())
        except OperationalError as e:
            raise SchemaError(f"cannot open the feedback database {self.url}: {e.orig}") from None
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
            return SCHEMA_VERSION
        with self.read() as session:
            info = session.execute(
                select(SchemaInfo.name, SchemaInfo.version).where(SchemaInfo.id == 1)
            ).first()
        if info is None or info.name != SCHEMA_NAME:
            raise SchemaError(f"{self.url}: schema_info does not name a {SCHEMA_NAME} store")
        if info.version < oldest:
            raise SchemaError(
                f"{self.url}: feedback store schema version {info.version}; this toolkit reads version "
                f"{SCHEMA_VERSION}. Upgrade it in place with `dyadic feedback migrate --db {self.url}` "
                "(back the database up first)."
            )
        if info.version > SCHEMA_VERSION:
            raise SchemaError(
                f"{self.url}: feedback store schema version {info.version}, but this toolkit reads version "
                f"{SCHEMA_VERSION}. Use the toolkit version that wrote it (a newer one)."
            )
        return int(info.version)

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

    def stored_media_dir(self, media_dir: str | os.PathLike) -> str:
        """How a campaign directory is stored: relative to a SQLite database's folder when inside it (so the
        two can move together), else absolute."""
        full = Path(media_dir).expanduser().resolve()
        if self.sqlite_path is not None:
            base = self.sqlite_path.parent.resolve()
            if full.is_relative_to(base):
                return full.relative_to(base).as_posix() or "."
        return str(full)

    def media_root(self, stored: str) -> Path:
        """The campaign directory that a stored ``Campaign.media_dir`` names."""
        return media_root(stored, self.sqlite_path)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
