"""Simulated annotators rate through the API; their ratings separate good from bad listeners, and the
attention checks catch the careless ones."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from human_feedback.analysis import annotator_stats, campaign_overview, load_ratings
from human_feedback.candidates import CollectConfig, PolicySpec, collect
from human_feedback.simulate import simulate
from human_feedback.store import Assignment, Submission
from human_feedback.study import mos_table


@pytest.fixture(scope="module")
def rated(tmp_path_factory, module_db_url):
    from human_feedback.store import Store

    root = tmp_path_factory.mktemp("sim")
    store = Store(module_db_url, create=True)
    config = CollectConfig(
        policies=[PolicySpec.parse("random")],
        dataset="synthetic:tiny",
        clips=6,
        samples=2,
        render=False,
        broken_fraction=1.0,
        seed=0,
    )
    collect(store, "sim", config, ratings_per_group=3, repeat_every=3, media_dir=root / "m")
    report = simulate(store, "sim", 6, seed=1, careless_fraction=0.34)
    yield store, report
    store.close()


def test_every_group_gets_r_ratings_through_the_api(rated):
    store, report = rated
    with store.read() as session:
        regular = Counter(session.scalars(select(Assignment.group_id).where(Assignment.kind == "regular")))
        submissions = session.scalar(select(func.count()).select_from(Submission))
        open_pages = session.scalar(select(func.count()).where(Assignment.completed_at.is_(None)))
    assert sorted(regular.values()) == [3] * 6
    assert submissions == report.pages and open_pages == 0
    assert report.ratings == len(load_ratings(store, "sim")) and report.retries == 0
    assert sum(report.per_annotator.values()) == report.pages > 18  # 18 regular pages plus repeats


def test_ratings_prefer_the_ground_truth_over_random_listeners(rated):
    store, _ = rated
    table = {row["method"]: row for row in mos_table(load_ratings(store, "sim"))}
    for key in ("empathy", "appropriateness", "engagement", "naturalness"):
        assert table["Ground truth"][key]["mean"] > table["random"][key]["mean"] + 0.5, key


def test_attention_checks_flag_the_careless(rated):
    store, report = rated
    stats = {s.name: s for s in annotator_stats(store, "sim")}
    constant = [name for name, mode in report.careless.items() if mode == "constant"]
    assert constant and all(stats[n].flagged for n in constant)
    careful = [n for n in report.annotators if n not in report.careless]
    assert sum(not stats[n].flagged for n in careful) >= len(careful) - 1
    assert all(stats[n].broken_checks > 0 for n in report.annotators)


def test_agreement_is_positive_among_simulated_people(rated):
    store, _ = rated
    overview = campaign_overview(store, "sim")
    assert overview["groups_complete"] == 6
    assert overview["agreement"]["naturalness"]["ordinal"]["alpha"] > 0.2


def test_simulated_people_fetch_the_videos_a_page_has(store, tmp_path):
    """Where candidates have videos, simulated annotators load them like a browser, so the server's
    fetch-before-submit rule holds for them too."""
    from human_feedback.store import Candidate, MediaFetch

    from .conftest import write_test_video

    config = CollectConfig(
        policies=[PolicySpec.parse("random")], dataset="synthetic:tiny", clips=2, samples=1, render=False
    )
    collect(store, "vid", config, ratings_per_group=1, repeat_every=0, media_dir=tmp_path / "m")
    with store.write() as session:
        candidates = session.scalars(select(Candidate)).all()
        for k, c in enumerate(candidates[:2]):  # one group rendered, the other not, as the quickstart does
            c.video_path = write_test_video(tmp_path / "m" / f"v{k}.mp4", shade=k).name
    report = simulate(store, "vid", 1, seed=0, careless_fraction=0.0)
    assert report.pages == 2 and report.retries == 0
    with store.read() as session:
        fetched = session.scalars(select(MediaFetch.candidate_id)).all()
    assert sorted(fetched) == sorted(c.id for c in candidates[:2])
