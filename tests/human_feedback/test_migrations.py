"""A store written by schema version 1 (the DDL that version created, kept in data/) upgrades in place:
data kept, 64-bit seeds accepted, old tokens given an expiry, sessions and fetch records usable, and on
SQLite a campaign directory that moved with the database found again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from string import Template

import pytest
from sqlalchemy import create_engine, select, text

from experiments.cli import main
from human_feedback.auth import authenticate, hash_token, open_session
from human_feedback.store import (
    SCHEMA_VERSION,
    Assignment,
    Campaign,
    MediaFetch,
    Rating,
    SchemaError,
    Store,
    database_url,
)

DATA = Path(__file__).parent / "data"
# The column types in which version 1's SQL differed between the dialects (data/schema_v1.sql).
V1_TYPES = {
    "sqlite": {"key": "INTEGER", "timestamp": "DATETIME", "bytes": "BLOB"},
    "postgresql": {"key": "SERIAL", "timestamp": "TIMESTAMP WITHOUT TIME ZONE", "bytes": "BYTEA"},
}
OLD_TOKEN = "dyf_an-old-token-from-version-one-000000000000"


def _old_store(url: str, tmp_path: Path) -> str:
    """A version-1 store holding one rated page; its campaign directory was renamed since (as the
    quickstart's temporary folder is), so only the end of its stored path still matches."""
    url = database_url(url)
    engine = create_engine(url)
    ddl = (DATA / "schema_v1.sql").read_text()
    ddl = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    ddl = Template(ddl).substitute(V1_TYPES[engine.dialect.name])
    statements = [s for s in ddl.split(";\n") if s.strip()]
    now = dt.datetime(2026, 1, 1)
    media = tmp_path / "media"
    (media / "videos").mkdir(parents=True)
    (media / "videos" / "v.mp4").write_bytes(b"video")
    rows = [
        "INSERT INTO schema_info (id, name, version, created_at) VALUES (1, 'dyadic-feedback', 1, :now)",
        "INSERT INTO campaigns (id, name, kind, media_dir, ratings_per_group, repeat_every, seed, config, "
        "instructions, created_at) VALUES (1, 'old', 'preference', :gone, 1, 0, 0, '{}', '', :now)",
        "INSERT INTO clips (id, campaign_id, clip_id, fps, num_frames, speaker_motion, speaker_words, meta) "
        "VALUES (1, 1, 'c0', 25.0, 1, :motion, '[]', '{}')",
        "INSERT INTO candidate_groups (id, public_id, campaign_id, clip_pk, position, created_at) "
        "VALUES (1, 'g_old', 1, 1, 0, :now)",
        "INSERT INTO candidates (id, public_id, group_id, source, policy_name, sample_index, num_frames, tokens, "
        "tokens_dtype, video_path, meta, created_at) VALUES (1, 'c_old', 1, 'ground_truth', 'ground_truth', 0, 1, "
        ":tokens, 'uint8', 'videos/v.mp4', '{}', :now)",
        "INSERT INTO annotators (id, public_id, name, kind, active, created_at) VALUES (1, 'a_old', 'ann', 'human', "
        "TRUE, :now)",
        "INSERT INTO credentials (id, token_sha256, role, annotator_id, label, created_at) "
        "VALUES (1, :hash, 'annotator', 1, '', :now)",
        "INSERT INTO assignments (id, public_id, group_id, annotator_id, kind, shuffle_seed, created_at, completed_at) "
        "VALUES (1, 't_old', 1, 1, 'regular', 12345, :now, :now)",
        "INSERT INTO submissions (id, assignment_id, annotator_id, payload_sha256, time_spent_ms, created_at) "
        "VALUES ('s_old_00001', 1, 1, 'x', 1000, :now)",
        "INSERT INTO ratings (submission_id, assignment_id, candidate_id, annotator_id, empathy, appropriateness, "
        "engagement, naturalness, watched_ms, created_at) VALUES ('s_old_00001', 1, 1, 1, 4, 4, 4, 4, 500, :now)",
    ]
    values = {
        "now": now, "gone": str(tmp_path / "gone.partial" / "media"), "motion": bytes(4 * 56),
        "tokens": bytes(56), "hash": hash_token(OLD_TOKEN),
    }  # fmt: skip
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        for row in rows:
            conn.execute(text(row), values)
        if engine.dialect.name == "postgresql":  # rows were inserted with explicit ids: move the sequences on
            for table in ("campaigns", "clips", "candidate_groups", "candidates", "annotators", "credentials",
                          "assignments", "ratings"):  # fmt: skip
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1)"))
    engine.dispose()
    return url


def test_a_version_1_store_is_refused_with_the_command_that_upgrades_it(db_url, tmp_path):
    url = _old_store(db_url, tmp_path)
    with pytest.raises(SchemaError, match=r"schema version 1; .*`dyadic feedback migrate --db"):
        Store(url)


def test_migrate_upgrades_in_place_and_keeps_everything(db_url, tmp_path, capsys):
    url = _old_store(db_url, tmp_path)
    assert main(["feedback", "migrate", "--db", url]) == 0
    out = capsys.readouterr().out
    assert f"schema version {SCHEMA_VERSION}" in out and "1 live token(s) now expire" in out
    store = Store(url)
    who = authenticate(store, OLD_TOKEN)
    assert who is not None and who.name == "ann"  # old tokens keep working, now with an expiry
    open_session(store, OLD_TOKEN)
    with store.write() as session:
        assert [r.empathy for r in session.scalars(select(Rating))] == [4]
        old = session.scalar(select(Assignment))
        assert old.shuffle_seed == 12345
        # what version 1 could not store on PostgreSQL: a seed above 2**31 - 1
        session.add(Assignment(group_id=1, annotator_id=1, kind="repeat", shuffle_seed=2**32 - 1))
        session.add(MediaFetch(assignment_id=old.id, candidate_id=1))
    with store.read() as session:
        assert session.scalar(select(Assignment.shuffle_seed).where(Assignment.kind == "repeat")) == 2**32 - 1
        media_dir = session.scalar(select(Campaign.media_dir))
    if store.sqlite_path is not None:  # the renamed folder is found beside the database and stored relative
        assert media_dir == "media" and store.media_root(media_dir) == (tmp_path / "media").resolve()
    store.close()
    assert main(["feedback", "migrate", "--db", url]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_database_moved_with_its_campaign_keeps_its_videos(tmp_path):
    from human_feedback import service

    old, new = tmp_path / "before", tmp_path / "after"
    store = Store(old / "feedback.db", create=True)
    service.create_campaign(store, "moved", media_dir=old / "campaigns" / "moved")
    with store.read() as session:
        assert session.scalar(select(Campaign.media_dir)) == "campaigns/moved"
    store.close()
    old.rename(new)
    store = Store(new / "feedback.db")
    with store.read() as session:
        assert store.media_root(session.scalar(select(Campaign.media_dir))) == (new / "campaigns" / "moved")
    store.close()


def test_relocate_points_a_campaign_at_its_moved_videos(store, tmp_path, capsys):
    from .conftest import build_campaign

    build_campaign(store, "r", tmp_path / "first", groups=1, samples=1)
    (tmp_path / "first").rename(tmp_path / "second")
    assert (
        main(["feedback", "relocate", "--db", store.url, "--campaign", "r", str(tmp_path / "nowhere")]) == 2
    )
    assert "lacks 2 of campaign r's 2 videos" in capsys.readouterr().err
    assert main(["feedback", "relocate", "--db", store.url, "--campaign", "r", str(tmp_path / "second")]) == 0
    with store.read() as session:
        assert store.media_root(session.scalar(select(Campaign.media_dir))) == (tmp_path / "second").resolve()
