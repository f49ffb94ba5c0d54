"""Upgrading a feedback store of an older schema version in place (``dyadic feedback migrate``).

:func:`migrate` opens the store accepting any version it can upgrade (:class:`Store` refuses older ones
otherwise, naming this command) and runs the steps from its version to the current one.

Each step takes the database from version N to N + 1 in one transaction (PostgreSQL and SQLite both run
DDL inside transactions), so a failed upgrade leaves the store as it was. The schema is small and changes
rarely, so steps are plain SQL here rather than an Alembic environment.

Version 2 (this toolkit):
- seeds and millisecond counts become 64-bit (PostgreSQL refused shuffle seeds >= 2**31);
- credentials get ``expires_at`` (tokens that were live get the default lifetime from the upgrade on);
- new tables ``sessions`` (sign-out ends a session on the server) and ``media_fetches`` (which videos a
  page fetched, and when);
- on SQLite, campaign directories are stored relative to the database's folder; one whose old absolute
  path is gone (a renamed folder) is found again beside the database by the end of its old path.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from human_feedback.store import DEFAULT_TOKEN_DAYS, SCHEMA_VERSION, Base, Store, utcnow

log = logging.getLogger("human_feedback.migrations")
# Columns that were 32-bit in version 1 and hold values up to 2**32 - 1 (seeds) or long durations (ms).
WIDENED = (
    ("assignments", "shuffle_seed"),
    ("campaigns", "seed"),
    ("candidates", "seed"),
    ("submissions", "time_spent_ms"),
    ("ratings", "watched_ms"),
)


def migrate(url: str) -> list[str]:
    """Upgrade the store at ``url`` to :data:`SCHEMA_VERSION`; a line per change (none when current).

    Raises:
        SchemaError: not a feedback store, or one newer than this toolkit.
    """
    with Store(url, oldest=min(STEPS)) as store:
        return upgrade(store, store.version)


def upgrade(store: Store, version: int) -> list[str]:
    """Bring ``store`` from ``version`` to :data:`SCHEMA_VERSION`; returns a line per change made."""
    done: list[str] = []
    while version < SCHEMA_VERSION:
        step = STEPS[version]
        with store.engine.begin() as conn:
            done += step(store, conn)
            conn.execute(text("UPDATE schema_info SET version = :v WHERE id = 1"), {"v": version + 1})
        version += 1
        done.append(f"schema version {version}")
    for line in done:
        log.info("migrate %s: %s", store.url, line)
    return done


def _v1_to_v2(store: Store, conn: Connection) -> list[str]:
    from human_feedback.store import MediaFetch, SignInSession

    done = []
    if conn.dialect.name != "sqlite":  # SQLite's INTEGER is already 64-bit
        for table, column in WIDENED:
            conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE BIGINT"))
        done.append("seeds and millisecond counts widened to BIGINT")
    timestamp = "TIMESTAMP WITHOUT TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE credentials ADD COLUMN expires_at {timestamp}"))
    expires = utcnow() + dt.timedelta(days=DEFAULT_TOKEN_DAYS)
    live = conn.execute(
        text("UPDATE credentials SET expires_at = :e WHERE revoked_at IS NULL"), {"e": expires}
    ).rowcount
    done.append(f"{live} live token(s) now expire on {expires:%Y-%m-%d}")
    Base.metadata.create_all(conn, tables=[SignInSession.__table__, MediaFetch.__table__])  # type: ignore[list-item]
    done.append("tables sessions and media_fetches created")
    done += _relative_media_dirs(store, conn)
    return done


def _relative_media_dirs(store: Store, conn: Connection) -> list[str]:
    if store.sqlite_path is None:
        return []
    base = store.sqlite_path.parent.resolve()
    done = []
    for campaign_id, name, stored in conn.execute(text("SELECT id, name, media_dir FROM campaigns")).all():
        found = _find_media_dir(base, Path(stored))
        if found is None:
            done.append(
                f"campaign {name}: media directory {stored} not found; fix with `dyadic feedback relocate`"
            )
            continue
        new = store.stored_media_dir(found)
        if new != stored:
            conn.execute(
                text("UPDATE campaigns SET media_dir = :m WHERE id = :i"), {"m": new, "i": campaign_id}
            )
            done.append(f"campaign {name}: media directory stored as {new}")
    return done


def _find_media_dir(base: Path, old: Path) -> Path | None:
    """The old directory if it exists, else the longest tail of its path that exists below ``base``."""
    if old.is_dir():
        return old
    parts = old.parts[1:] if old.is_absolute() else old.parts
    for start in range(len(parts)):
        candidate = base.joinpath(*parts[start:])
        if candidate.is_dir():
            return candidate
    return None


STEPS: dict[int, Callable[[Store, Connection], list[str]]] = {1: _v1_to_v2}
