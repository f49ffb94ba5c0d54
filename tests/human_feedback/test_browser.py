"""End to end in headless Chromium against a real server: sign in, play, rate, submit, export."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from human_feedback import service
from human_feedback.auth import add_annotator, new_admin_token
from human_feedback.criteria import CRITERION_KEYS
from human_feedback.export import export_preferences
from human_feedback.process import ServerProcess
from human_feedback.store import Assignment, Rating, Store, Submission

from .chromium import MARKS, chromium
from .conftest import build_campaign

pytestmark = MARKS


@pytest.fixture
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def served(tmp_path):
    store = Store(tmp_path / "feedback.db", create=True)
    build_campaign(store, "e2e", tmp_path / "media", groups=1, samples=2, ratings_per_group=1)
    tokens = {"alice": add_annotator(store, "alice"), "admin": new_admin_token(store)}
    with ServerProcess(tmp_path / "feedback.db", log=tmp_path / "server.log") as server:
        yield store, server, tokens
    store.close()


def _intended(store, assignment_id):
    """What alice will give each item: ground truth 5, first sample 1, second sample 3 (by the DB's truth)."""
    wanted = {}
    with store.read() as session:
        assignment = session.scalar(select(Assignment).where(Assignment.public_id == assignment_id))
        for c in assignment.group.candidates:
            value = 5 if c.source == "ground_truth" else (1 if c.sample_index == 0 else 3)
            wanted[service.item_id(assignment_id, c.public_id)] = (
                value,
                c.public_id,
                c.source,
                c.sample_index,
            )
    return wanted


def test_sign_in_play_rate_submit_and_export(browser, served, tmp_path):
    store, server, tokens = served
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_url("**/signin")
    page.fill("#token", tokens["alice"])
    page.click("#signin-button")
    page.wait_for_url("**/annotate**")
    cards = page.locator("article.card")
    cards.first.wait_for()
    assert cards.count() == 3
    assert page.locator(".crit-def h3").all_inner_texts() == [
        "Empathy",
        "Appropriateness",
        "Engagement",
        "Naturalness",
    ]
    # ratings stay locked until each video has been played to the end
    assert page.locator("article.card input[type=radio]:disabled").count() == 3 * 4 * 5
    assert page.locator("#submit").is_disabled()

    assignment_id = page.locator("video").first.get_attribute("src").split("/")[2]
    wanted = _intended(store, assignment_id)
    for card in cards.all():
        video = card.locator("video")
        video.evaluate("v => v.play()")
        card.locator(".badge.ok").wait_for(timeout=15_000)  # "Watched" after the ended event
        value = wanted[card.get_attribute("data-item")][0]
        for key in CRITERION_KEYS:
            card.locator(f"input[data-criterion={key}][value='{value}']").locator("xpath=..").click()
    assert page.locator("#submit").is_enabled()
    page.click("#submit")
    page.locator("#done h2").wait_for(timeout=15_000)
    assert "All done" in page.locator("#done h2").inner_text()

    with store.read() as session:
        ratings = session.scalars(select(Rating)).all()
        submission = session.scalars(select(Submission)).one()
        by_candidate = {r.candidate.public_id: r for r in ratings}
    assert len(ratings) == 3 and submission.time_spent_ms > 0
    for value, public_id, _, _ in wanted.values():
        stored = by_candidate[public_id]
        assert [getattr(stored, k) for k in CRITERION_KEYS] == [value] * 4
        assert stored.watched_ms is not None and stored.watched_ms > 0

    result = export_preferences(store, "e2e", tmp_path / "prefs", weights=dict.fromkeys(CRITERION_KEYS, 0.25))
    truth = next(v for v in wanted.values() if v[2] == "ground_truth")
    worst = next(v for v in wanted.values() if v[2] == "policy" and v[3] == 0)
    assert [(p.chosen_id, p.rejected_id, p.margin) for p in result.dataset.pairs] == [
        (truth[1], worst[1], 4.0)
    ]


def test_admin_page_shows_progress_and_agreement(browser, served):
    _, server, tokens = served
    page = browser.new_page()
    page.goto(server.url + "/signin")
    page.fill("#token", tokens["admin"])
    page.click("#signin-button")
    page.wait_for_url("**/admin")
    page.locator("#stats .stat").first.wait_for()
    assert "0 / 1" in page.locator("#stats").inner_text()
    assert page.locator("#agreement tbody tr").count() == 4
    # admins cannot open the annotation page, annotators cannot open the admin page
    page.goto(server.url + "/annotate")
    page.wait_for_url("**/admin")
    other = browser.new_page()
    other.goto(server.url + "/signin")
    other.fill("#token", tokens["alice"])
    other.click("#signin-button")
    other.wait_for_url("**/annotate**")
    response = other.goto(server.url + "/admin")
    assert response.status == 403


def test_a_wrong_token_shows_an_error(browser, served):
    _, server, _ = served
    page = browser.new_page()
    page.goto(server.url + "/signin")
    page.fill("#token", "dyf_this-is-not-a-token")
    page.click("#signin-button")
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("#error")).to_contain_text("unknown token")
    assert page.url.endswith("/signin")
