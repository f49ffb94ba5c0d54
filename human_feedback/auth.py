"""Sign-in tokens and sessions: created once, shown once, stored only as SHA-256.

A token (``dyf_...``) is 256 random bits (``secrets.token_urlsafe(32)``), so a plain hash is enough: there
is nothing to brute-force and a leaked database does not leak usable tokens. Tokens expire
(:data:`DEFAULT_TOKEN_DAYS` unless told otherwise) and can be revoked (``dyadic feedback revoke``).

Programs send the token itself (``Authorization: Bearer``). Browsers exchange it for a *session*
(``dys_...``, :data:`SESSION_HOURS`) that the cookie carries; signing out revokes the session on the server,
so a copied cookie stops working too. A session never outlives its token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from human_feedback.store import (
    DEFAULT_TOKEN_DAYS,
    Annotator,
    Credential,
    SignInSession,
    Store,
    check_length,
    utcnow,
)

TOKEN_PREFIX = "dyf_"
SESSION_PREFIX = "dys_"
MAX_TOKEN_DAYS = 3650
SESSION_HOURS = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,127}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def _expiry(days: float) -> dt.datetime:
    if not 0 < days <= MAX_TOKEN_DAYS:
        raise ValueError(
            f"a token's lifetime must be more than 0 and at most {MAX_TOKEN_DAYS} days, found {days}"
        )
    return utcnow() + dt.timedelta(days=days)


class TokenRefused(Exception):
    """A token that signs nobody in; the message says why (unknown, expired, revoked) and what to do."""


@dataclass(frozen=True)
class Principal:
    """Who made a request: an annotator (with their ids) or an admin."""

    role: str
    name: str
    annotator_id: int | None = None
    annotator_public_id: str | None = None
    session_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def check_annotator_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ValueError(
            f"annotator name {name!r} is not allowed; use 1-128 letters, digits, spaces or . _ @ - "
            "(starting with a letter or digit)"
        )
    return name


def _annotator_credential(token: str, annotator_id: int, expires: dt.datetime) -> Credential:
    return Credential(
        token_sha256=hash_token(token), role="annotator", annotator_id=annotator_id, expires_at=expires
    )


def add_annotator(store: Store, name: str, *, kind: str = "human", days: float = DEFAULT_TOKEN_DAYS) -> str:
    """Create an annotator and return their sign-in token (the only time it is shown), valid ``days``.

    Raises:
        ValueError: a bad name or lifetime, or an annotator of that name exists (use
            :func:`new_annotator_token`).
    """
    check_annotator_name(name)
    token, expires = new_token(), _expiry(days)
    with store.write() as session:
        if session.scalar(select(Annotator).where(Annotator.name == name)) is not None:
            raise ValueError(
                f"annotator {name!r} already exists; issue a new token with "
                "`dyadic feedback add-annotator NAME --new-token` or pick another name"
            )
        annotator = Annotator(name=name, kind=kind)
        session.add(annotator)
        session.flush()
        session.add(_annotator_credential(token, annotator.id, expires))
    return token


def new_annotator_token(
    store: Store, name: str, *, revoke_old: bool = True, days: float = DEFAULT_TOKEN_DAYS
) -> str:
    """Issue a fresh token for an existing annotator (by default revoking their previous ones)."""
    token, expires = new_token(), _expiry(days)
    with store.write() as session:
        annotator = session.scalar(select(Annotator).where(Annotator.name == name))
        if annotator is None:
            raise ValueError(f"no annotator {name!r}; create one with `dyadic feedback add-annotator {name}`")
        if revoke_old:
            for cred in session.scalars(select(Credential).where(Credential.annotator_id == annotator.id)):
                cred.revoked_at = cred.revoked_at or utcnow()
        session.add(_annotator_credential(token, annotator.id, expires))
    return token


def new_admin_token(store: Store, *, label: str = "admin", days: float = DEFAULT_TOKEN_DAYS) -> str:
    """Create an admin token (admins see progress and statistics and export; they do not annotate)."""
    check_length(label, Credential.label, "admin token label")
    token, expires = new_token(), _expiry(days)
    with store.write() as session:
        session.add(Credential(token_sha256=hash_token(token), role="admin", label=label, expires_at=expires))
    return token


def revoke_tokens(store: Store, *, annotator: str | None = None, admin: bool = False) -> int:
    """Revoke every token of an annotator, or every admin token; returns how many were revoked."""
    with store.write() as session:
        query = select(Credential).where(Credential.revoked_at.is_(None))
        if admin:
            query = query.where(Credential.role == "admin")
        else:
            found = session.scalar(select(Annotator).where(Annotator.name == annotator))
            if found is None:
                raise ValueError(f"no annotator {annotator!r}")
            query = query.where(Credential.annotator_id == found.id)
        creds = list(session.scalars(query))
        for cred in creds:
            cred.revoked_at = utcnow()
        return len(creds)


def authenticate(store: Store, token: str | None) -> Principal | None:
    """The principal a token or session signs in, or None (missing, unknown, expired, revoked)."""
    try:
        return check_token(store, token)
    except TokenRefused:
        return None


def check_token(store: Store, token: str | None) -> Principal:
    """The principal a token (``dyf_``) or session (``dys_``) signs in.

    Raises:
        TokenRefused: saying whether the token is missing, unknown, expired or revoked, and what to do.
    """
    if not token or len(token) > 256:
        raise TokenRefused("sign in with your annotator token")
    now = utcnow()
    row: tuple[Any, ...] | None
    with store.read() as session:
        if token.startswith(SESSION_PREFIX):
            signed = session.execute(
                select(Credential, Annotator, SignInSession)
                .join(SignInSession, SignInSession.credential_id == Credential.id)
                .outerjoin(Annotator, Credential.annotator_id == Annotator.id)
                .where(SignInSession.token_sha256 == hash_token(token))
            ).first()
            row = None if signed is None else tuple(signed)
        else:
            found = session.execute(
                select(Credential, Annotator)
                .outerjoin(Annotator, Credential.annotator_id == Annotator.id)
                .where(Credential.token_sha256 == hash_token(token))
            ).first()
            row = None if found is None else (*found, None)
    if row is None:
        raise TokenRefused("unknown token; ask the campaign admin for yours")
    cred, annotator, signed_in = row
    if signed_in is not None and (signed_in.revoked_at is not None or signed_in.expires_at <= now):
        raise TokenRefused("your session ended (signed out or expired); sign in again with your token")
    if cred.revoked_at is not None:
        raise TokenRefused("this token was revoked; ask the campaign admin for a new one")
    if cred.expires_at is not None and cred.expires_at <= now:
        raise TokenRefused(
            f"this token expired on {cred.expires_at:%Y-%m-%d %H:%M} UTC; ask the campaign admin for a new one"
        )
    session_id = signed_in.id if signed_in is not None else None
    if cred.role == "admin":
        return Principal(role="admin", name=cred.label or "admin", session_id=session_id)
    if annotator is None or not annotator.active:
        raise TokenRefused("this annotator account is deactivated")
    return Principal(
        role="annotator", name=annotator.name, annotator_id=annotator.id,
        annotator_public_id=annotator.public_id, session_id=session_id,
    )  # fmt: skip


def open_session(store: Store, token: str, *, hours: float = SESSION_HOURS) -> tuple[str, Principal, int]:
    """Sign in with a token: a new session token, who it is, and its lifetime in seconds (ends no later
    than the token). Sessions that ended more than a day ago are deleted on the way.

    Raises:
        TokenRefused: the token does not sign anyone in (sessions cannot open sessions).
    """
    if token.startswith(SESSION_PREFIX):
        raise TokenRefused("sign in with your annotator token (dyf_...), not a session")
    who = check_token(store, token)
    now = utcnow()
    session_token = new_token(SESSION_PREFIX)
    with store.write() as session:
        cred = session.scalar(select(Credential).where(Credential.token_sha256 == hash_token(token)))
        assert cred is not None  # check_token found it
        expires = now + dt.timedelta(hours=hours)
        if cred.expires_at is not None:
            expires = min(expires, cred.expires_at)
        session.add(
            SignInSession(token_sha256=hash_token(session_token), credential_id=cred.id, expires_at=expires)
        )
        session.execute(delete(SignInSession).where(SignInSession.expires_at < now - dt.timedelta(days=1)))
    return session_token, who, max(1, int((expires - now).total_seconds()))


def close_session(store: Store, session_id: int) -> None:
    """Sign out: the session stops working at once, on every server sharing the database."""
    with store.write() as session:
        found = session.get(SignInSession, session_id)
        if found is not None and found.revoked_at is None:
            found.revoked_at = utcnow()
