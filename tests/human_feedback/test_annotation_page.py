"""The annotator's page in headless Chromium against a real server: keyboard rating, play all, no
unlocking by skipping ahead, recovery from failed requests, phone width, favicon."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from human_feedback import service
from human_feedback.auth import add_annotator
from human_feedback.criteria import CRITERION_KEYS
from human_feedback.process import ServerProcess
from human_feedback.store import Assignment, Rating, Store, Submission

from .chromium import MARKS, chromium
from .conftest import build_campaign

pytestmark = MARKS
ITEMS = 3  # ground truth + 2 samples per page


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One server and one browser for the module; each test signs in as a new annotator."""
    root = tmp_path_factory.mktemp("page")
    store = Store(root / "f.db", create=True)
    build_campaign(store, "ui", root / "media", groups=16, samples=2, ratings_per_group=1)
    with ServerProcess(root / "f.db", log=root / "server.log") as server, chromium() as browser:
        yield store, server, browser
    store.close()


@pytest.fixture
def signed_in(app, request):
    store, server, browser = app
    contexts = []

    def open_page(**options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.goto(server.url + "/signin")
        page.fill("#token", add_annotator(store, f"{request.node.name[:40]}-{len(contexts)}"))
        page.click("#signin-button")
        page.wait_for_url("**/annotate**")
        page.locator("article.card").first.wait_for()
        return page

    yield open_page
    for context in contexts:
        context.close()


def _assignment(page) -> str:
    return page.locator("video").first.get_attribute("src").split("/")[2]


def _all_watched(page):
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator(".badge.ok")).to_have_count(ITEMS, timeout=15_000)


def _watch_all(page):
    page.click("#play-all")
    _all_watched(page)


def _rate_by_keyboard(page) -> list[list[int]]:
    """Rate every criterion of every item with keys 1-5 (cursor moves on by itself); the values given."""
    values = [[(i + j) % 5 + 1 for j in range(len(CRITERION_KEYS))] for i in range(ITEMS)]
    for row in values:
        for value in row:
            page.keyboard.press(str(value))
    return values


def _wait_for_next_page(page, previous: str) -> None:
    page.wait_for_function(
        "(id) => { const v = document.querySelector('#cards video');"
        " return v && !v.src.includes(id) && !document.getElementById('task').classList.contains('hidden'); }",
        arg=previous,
        timeout=20_000,
    )


def _stored(store, assignment_id):
    with store.read() as session:
        assignment = session.scalar(select(Assignment).where(Assignment.public_id == assignment_id))
        by_item = {
            service.item_id(assignment_id, r.candidate.public_id): [getattr(r, k) for k in CRITERION_KEYS]
            for r in session.scalars(select(Rating).where(Rating.assignment_id == assignment.id))
        }
    return by_item


def test_a_page_is_rated_with_the_keyboard_alone(app, signed_in):
    store = app[0]
    page = signed_in()
    first = _assignment(page)
    page.keyboard.press("a")  # play all
    _all_watched(page)
    cursor = page.locator(".rating-row.cursor")
    assert cursor.get_attribute("data-criterion") == "empathy"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    assert cursor.get_attribute("data-criterion") == "appropriateness"
    page.keyboard.press("ArrowRight")
    cards = page.locator("article.card")
    assert cards.nth(1).locator(".rating-row.cursor").count() == 1
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowUp")
    assert cards.nth(0).locator(".rating-row.cursor").get_attribute("data-criterion") == "empathy"
    values = _rate_by_keyboard(page)
    assert "All rated" in page.locator("#status").inner_text()
    order = [cards.nth(i).get_attribute("data-item") for i in range(ITEMS)]
    page.keyboard.press("Enter")
    _wait_for_next_page(page, first)
    assert _stored(store, first) == dict(zip(order, values))


def test_play_all_plays_every_video_and_unlocks_the_ratings(signed_in):
    page = signed_in()
    assert page.locator("article.card input[type=radio]:disabled").count() == ITEMS * 4 * 5
    page.click("#play-all")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#cards video')].every(v => !v.paused || v.ended)",
        timeout=10_000,
    )
    _all_watched(page)
    assert page.locator("article.card input[type=radio]:disabled").count() == 0


def test_skipping_to_the_end_does_not_unlock_the_ratings(signed_in):
    page = signed_in()
    card = page.locator("article.card").first
    card.locator("video").evaluate(
        """async (v) => {
            if (v.readyState < 1) await new Promise((r) => v.addEventListener("loadedmetadata", r, { once: true }));
            const seeked = new Promise((r) => v.addEventListener("seeked", r, { once: true }));
            v.currentTime = v.duration * 0.6;  // skip ahead, then play the rest
            await seeked;
            return v.play();
        }"""
    )
    card.locator(".badge", has_text="Not watched in full").wait_for(timeout=10_000)
    assert card.locator("input[type=radio]:disabled").count() == 4 * 5


def test_failed_requests_are_retried_and_the_page_never_sticks(app, signed_in):
    store = app[0]
    page = signed_in()
    first = _assignment(page)
    _watch_all(page)
    _rate_by_keyboard(page)
    failures = {"next": 1, "submit": 1}

    def flaky(route):  # the first request of each kind fails as a dropped connection would
        kind = "submit" if route.request.url.endswith("/submit") else "next"
        if failures[kind]:
            failures[kind] -= 1
            route.abort()
        else:
            route.continue_()

    page.route("**/api/campaigns/*/next", flaky)
    page.route("**/api/assignments/*/submit", flaky)
    page.click("#submit")
    _wait_for_next_page(page, first)  # the bug: it stayed on "Saved. Loading the next page..."
    assert failures == {"next": 0, "submit": 0} and page.locator("#problem").is_hidden()
    # A longer outage: after the automatic tries a Retry button, which works once the network is back.
    second = _assignment(page)
    page.unroute("**/api/campaigns/*/next")
    page.route("**/api/campaigns/*/next", lambda route: route.abort())
    _watch_all(page)
    _rate_by_keyboard(page)
    page.keyboard.press("Enter")
    page.locator("#retry").wait_for(timeout=15_000)
    page.unroute("**/api/campaigns/*/next")
    page.click("#retry")
    _wait_for_next_page(page, second)
    with store.read() as session:  # the retried submit was stored once
        annotator_id = session.scalar(select(Assignment.annotator_id).where(Assignment.public_id == first))
        submitted = session.scalars(select(Submission).where(Submission.annotator_id == annotator_id)).all()
    assert len(submitted) == 2 and all(len(_stored(store, a)) == ITEMS for a in (first, second))


def test_the_page_fits_a_phone_and_works_by_touch(app, signed_in):
    store = app[0]
    page = signed_in(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    first = _assignment(page)
    width = page.evaluate("window.innerWidth")
    assert width == 375
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    rights = page.eval_on_selector_all(
        "article.card, .topbar, #footer, #submit, .scale",
        "els => els.map(e => e.getBoundingClientRect().right)",
    )
    assert max(rights) <= width
    _watch_all(page)
    for card in page.locator("article.card").all():
        for key in CRITERION_KEYS:
            card.locator(f"input[data-criterion={key}][value='4']").locator("xpath=..").tap()
    page.locator("#submit").tap()
    _wait_for_next_page(page, first)
    assert all(v == [4] * 4 for v in _stored(store, first).values())
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_every_page_has_a_favicon_and_loads_without_errors(app, signed_in):
    _, server, _ = app
    icon = signed_in().request.get(server.url + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    page = signed_in()
    failed = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    for path in ("/signin", "/annotate"):
        page.goto(server.url + path)
        assert page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"
        page.wait_for_load_state("networkidle")
    assert failed == []
