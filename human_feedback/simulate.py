"""Simulated annotators that rate through the annotation API, exactly like people.

Each simulated person gets a real annotator account and token, asks the server for their next page over
HTTP (a running server given by URL, or the app in-process through an ASGI test client: the same routes,
validation, assignment and storage code), "watches" each item, and submits the page with a fresh
submission id, retrying on connection errors. Watching reads the motion the item's video was rendered
from (:func:`human_feedback.service.watch_item`, with the same ownership check as the video endpoint); the
rating comes from the synthetic benchmark's :class:`~dyadic_env.synthetic.SimulatedAnnotator` (the hidden
oracle plus per-person bias and noise, some careless).

Items that have a video are also fetched from ``/media`` like a browser would, so the server's rule that
a page's videos must be loaded before it is submitted (:mod:`human_feedback.viewing`) holds for simulated
people too; on a campaign that also requires the clip's duration to pass, they wait it out (real time).
Campaigns without rendered videos (the usual case for simulation) cost nothing extra.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from human_feedback import service
from human_feedback.auth import add_annotator, new_annotator_token
from human_feedback.store import Annotator, CandidateGroup, ClipRecord, Store


@dataclass
class SimulationReport:
    campaign: str
    annotators: list[str]
    careless: dict[str, str]
    pages: int = 0
    ratings: int = 0
    retries: int = 0
    seconds: float = 0.0
    per_annotator: dict[str, int] = field(default_factory=dict)

    @property
    def ratings_per_second(self) -> float:
        return self.ratings / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class _Person:
    name: str
    token: str
    annotator_id: int
    model: Any
    rng: np.random.Generator


def _accounts(store: Store, campaign: str, models: list[Any], seed: int) -> list[_Person]:
    people = []
    for i, model in enumerate(models):
        name = f"sim-{campaign}-s{seed}-{i:03d}"
        try:
            token = add_annotator(store, name, kind="simulated")
        except ValueError:
            token = new_annotator_token(store, name)
        with store.read() as session:
            annotator_id = session.scalar(select(Annotator.id).where(Annotator.name == name))
        assert annotator_id is not None
        people.append(_Person(name, token, annotator_id, model, np.random.default_rng([seed, i, 11])))
    return people


def _campaign_setup(store: Store, campaign: str) -> tuple[Any, float]:
    from dyadic_env.tokenizer import ActionTokenizer

    with store.read() as session:
        record = store.campaign(session, campaign)
        if record.tokenizer is None:
            raise ValueError(f"campaign {campaign!r} has no action tokenizer stored; it cannot be simulated")
        fps = session.scalar(
            select(ClipRecord.fps)
            .join(CandidateGroup, CandidateGroup.clip_pk == ClipRecord.id)
            .where(CandidateGroup.campaign_id == record.id)
        )
        return ActionTokenizer.from_dict(record.tokenizer, source=f"campaign {campaign}"), float(fps or 25.0)


class _Rater:
    """Rates an item; oracle scores are computed once per candidate, shared by everyone who sees it."""

    def __init__(self, store: Store, tokenizer: Any) -> None:
        self.store, self.tokenizer = store, tokenizer
        self._scores: dict[int, dict[str, float]] = {}

    def rate(self, person: _Person, assignment_id: str, item: str) -> tuple[dict[str, int], float]:
        seen = service.watch_item(self.store, person.annotator_id, assignment_id, item)
        listener = self.tokenizer.decode(seen.listener_tokens)
        duration = len(listener) / seen.fps
        if person.model.careless:
            return person.model.rate(seen.speaker_motion, listener, seen.speaker_words, person.rng), duration
        if seen.key not in self._scores:
            self._scores[seen.key] = person.model.oracle.score(
                seen.speaker_motion, listener, seen.speaker_words
            )
        return person.model.from_scores(self._scores[seen.key], person.rng), duration


def simulate(
    store: Store,
    campaign: str,
    annotators: int,
    *,
    seed: int = 0,
    careless_fraction: float = 0.1,
    url: str | None = None,
    max_pages: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationReport:
    """Let ``annotators`` simulated people rate ``campaign`` until nothing is left (or ``max_pages`` each).

    Args:
        store: the campaign's store (accounts are created in it; watching reads from it).
        campaign: the campaign to rate.
        annotators: how many simulated people.
        seed: seeds the people (bias, noise, who is careless) and their ratings.
        careless_fraction: share of careless people (random or constant raters).
        url: base URL of a running server (``http://127.0.0.1:8000``); default: the app in-process.
        max_pages: stop each person after this many pages.
        progress: called with a line of text now and then.
    """
    from dyadic_env.synthetic import Oracle, make_annotators

    say = progress or (lambda _msg: None)
    tokenizer, fps = _campaign_setup(store, campaign)
    models = make_annotators(
        annotators, seed=seed, careless_fraction=careless_fraction, oracle=Oracle(fps=fps)
    )
    people = _accounts(store, campaign, models, seed)
    report = SimulationReport(
        campaign=campaign, annotators=[p.name for p in people],
        careless={p.name: p.model.careless for p in people if p.model.careless},
    )  # fmt: skip
    rater = _Rater(store, tokenizer)
    client, close = _client(store, url)
    started = time.perf_counter()
    try:
        active = list(people)
        while active:
            for person in list(active):
                done = report.per_annotator.get(person.name, 0)
                if (max_pages is not None and done >= max_pages) or not _rate_one_page(
                    client, rater, person, campaign, report
                ):
                    active.remove(person)
            if report.pages and report.pages % 25 == 0:
                say(f"{report.pages} pages, {report.ratings} ratings")
    finally:
        close()
    report.seconds = time.perf_counter() - started
    return report


def _client(store: Store, url: str | None) -> tuple[Any, Callable[[], None]]:
    if url is None:
        from fastapi.testclient import TestClient

        from human_feedback.server import create_app

        client = TestClient(create_app(store))
        return client, client.close
    import httpx

    remote = httpx.Client(base_url=url.rstrip("/"), timeout=30.0)
    return remote, remote.close


def _rate_one_page(
    client: Any, rater: _Rater, person: _Person, campaign: str, report: SimulationReport
) -> bool:
    headers = {"Authorization": f"Bearer {person.token}"}
    reply = _call(client, "post", f"/api/campaigns/{campaign}/next", headers, None, report)
    page = reply["assignment"]
    if page is None:
        return False
    fetched_at = _fetch_videos(client, page, headers, report)
    ratings = []
    for item in page["items"]:
        values, seconds = rater.rate(person, page["assignment_id"], item["item_id"])
        ratings.append({"item_id": item["item_id"], **values, "watched_ms": int(seconds * 1000)})
    if page.get("require_watch_time") and fetched_at is not None:
        time.sleep(max(0.0, fetched_at + page["clip_duration_s"] - time.monotonic()))
    body = {
        "submission_id": uuid.uuid4().hex, "ratings": ratings,
        "time_spent_ms": int(1000 * page["clip_duration_s"] * len(ratings) * (1.2 + person.rng.random())),
    }  # fmt: skip
    ack = _call(client, "post", f"/api/assignments/{page['assignment_id']}/submit", headers, body, report)
    report.pages += 1
    report.ratings += int(ack["ratings"])
    report.per_annotator[person.name] = report.per_annotator.get(person.name, 0) + 1
    return True


def _fetch_videos(client: Any, page: dict, headers: dict, report: SimulationReport) -> float | None:
    """Load every video of the page; when the first load started (``time.monotonic``), or None."""
    started = None
    for item in page["items"]:
        if item.get("video_url"):
            started = started if started is not None else time.monotonic()
            _request(client, "get", item["video_url"], headers, None, report)
    return started


def _call(client: Any, method: str, path: str, headers: dict, body: Any, report: SimulationReport) -> dict:
    """One API call; connection errors and 5xx are retried (the same body, so submits stay idempotent)."""
    return _request(client, method, path, headers, body, report).json()


def _request(client: Any, method: str, path: str, headers: dict, body: Any, report: SimulationReport) -> Any:
    import httpx

    for attempt in range(8):
        try:
            response = client.request(method, path, headers=headers, json=body)
        except httpx.TransportError:
            report.retries += 1
            time.sleep(min(2.0, 0.05 * 2**attempt))
            continue
        if response.status_code >= 500:
            report.retries += 1
            time.sleep(min(2.0, 0.05 * 2**attempt))
            continue
        if response.status_code >= 400:
            raise RuntimeError(f"{method.upper()} {path}: {response.status_code} {response.text[:300]}")
        return response
    raise RuntimeError(f"{method.upper()} {path}: the server did not answer after 8 tries")
