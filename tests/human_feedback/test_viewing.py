"""The server's own watching rules: a page's videos must have been fetched before it is accepted (and,
when the campaign asks, their duration must have passed); admins see per-annotator watch times."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from human_feedback.analysis import campaign_overview
from human_feedback.auth import add_annotator, new_admin_token
from human_feedback.server import create_app
from human_feedback.store import Campaign, MediaFetch

from .conftest import build_campaign

KEYS = ("empathy", "appropriateness", "engagement", "naturalness")


@pytest.fixture
def setup(store, tmp_path):
    build_campaign(store, "w", tmp_path / "media", groups=2, samples=2, ratings_per_group=1)
    with TestClient(create_app(store)) as client:
        yield store, client, {"Authorization": f"Bearer {add_annotator(store, 'ann')}"}


def _page(client, headers):
    return client.post("/api/campaigns/w/next", headers=headers).json()["assignment"]


def _submit(client, headers, page, sid="page-00000001"):
    body = {
        "submission_id": sid,
        "ratings": [{"item_id": i["item_id"], **dict.fromkeys(KEYS, 3)} for i in page["items"]],
    }
    return client.post(f"/api/assignments/{page['assignment_id']}/submit", json=body, headers=headers)


def test_a_page_is_refused_until_every_video_was_fetched(setup):
    store, client, headers = setup
    page = _page(client, headers)
    refused = _submit(client, headers, page)
    assert refused.status_code == 409 and "3 of the 3 videos" in refused.json()["detail"]
    # an admin opening the videos does not count for the annotator
    admin = {"Authorization": f"Bearer {new_admin_token(store)}"}
    for item in page["items"]:
        assert client.get(item["video_url"], headers=admin).status_code == 200
    for item in page["items"][:2]:
        assert client.get(item["video_url"], headers={**headers, "Range": "bytes=0-99"}).status_code == 206
    refused = _submit(client, headers, page)
    assert refused.status_code == 409 and "1 of the 3 videos" in refused.json()["detail"]
    client.get(page["items"][2]["video_url"], headers=headers)
    assert _submit(client, headers, page).status_code == 200
    with store.read() as session:
        assert len(session.scalars(select(MediaFetch)).all()) == 3  # one record per video, ranges included


def test_the_campaign_can_require_the_clip_duration_to_pass(setup):
    store, client, headers = setup
    with store.write() as session:
        session.scalar(select(Campaign)).config = {"require_watch_time": True}
    page = _page(client, headers)
    assert page["require_watch_time"] is True
    for item in page["items"]:
        client.get(item["video_url"], headers=headers)
    refused = _submit(client, headers, page)
    assert refused.status_code == 409 and "watch them to the end" in refused.json()["detail"]
    # the clip lasts 6 frames / 25 fps = 0.24 s; once that has passed since the first fetch, it is accepted
    with store.write() as session:
        for fetch in session.scalars(select(MediaFetch)):
            fetch.first_at -= dt.timedelta(seconds=0.25)
    assert _submit(client, headers, page).status_code == 200


def test_admins_see_watch_times_per_annotator(setup):
    store, client, headers = setup
    page = _page(client, headers)
    for item in page["items"]:
        client.get(item["video_url"], headers=headers)
    with store.write() as session:
        for fetch in session.scalars(select(MediaFetch)):
            fetch.first_at -= dt.timedelta(seconds=30)
    body = {"submission_id": "page-00000001", "ratings": [
        {"item_id": i["item_id"], **dict.fromkeys(KEYS, 3), "watched_ms": 2000} for i in page["items"]
    ]}  # fmt: skip
    assert (
        client.post(
            f"/api/assignments/{page['assignment_id']}/submit", json=body, headers=headers
        ).status_code
        == 200
    )
    (ann,) = campaign_overview(store, "w")["annotators"]
    assert 30 <= ann["median_view_seconds"] < 40 and ann["median_reported_play_seconds"] == 2.0
