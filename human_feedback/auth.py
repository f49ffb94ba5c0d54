"""Sign-in tokens: created once, shown once, stored only as SHA-256.

A token is 256 random bits (``secrets.token_urlsafe(32)``), so a plain hash is enough: there is nothing
to brute-force and a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from human_feedback.store import Annotator, Credential, Store, utcnow

TOKEN_PREFIX = "dyf_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,127}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who made a request: an annotator (with their ids) or an admin."""

    role: str
    name: str
    annotator_id: int | None = None
    annotator_public_id: str | None = None

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


def add_annotator(store: Store, name: str, *, kind: str = "human") -> str:
    """Create an annotator and return their sign-in token (the only time it is shown).

    Raises:
        ValueError: a bad name, or an annotator of that name exists (use :func:`new_annotator_token`).
    """
    check_annotator_name(name)
    token = new_token()
    with store.write() as session:
        if session.scalar(select(Annotator).where(Annotator.name == name)) is not None:
            raise ValueError(
                f"annotator {name!r} already exists; issue a new token with "
                "`dyadic feedback add-annotator NAME --new-token` or pick another name"
            )
        annotator = Annotator(name=name, kind=kind)
        session.add(annotator)
        session.flush()
        session.add(Credential(token_sha256=hash_token(token), role="annotator", annotator_id=annotator.id))
    return token


def new_annotator_token(store: Store, name: str, *, revoke_old: bool = True) -> str:
    """Issue a fresh token for an existing annotator (by default revoking their previous ones)."""
    token = new_token()
    with store.write() as session:
        annotator = session.scalar(select(Annotator).where(Annotator.name == name))
        if annotator is None:
            raise ValueError(f"no annotator {name!r}; create one with `dyadic feedback add-annotator {name}`")
        if revoke_old:
            for cred in session.scalars(select(Credential).where(Credential.annotator_id == annotator.id)):
                cred.revoked_at = cred.revoked_at or utcnow()
        session.add(Credential(token_sha256=hash_token(token), role="annotator", annotator_id=annotator.id))
    return token


def new_admin_token(store: Store, *, label: str = "admin") -> str:
    """Create an admin token (admins see progress and statistics and export; they do not annotate)."""
    token = new_token()
    with store.write() as session:
        session.add(Credential(token_sha256=hash_token(token), role="admin", label=label))
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
    """The principal a token signs in, or None for a missing, unknown, revoked or deactivated token."""
    if not token or len(token) > 256:
        return None
    with store.read() as session:
        row = session.execute(
            select(Credential, Annotator)
            .outerjoin(Annotator, Credential.annotator_id == Annotator.id)
            .where(Credential.token_sha256 == hash_token(token), Credential.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    cred, annotator = row
    if cred.role == "admin":
        return Principal(role="admin", name=cred.label or "admin")
    if annotator is None or not annotator.active:
        return None
    return Principal(
        role="annotator",
        name=annotator.name,
        annotator_id=annotator.id,
        annotator_public_id=annotator.public_id,
    )
