"""The annotation API's security promises: tokens everywhere, own data only, admin-only views, clear 4xx,
bounded bodies, and videos that cannot leave the campaign directory."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from human_feedback.auth import revoke_tokens
from human_feedback.server import create_app
from human_feedback.store import Candidate

from .conftest import build_campaign, watch_all

PUBLIC = {"/signin", "/healthz", "/static", "/favicon.ico"}


@pytest.fixture
def app_campaign(store, tmp_path):
    build_campaign(store, "pilot", tmp_path / "media", videos=True)
    return "pilot"


@pytest.fixture
def client(store, app_campaign):
    with TestClient(create_app(store)) as c:
        yield c


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def next_page(client, token, campaign="pilot"):
    response = client.post(f"/api/campaigns/{campaign}/next", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["assignment"]


def ratings(page, value=3):
    keys = ("empathy", "appropriateness", "engagement", "naturalness")
    return [{"item_id": i["item_id"], **dict.fromkeys(keys, value)} for i in page["items"]]


def test_no_route_answers_without_a_valid_token(client):
    app = client.app
    routes = [
        r for r in app.routes if hasattr(r, "methods") and not any(r.path.startswith(p) for p in PUBLIC)
    ]
    assert len(routes) >= 12
    for route in routes:
        path = route.path.replace("{", "").replace("}", "")
        for method in route.methods - {"HEAD"}:
            if (method, path) == ("POST", "/api/session"):
                continue  # signing in is the one open door
            for headers in ({}, bearer("dyf_not-a-real-token-at-all")):
                response = client.request(method, path, headers=headers, follow_redirects=False)
                if path in ("/", "/annotate", "/admin"):
                    assert response.status_code == 303 and response.headers["location"] == "/signin", path
                else:
                    assert response.status_code == 401, (method, path, response.status_code)
                    assert "token" in response.json()["detail"]


def test_revoked_tokens_stop_working(client, store, tokens):
    assert client.get("/api/me", headers=bearer(tokens["alice"])).status_code == 200
    revoke_tokens(store, annotator="alice")
    assert client.get("/api/me", headers=bearer(tokens["alice"])).status_code == 401


def test_sign_in_sets_an_httponly_strict_cookie_and_needs_the_csrf_header(client, tokens):
    response = client.post("/api/session", json={"token": tokens["alice"]})
    assert response.status_code == 200 and response.json() == {"role": "annotator", "name": "alice"}
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/api/me").status_code == 200  # the cookie signs in
    refused = client.post("/api/campaigns/pilot/next")
    assert refused.status_code == 403 and "x-dyadic-request" in refused.json()["detail"]
    assert client.post("/api/campaigns/pilot/next", headers={"X-Dyadic-Request": "1"}).status_code == 200
    assert client.post("/api/session", json={"token": "dyf_wrong-token-value"}).status_code == 401


def test_annotators_see_only_their_own_pages_videos_and_ratings(client, tokens):
    page = next_page(client, tokens["alice"])
    aid, item = page["assignment_id"], page["items"][0]
    assert client.get(item["video_url"], headers=bearer(tokens["alice"])).status_code == 200
    assert client.get(f"/api/assignments/{aid}", headers=bearer(tokens["bob"])).status_code == 404
    assert client.get(item["video_url"], headers=bearer(tokens["bob"])).status_code == 404
    body = {"submission_id": "bob-steals-1", "ratings": ratings(page)}
    assert (
        client.post(f"/api/assignments/{aid}/submit", json=body, headers=bearer(tokens["bob"])).status_code
        == 404
    )
    body["submission_id"] = "alice-page-1"
    watch_all(client, page, bearer(tokens["alice"]))
    assert (
        client.post(f"/api/assignments/{aid}/submit", json=body, headers=bearer(tokens["alice"])).status_code
        == 200
    )
    mine = client.get("/api/campaigns/pilot/my-ratings", headers=bearer(tokens["alice"])).json()
    assert [p["assignment_id"] for p in mine] == [aid]
    assert client.get("/api/campaigns/pilot/my-ratings", headers=bearer(tokens["bob"])).json() == []
    # bob gets a different group or the same group with other ids, never alice's page
    assert next_page(client, tokens["bob"])["assignment_id"] != aid


def test_admin_views_and_export_need_the_admin_token(client, tokens):
    admin_paths = [
        "/api/admin/campaigns",
        "/api/admin/campaigns/pilot",
        "/api/admin/campaigns/pilot/mos",
        "/api/admin/campaigns/pilot/ratings.csv",
        "/api/admin/campaigns/pilot/export.zip",
    ]
    for path in admin_paths:
        assert client.get(path, headers=bearer(tokens["alice"])).status_code == 403, path
        assert client.get(path, headers=bearer(tokens["admin"])).status_code == 200, path
    assert client.get("/admin", headers=bearer(tokens["alice"])).status_code == 403
    assert client.get("/api/admin/campaigns/nope", headers=bearer(tokens["admin"])).status_code == 404
    # admins do not annotate
    assert client.post("/api/campaigns/pilot/next", headers=bearer(tokens["admin"])).status_code == 403


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        (lambda b: b["ratings"][0].update(empathy=6), 422, "less than or equal to 5"),
        (lambda b: b["ratings"][0].update(engagement=0), 422, "greater than or equal to 1"),
        (lambda b: b["ratings"][0].update(naturalness="3"), 422, "valid integer"),
        (lambda b: b["ratings"][0].update(naturalness=3.5), 422, "valid integer"),
        (lambda b: b["ratings"][0].update(empathy=True), 422, "valid integer"),
        (lambda b: b["ratings"][0].update(bonus=1), 422, "Extra inputs"),
        (lambda b: b["ratings"][0].update(item_id="i0000000000000"), 422, "is not on page"),
        (lambda b: b["ratings"].pop(), 422, "rate every video"),
        (lambda b: b.update(submission_id="x"), 422, "submission_id"),
        (lambda b: b.update(ratings=[]), 422, "at least 1"),
    ],
)
def test_bad_ratings_get_clear_422s(client, tokens, change, status, needle):
    page = next_page(client, tokens["alice"])
    body = {"submission_id": "page-00000001", "ratings": ratings(page)}
    change(body)
    response = client.post(
        f"/api/assignments/{page['assignment_id']}/submit", json=body, headers=bearer(tokens["alice"])
    )
    assert response.status_code == status
    assert needle in response.json()["detail"]


def test_unknown_ids_get_404(client, tokens):
    headers = bearer(tokens["alice"])
    assert client.get("/api/assignments/t_nothing", headers=headers).status_code == 404
    assert client.post("/api/campaigns/nope/next", headers=headers).status_code == 404
    assert client.get("/media/t_nothing/i123.mp4", headers=headers).status_code == 404
    body = {
        "submission_id": "page-00000001",
        "ratings": [{"item_id": "i1", "empathy": 1, "appropriateness": 1, "engagement": 1, "naturalness": 1}],
    }
    assert client.post("/api/assignments/t_nothing/submit", json=body, headers=headers).status_code == 404


def test_oversized_bodies_are_refused(store, app_campaign, tokens):
    with TestClient(create_app(store, max_body=2048)) as small:
        page = next_page(small, tokens["alice"])
        url = f"/api/assignments/{page['assignment_id']}/submit"
        huge = {"submission_id": "page-00000001", "ratings": ratings(page) * 30}
        response = small.post(url, json=huge, headers=bearer(tokens["alice"]))
        assert response.status_code == 413 and "2048 bytes" in response.json()["detail"]

        def chunks():  # no Content-Length: the limit must hold while streaming too
            for _ in range(10):
                yield b" " * 1000

        streamed = small.post(
            url, content=chunks(), headers={**bearer(tokens["alice"]), "Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        watch_all(small, page, bearer(tokens["alice"]))
        assert (
            small.post(
                url,
                json={"submission_id": "page-00000001", "ratings": ratings(page)},
                headers=bearer(tokens["alice"]),
            ).status_code
            == 200
        )


def _point_video(store, page_item_count, path):
    with store.write() as session:
        for candidate in session.scalars(select(Candidate)):
            candidate.video_path = path


def test_stored_paths_that_climb_out_are_refused(client, store, tokens, tmp_path):
    (tmp_path / "secret.mp4").write_bytes(b"not for annotators")
    page = next_page(client, tokens["alice"])
    for bad in ("../secret.mp4", str(tmp_path / "secret.mp4"), "videos/../../secret.mp4"):
        _point_video(store, 0, bad)
        response = client.get(page["items"][0]["video_url"], headers=bearer(tokens["alice"]))
        assert response.status_code == 403, bad
        assert b"not for annotators" not in response.content


def test_symlinks_out_of_the_campaign_are_refused(client, store, tokens, tmp_path):
    (tmp_path / "secret.mp4").write_bytes(b"not for annotators")
    os.symlink(tmp_path / "secret.mp4", tmp_path / "media" / "link.mp4")
    _point_video(store, 0, "link.mp4")
    page = next_page(client, tokens["alice"])
    response = client.get(page["items"][0]["video_url"], headers=bearer(tokens["alice"]))
    assert response.status_code == 403


def test_videos_outside_the_campaign_cannot_be_stored(store, tmp_path):
    from human_feedback import service
    from human_feedback.media import MediaPathError

    build_campaign(store, "c2", tmp_path / "m2", videos=False, groups=1)
    (tmp_path / "elsewhere.mp4").write_bytes(b"x")
    with store.write() as session:
        campaign = store.campaign(session, "c2")
        group = campaign.groups[0]
        with pytest.raises(MediaPathError, match="outside the campaign directory"):
            service.add_candidate(
                session,
                campaign,
                group,
                source="policy",
                policy_name="p",
                tokens=group.candidates[0].token_array(),
                video_path=tmp_path / "elsewhere.mp4",
            )


def test_videos_support_range_requests_for_seeking(client, tokens):
    page = next_page(client, tokens["alice"])
    response = client.get(
        page["items"][0]["video_url"], headers={**bearer(tokens["alice"]), "Range": "bytes=0-99"}
    )
    assert response.status_code == 206 and len(response.content) == 100
    assert response.headers["content-type"] == "video/mp4"


def test_security_headers_are_set(client, tokens):
    response = client.get("/api/me", headers=bearer(tokens["alice"]))
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert client.get("/signin").headers["x-frame-options"] == "DENY"


def test_static_files_hold_no_pages(client):
    assert client.get("/static/style.css").status_code == 200
    for page in (
        "annotate.html",
        "admin.html",
        "signin.html",
        "../pages/admin.html",
        "..%2Fpages%2Fadmin.html",
    ):
        assert client.get(f"/static/{page}").status_code == 404, page
