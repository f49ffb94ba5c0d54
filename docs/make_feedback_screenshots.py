"""Regenerate docs/annotation.png and docs/admin.png (the annotation app in headless Chromium).

    dyadic feedback collect --policy nn --dataset synthetic:small --clips 2 --candidates 3 \
        --db /tmp/shots/fb.db --campaign round-1 --broken-fraction 0 --seed 3
    python docs/make_feedback_screenshots.py --db /tmp/shots/fb.db --campaign round-1

The admin screenshot uses a second, simulated campaign (no videos) so its tables have content.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from human_feedback.auth import add_annotator, new_admin_token
from human_feedback.candidates import CollectConfig, PolicySpec, collect
from human_feedback.process import ServerProcess
from human_feedback.simulate import simulate
from human_feedback.store import Store

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="feedback database holding a rendered campaign")
    parser.add_argument("--campaign", required=True, help="the rendered campaign to show")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="where to write the PNGs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    store = Store(args.db)
    person = add_annotator(store, "maria.k")
    admin = new_admin_token(store, label="study admin")
    with ServerProcess(args.db) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1330}, device_scale_factor=1)
        page.goto(f"{server.url}/signin#token={person}")
        page.wait_for_url("**/annotate**")
        cards = page.locator("article.card")
        cards.first.wait_for()
        page.click("#play-all")  # ratings unlock after a whole video played at normal speed
        page.locator(".badge.ok").nth(cards.count() - 1).wait_for(timeout=120_000)
        for i, card in enumerate(cards.all()):
            video = card.locator("video")
            video.evaluate("(v, t) => { v.currentTime = t; }", [1.4, 2.2, 3.0, 1.8][i % 4])
            if i < 2:  # part of the page rated, as mid-task
                for key, value in zip(
                    ("empathy", "appropriateness", "engagement", "naturalness"),
                    [(4, 5, 4, 4), (2, 2, 3, 4)][i],
                ):
                    card.locator(f"input[data-criterion={key}][value='{value}']").locator("xpath=..").click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(args.out / "annotation.png"))  # the viewport: the footer stays at the bottom

        config = CollectConfig(
            policies=[PolicySpec.parse("random"), PolicySpec.parse("nn")],
            dataset="synthetic:small",
            clips=24,
            samples=2,
            render=False,
            broken_fraction=0.5,
            seed=1,
        )
        collect(store, "pilot-simulated", config, ratings_per_group=3, repeat_every=4)
        simulate(store, "pilot-simulated", 8, seed=2, careless_fraction=0.25)
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
        page.goto(f"{server.url}/signin#token={admin}")
        page.wait_for_url("**/admin")
        page.locator("#mos tbody tr").first.wait_for()
        page.wait_for_timeout(300)
        page.screenshot(path=str(args.out / "admin.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
