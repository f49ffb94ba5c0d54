"""Durability: annotators keep submitting over HTTP while the server is SIGKILLed and restarted; every
acknowledged rating is in the database exactly once, and nothing unacknowledged is left behind. On SQLite
and on PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from human_feedback.auth import add_annotator
from human_feedback.criteria import CRITERION_KEYS
from human_feedback.process import ServerProcess
from human_feedback.store import Rating, Store, Submission

from .conftest import build_campaign

pytestmark = pytest.mark.slow


class Annotator(threading.Thread):
    """Rates until nothing is left; retries every call (same body) until the server answers."""

    def __init__(self, index, token, server, acks, stop):
        super().__init__(daemon=True)
        self.index, self.token, self.server, self.acks, self.stop = index, token, server, acks, stop
        self.retries = 0
        self.error: BaseException | None = None

    def call(self, client, method, path, body=None):
        while not self.stop.is_set():
            try:
                response = client.request(
                    method,
                    self.server.url + path,
                    json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                )
            except httpx.TransportError:
                self.retries += 1
                time.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            return response.json()
        raise TimeoutError("stopped")

    def run(self):
        try:
            with httpx.Client(timeout=10.0) as client:
                while True:
                    page = self.call(client, "POST", "/api/campaigns/durable/next")["assignment"]
                    if page is None:
                        return
                    ratings = [
                        {
                            "item_id": item["item_id"],
                            **{k: 1 + (self.index + i + j) % 5 for j, k in enumerate(CRITERION_KEYS)},
                        }
                        for i, item in enumerate(page["items"])
                    ]
                    body = {"submission_id": uuid.uuid4().hex, "ratings": ratings}
                    ack = self.call(client, "POST", f"/api/assignments/{page['assignment_id']}/submit", body)
                    assert ack["submission_id"] == body["submission_id"] and ack["ratings"] == len(ratings)
                    self.acks.append((body, ack))
        except BaseException as e:  # reported by the test
            self.error = e


def test_acknowledged_ratings_survive_sigkill_exactly_once(db_url, tmp_path):
    store = Store(db_url, create=True)
    # Enough work that the 12 annotators are still rating when the fourth kill comes, on an idle machine too.
    groups, per_group = 150, 2
    build_campaign(
        store, "durable", tmp_path / "m", groups=groups, samples=2, videos=False, ratings_per_group=per_group
    )
    tokens = [add_annotator(store, f"p{i}") for i in range(12)]
    acks: list = []
    stop = threading.Event()
    server = ServerProcess(db_url, log=tmp_path / "server.log").start()
    people = [Annotator(i, t, server, acks, stop) for i, t in enumerate(tokens)]
    try:
        for p in people:
            p.start()
        kills = 0
        while any(p.is_alive() for p in people) and kills < 4:
            time.sleep(0.4)
            server.kill()
            kills += 1
            time.sleep(0.2)
            server.start()
        deadline = time.monotonic() + 120
        for p in people:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        stop.set()
        server.stop()
    assert not [p.error for p in people if p.error], [p.error for p in people if p.error]
    assert kills == 4 and sum(p.retries for p in people) >= kills  # the kills did interrupt requests
    print(
        f"retries {sum(p.retries for p in people)}, replayed acknowledgements {sum(a['duplicate'] for _, a in acks)}"
    )

    with store.read() as session:
        submissions = {s.id: s for s in session.scalars(select(Submission))}
        ratings = session.scalars(select(Rating)).all()
    acknowledged = {body["submission_id"]: body for body, _ in acks}
    assert len(acknowledged) == len(acks) == groups * per_group  # each page acknowledged once
    assert set(submissions) == set(acknowledged)  # nothing unacknowledged left behind, nothing lost
    per_submission = Counter(r.submission_id for r in ratings)
    assert all(per_submission[sid] == len(body["ratings"]) for sid, body in acknowledged.items())
    assert len(ratings) == sum(len(b["ratings"]) for b in acknowledged.values())
    assert len({(r.assignment_id, r.candidate_id) for r in ratings}) == len(ratings)
    # the stored values are the acknowledged ones
    stored = {(r.submission_id, r.candidate_id): [getattr(r, k) for k in CRITERION_KEYS] for r in ratings}
    assert sorted(tuple(v) for v in stored.values()) == sorted(
        tuple(r[k] for k in CRITERION_KEYS) for b in acknowledged.values() for r in b["ratings"]
    )
    store.close()
