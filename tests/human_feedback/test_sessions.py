"""Tokens expire; browsers get sessions that signing out ends on the server; revoking a token ends its
sessions too."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from human_feedback.auth import (
    SESSION_PREFIX,
    TokenRefused,
    add_annotator,
    check_token,
    new_admin_token,
    revoke_tokens,
)
from human_feedback.server import COOKIE, create_app
from human_feedback.store import Credential, utcnow


@pytest.fixture
def client(store):
    with TestClient(create_app(store)) as c:
        yield c


def _expire(store, delta):
    with store.write() as session:
        for cred in session.scalars(select(Credential)):
            cred.expires_at = utcnow() + delta


def test_tokens_expire_and_say_so(store, client):
    token = add_annotator(store, "ann", days=1)
    with store.read() as session:
        expires = session.scalar(select(Credential.expires_at))
    assert dt.timedelta(hours=23) < expires - utcnow() <= dt.timedelta(days=1)
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    _expire(store, -dt.timedelta(seconds=1))
    refused = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and "expired on" in refused.json()["detail"]
    assert client.post("/api/session", json={"token": token}).status_code == 401
    with pytest.raises(ValueError, match="lifetime"):
        add_annotator(store, "bob", days=0)
    with pytest.raises(ValueError, match="at most 128"):
        new_admin_token(store, label="x" * 200)


def test_signing_out_ends_the_session_on_the_server(store, client):
    token = add_annotator(store, "ann")
    signed_in = client.post("/api/session", json={"token": token})
    assert signed_in.status_code == 200
    session_token = client.cookies.get(COOKIE)
    assert session_token.startswith(SESSION_PREFIX) and token not in signed_in.headers["set-cookie"]
    assert "max-age=43200" in signed_in.headers["set-cookie"].lower()  # 12 hours
    assert client.get("/api/me").status_code == 200
    out = client.delete("/api/session", headers={"X-Dyadic-Request": "1"})
    assert out.status_code == 200 and out.json()["session_ended"] is True
    # a copy of the cookie taken before signing out no longer works anywhere
    copied = client.get("/api/me", headers={"Authorization": f"Bearer {session_token}"})
    assert copied.status_code == 401 and "session ended" in copied.json()["detail"]
    client.cookies.set(COOKIE, session_token)
    assert client.get("/api/me").status_code == 401
    # the token itself still signs in again
    assert client.post("/api/session", json={"token": token}).status_code == 200
    assert client.get("/api/me").status_code == 200


def test_a_session_never_outlives_its_token_and_revoking_ends_it(store, client):
    token = add_annotator(store, "ann")
    _expire(store, dt.timedelta(hours=1))
    cookie = client.post("/api/session", json={"token": token}).headers["set-cookie"].lower()
    max_age = int(cookie.split("max-age=")[1].split(";")[0])
    assert 3500 < max_age <= 3600
    assert client.get("/api/me").status_code == 200
    assert revoke_tokens(store, annotator="ann") == 1
    assert client.get("/api/me").status_code == 401
    with pytest.raises(TokenRefused, match="revoked"):
        check_token(store, token)


def test_sessions_cannot_open_sessions_and_bearer_sign_out_keeps_the_token(store, client):
    token = add_annotator(store, "ann")
    client.post("/api/session", json={"token": token})
    session_token = client.cookies.get(COOKIE)
    assert client.post("/api/session", json={"token": session_token}).status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    out = client.delete("/api/session", headers=bearer)
    assert out.json()["session_ended"] is False
    assert client.get("/api/me", headers=bearer).status_code == 200
