"""The throwaway PostgreSQL server the tests and the benchmark start: found, started, removed; and a clear
error when PostgreSQL is not installed."""

from __future__ import annotations

import pytest

from human_feedback import pgserver
from human_feedback.pgserver import PostgresUnavailable, TemporaryPostgres
from human_feedback.store import Store


def test_missing_binaries_say_what_to_install(monkeypatch):
    monkeypatch.setenv("DYADIC_PG_BIN", "/nowhere")
    monkeypatch.setattr(pgserver.glob, "glob", lambda _pattern: [])
    monkeypatch.setattr(pgserver.shutil, "which", lambda _name: None)
    with pytest.raises(PostgresUnavailable, match="apt-get install postgresql"):
        TemporaryPostgres()


def test_a_server_starts_serves_a_store_and_leaves_nothing_behind(postgres_server):
    server = TemporaryPostgres().start()
    root = server.root
    assert root is not None and (root / "data" / "postmaster.pid").exists()
    url = server.create_database("probe")
    assert url.startswith("postgresql+psycopg://") and url.endswith("/probe")
    with Store(url, create=True) as store:
        assert store.engine.dialect.name == "postgresql"
    server.stop()
    assert not root.exists() and server.root is None
    server.stop()  # twice is fine
