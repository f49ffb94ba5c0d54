"""Assignment, blinding, attention-check repeats and idempotent submission, at the service level."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from sqlalchemy import select

from human_feedback import service
from human_feedback.auth import add_annotator, authenticate
from human_feedback.store import Assignment, Candidate, Rating, Store

from .conftest import build_campaign


def _annotators(store, names):
    return {n: authenticate(store, add_annotator(store, n)).annotator_id for n in names}


def _rate_all(page, value=3):
    return [
        {
            "item_id": i.item_id,
            **dict.fromkeys(("empathy", "appropriateness", "engagement", "naturalness"), value),
        }
        for i in page.items
    ]


def _finish(store, annotator_id, page, value=3):
    return service.submit(
        store,
        annotator_id,
        page.assignment_id,
        submission_id=f"sub-{page.assignment_id}",
        ratings=_rate_all(page, value),
    )


def test_each_group_goes_to_r_distinct_annotators(store, campaign):
    ids = _annotators(store, ["a", "b", "c", "d"])
    seen: dict[str, list[str]] = {}
    for _ in range(5):
        for name, aid in ids.items():
            page = service.next_assignment(store, aid, campaign)
            if page is not None:
                _finish(store, aid, page)
                seen.setdefault(name, []).append(page.assignment_id)
    with store.read() as session:
        rows = session.execute(
            select(Assignment.group_id, Assignment.annotator_id, Assignment.completed_at)
        ).all()
    per_group = Counter(g for g, _, _ in rows)
    assert sorted(per_group.values()) == [2, 2, 2]  # R = 2 for each of the 3 groups
    assert len(set((g, a) for g, a, _ in rows)) == len(rows)  # never twice to the same annotator
    assert all(done is not None for _, _, done in rows)
    assert all(service.next_assignment(store, aid, campaign) is None for aid in ids.values())


def test_an_unfinished_page_comes_back_until_submitted(store, campaign):
    aid = _annotators(store, ["a"])["a"]
    first = service.next_assignment(store, aid, campaign)
    again = service.next_assignment(store, aid, campaign)
    assert again.assignment_id == first.assignment_id
    assert [i.item_id for i in again.items] == [i.item_id for i in first.items]
    _finish(store, aid, first)
    assert service.next_assignment(store, aid, campaign).assignment_id != first.assignment_id


def test_concurrent_requests_from_separate_connections_never_overfill_a_group(store, campaign):
    ids = _annotators(store, [f"p{i}" for i in range(8)])
    stores = [Store(store.url) for _ in ids]  # separate engines: only SQLite's locking serializes them
    barrier = threading.Barrier(len(ids))
    results: dict[str, object] = {}

    def ask(name, aid, own):
        barrier.wait()
        results[name] = service.next_assignment(own, aid, campaign)

    threads = [threading.Thread(target=ask, args=(n, a, s)) for (n, a), s in zip(ids.items(), stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    with store.read() as session:
        per_group = Counter(session.scalars(select(Assignment.group_id)))
    assert sorted(per_group.values()) == [2, 2, 2]
    assert sum(page is None for page in results.values()) == 2


def test_abandoned_pages_are_handed_out_again_after_the_lease(store, tmp_path):
    build_campaign(store, "leased", tmp_path / "m", videos=False, ratings_per_group=1)
    ids = _annotators(store, ["slow", "fast"])
    first = service.next_assignment(store, ids["slow"], "leased")
    other = service.next_assignment(store, ids["fast"], "leased")
    with store.read() as session:
        groups = {a.public_id: a.group_id for a in session.scalars(select(Assignment))}
    assert groups[first.assignment_id] != groups[other.assignment_id]
    with store.write() as session:
        store.campaign(session, "leased").config = {"lease_minutes": 0}
    _finish(store, ids["fast"], other)
    retaken = service.next_assignment(store, ids["fast"], "leased")
    with store.read() as session:
        retaken_group = session.scalar(
            select(Assignment.group_id).where(Assignment.public_id == retaken.assignment_id)
        )
    assert retaken_group == groups[first.assignment_id]


def test_a_rated_group_is_repeated_as_an_attention_check(store, tmp_path):
    build_campaign(store, "rep", tmp_path / "m", groups=5, videos=False, ratings_per_group=1, repeat_every=2)
    aid = _annotators(store, ["a"])["a"]
    pages = []
    for _ in range(6):
        page = service.next_assignment(store, aid, "rep")
        if page is None:
            break
        pages.append(page)
        _finish(store, aid, page)
    with store.read() as session:
        kinds = [(a.kind, a.group_id) for a in session.scalars(select(Assignment).order_by(Assignment.id))]
    assert [k for k, _ in kinds] == ["regular", "regular", "repeat", "regular", "regular", "repeat"]
    regular_groups = [g for k, g in kinds if k == "regular"]
    assert kinds[2][1] == regular_groups[0]  # not the page just rated
    assert kinds[5][1] in regular_groups[:3]
    # the repeat looks like a new page: fresh item ids
    assert not {i.item_id for i in pages[2].items} & {i.item_id for i in pages[0].items}


def test_pages_are_blinded(store, campaign):
    ids = _annotators(store, ["a", "b"])
    page_a = service.next_assignment(store, ids["a"], campaign)
    page_b = service.next_assignment(store, ids["b"], campaign)
    with store.read() as session:
        candidates = session.scalars(select(Candidate)).all()
        secrets = {c.public_id for c in candidates} | {c.policy_name for c in candidates} | {"ground_truth"}
    text = json.dumps(page_a.__dict__, default=lambda o: o.__dict__)
    assert not any(s in text for s in secrets)
    assert not {i.item_id for i in page_a.items} & {i.item_id for i in page_b.items}
    assert [i.label for i in page_a.items] == ["A", "B", "C"]


def test_shuffles_are_seeded_per_annotator_and_vary(store, tmp_path):
    build_campaign(store, "shuffle", tmp_path / "m", groups=12, videos=False, ratings_per_group=1, samples=3)
    aid = _annotators(store, ["a"])["a"]
    orders = []
    with store.read() as session:
        assignments_before = session.scalars(select(Assignment)).all()
    assert not assignments_before
    for _ in range(12):
        page = service.next_assignment(store, aid, "shuffle")
        with store.read() as session:
            assignment = session.scalar(select(Assignment).where(Assignment.public_id == page.assignment_id))
            shown = service.shown_order(assignment, list(assignment.group.candidates))
            orders.append(tuple(c.source for c in shown))
            assert assignment.shuffle_seed == service.shuffle_seed(0, aid, assignment.group_id, "regular")
        _finish(store, aid, page)
    # the ground truth (stored first) is not always shown first
    assert len({o.index("ground_truth") for o in orders}) > 1


def test_submit_is_idempotent_and_validated(store, campaign):
    aid = _annotators(store, ["a"])["a"]
    page = service.next_assignment(store, aid, campaign)
    ratings = _rate_all(page, 4)
    first = service.submit(store, aid, page.assignment_id, submission_id="retry-0001", ratings=ratings)
    again = service.submit(
        store, aid, page.assignment_id, submission_id="retry-0001", ratings=list(reversed(ratings))
    )
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.received_at == first.received_at and again.ratings == first.ratings == 3
    with store.read() as session:
        assert len(session.scalars(select(Rating)).all()) == 3
    with pytest.raises(service.Conflict, match="already used for different ratings"):
        service.submit(store, aid, page.assignment_id, submission_id="retry-0001", ratings=_rate_all(page, 2))
    with pytest.raises(service.Conflict, match="already submitted"):
        service.submit(store, aid, page.assignment_id, submission_id="retry-0002", ratings=ratings)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r[:-1], "rate every video"),
        (lambda r: [*r, r[0]], "rated twice"),
        (lambda r: [{**r[0], "item_id": "i000"}, *r[1:]], "is not on page"),
        (lambda r: [{**r[0], "empathy": 0}, *r[1:]], "integer 1-5"),
        (lambda r: [{**r[0], "naturalness": True}, *r[1:]], "integer 1-5"),
    ],
)
def test_bad_submissions_are_refused_and_store_nothing(store, campaign, mutate, message):
    aid = _annotators(store, ["a"])["a"]
    page = service.next_assignment(store, aid, campaign)
    with pytest.raises(service.Invalid, match=message):
        service.submit(
            store, aid, page.assignment_id, submission_id="bad-00001", ratings=mutate(_rate_all(page))
        )
    with store.read() as session:
        assert session.scalars(select(Rating)).all() == []


def test_someone_elses_page_reads_as_missing(store, campaign):
    ids = _annotators(store, ["a", "b"])
    page = service.next_assignment(store, ids["a"], campaign)
    with pytest.raises(service.NotFound):
        service.get_assignment(store, ids["b"], page.assignment_id)
    with pytest.raises(service.NotFound):
        service.submit(
            store, ids["b"], page.assignment_id, submission_id="steal-001", ratings=_rate_all(page)
        )
    with pytest.raises(service.NotFound):
        service.watch_item(store, ids["b"], page.assignment_id, page.items[0].item_id)
