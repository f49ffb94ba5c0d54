"""The store: schema version checks, SQLite settings, constraints that keep ratings valid."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from human_feedback.store import (
    SCHEMA_VERSION,
    Annotator,
    Assignment,
    Candidate,
    CandidateGroup,
    Rating,
    SchemaError,
    Store,
    Submission,
)


def test_sqlite_runs_with_wal_foreign_keys_and_full_sync(sqlite_store):
    store = sqlite_store
    with store.read() as session:
        conn = session.connection()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_missing_database_is_an_error_unless_created(tmp_path):
    with pytest.raises(SchemaError, match="no feedback database"):
        Store(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_schema_version_mismatch_is_refused_with_advice(sqlite_store, tmp_path):
    store = sqlite_store
    store.close()
    path = store.sqlite_path
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_info SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(
        SchemaError, match=rf"schema version {SCHEMA_VERSION + 1}.*reads version {SCHEMA_VERSION}"
    ):
        Store(path)


def test_a_foreign_database_is_not_taken_for_a_store(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(SchemaError, match="not a dyadic feedback store"):
        Store(path, create=True)


def test_reopening_keeps_data(store, campaign):
    again = Store(store.url)
    with again.read() as session:
        assert again.campaign(session, campaign).ratings_per_group == 2
        assert len(session.scalars(select(CandidateGroup)).all()) == 3
    again.close()


def test_unknown_campaign_names_the_existing_ones(store, campaign):
    with store.read() as session, pytest.raises(LookupError, match="existing campaigns: pilot"):
        store.campaign(session, "nope")


def test_foreign_keys_are_enforced(store, campaign):
    with pytest.raises(IntegrityError), store.write() as session:
        session.add(
            Candidate(group_id=9999, source="policy", policy_name="x", num_frames=1, tokens=b"\0" * 56)
        )


def test_ratings_outside_1_to_5_are_refused_by_the_database(store, campaign):
    with store.write() as session:
        annotator = Annotator(name="dora")
        session.add(annotator)
        session.flush()
        group = session.scalars(select(CandidateGroup)).first()
        assignment = Assignment(group_id=group.id, annotator_id=annotator.id, shuffle_seed=1)
        session.add(assignment)
        session.flush()
        session.add(
            Submission(
                id="s" * 10, assignment_id=assignment.id, annotator_id=annotator.id, payload_sha256="x"
            )
        )
        session.flush()
        candidate_id = group.candidates[0].id
        ids = (assignment.id, annotator.id)
    with pytest.raises(IntegrityError), store.write() as session:
        session.add(
            Rating(
                submission_id="s" * 10,
                assignment_id=ids[0],
                candidate_id=candidate_id,
                annotator_id=ids[1],
                empathy=6,
                appropriateness=3,
                engagement=3,
                naturalness=3,
            )
        )


def test_tokens_round_trip_through_the_blob(store, campaign):
    with store.read() as session:
        candidate = session.scalars(select(Candidate)).first()
        tokens = candidate.token_array()
    assert tokens.shape == (6, 56) and tokens.dtype == np.uint8


def test_in_memory_url_works(tmp_path):
    memory = Store("sqlite://", create=True)
    with memory.write() as session:
        session.add(Annotator(name="eve"))
    with memory.read() as session:
        assert session.scalar(select(Annotator.name)) == "eve"
