"""Blinding holds against a look at the network panel: nothing a client receives (bytes, headers, names,
sizes, dates, order) tells the ground truth from the policies' candidates.

The strongest check: a policy candidate whose tokens equal the ground truth's is served byte for byte
like the ground truth, so every difference a client could see comes from the motion alone.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dyadic_env.data import load_dataset
from dyadic_env.envs.testing import write_random_walk_dataset
from human_feedback import service
from human_feedback.auth import add_annotator
from human_feedback.blinding import FREE_BOX_HEADER, padding
from human_feedback.server import create_app
from human_feedback.store import Assignment

pytestmark = [pytest.mark.render, pytest.mark.slow]
SOURCES = ("ground_truth", "twin", "policy", "broken")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One group rendered through the project's path: ground truth, its twin (a policy candidate with the
    very same tokens), another policy candidate and a broken one."""
    from dyadic_env.render import Renderer
    from human_feedback.blinding import render_group
    from human_feedback.candidates import broken_tokens

    root = tmp_path_factory.mktemp("blind")
    dataset = load_dataset(
        write_random_walk_dataset(
            root / "data", splits={"test": 1}, frames=(12, 12), expression_basis="ict-arkit"
        )
    )
    clip = dataset.clip(dataset.split("test").clip_ids[0])
    tokenizer = dataset.tokenizer()
    truth = tokenizer.encode(np.asarray(clip.listener_motion))
    rng = np.random.default_rng(0)
    other = np.clip(truth.astype(int) + rng.integers(-20, 21, size=truth.shape), 0, tokenizer.num_bins - 1)
    tokens = [truth, truth.copy(), other, broken_tokens(truth, "frozen", tokenizer.num_bins, rng)]
    with Renderer(32, 32) as renderer:
        paths = render_group(
            renderer, root / "media", clip, tokens, tokenizer, dataset.expression_basis, seed=3
        )
    return root, clip, tokens, paths


def test_files_carry_no_identity_in_names_dates_or_encoding(rendered):
    _, _, _, paths = rendered
    truth, twin = paths[0], paths[1]
    assert truth.read_bytes() == twin.read_bytes()  # the ground truth went through the token path
    assert len({p.name for p in paths}) == 4 and all(p.name.startswith("v_") for p in paths)
    assert len({p.stat().st_mtime for p in paths}) == 1  # rendered in a shuffled order, one timestamp


def test_a_relative_media_dir_gives_paths_the_store_can_serve(rendered, tmp_path, monkeypatch):
    from dyadic_env.data import load_dataset
    from dyadic_env.render import Renderer
    from human_feedback.blinding import render_group
    from human_feedback.media import relative_media_path, resolve_media

    root, clip, tokens, _ = rendered
    dataset = load_dataset(root / "data")
    monkeypatch.chdir(tmp_path)
    with Renderer(32, 32) as renderer:
        paths = render_group(
            renderer, "media", clip, tokens[:1], dataset.tokenizer(), dataset.expression_basis
        )
    stored = relative_media_path("media", paths[0])
    assert paths[0].is_absolute() and stored == f"videos/{paths[0].name}"
    assert resolve_media("media", stored) == paths[0]


def _campaign(store, rendered, tmp_path):
    _, clip, tokens, paths = rendered
    media = tmp_path / "campaign"
    service.create_campaign(store, "blind", media_dir=media, ratings_per_group=40, repeat_every=0)
    with store.write() as session:
        campaign = store.campaign(session, "blind")
        row = service.add_clip(
            session, campaign, clip_id=clip.clip_id, fps=clip.fps, speaker_motion=clip.speaker_motion
        )
        group = service.add_group(session, campaign, row)
        for source, t, path in zip(SOURCES, tokens, paths):
            copy = media / "videos" / path.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
            service.add_candidate(
                session, campaign, group, source="policy" if source == "twin" else source,
                policy_name=source, tokens=t, video_path=copy,
            )  # fmt: skip


def _served(client, token):
    """A page as a client sees it: the page JSON and, per item, the video's headers and bytes."""
    headers = {"Authorization": f"Bearer {token}"}
    page = client.post("/api/campaigns/blind/next", headers=headers).json()["assignment"]
    videos = {}
    for item in page["items"]:
        response = client.get(item["video_url"], headers=headers)
        assert response.status_code == 200
        videos[item["item_id"]] = (dict(response.headers), response.content)
    return page, videos


def _sources(store, page):
    with store.read() as session:
        assignment = session.scalar(select(Assignment).where(Assignment.public_id == page["assignment_id"]))
        return {
            service.item_id(assignment.public_id, c.public_id): c.policy_name
            for c in assignment.group.candidates
        }


def test_served_pages_and_videos_do_not_tell_the_ground_truth_apart(store, rendered, tmp_path):
    _campaign(store, rendered, tmp_path)
    client = TestClient(create_app(store))
    page, videos = _served(client, add_annotator(store, "eve"))
    sources = _sources(store, page)
    by_source = {sources[item]: served for item, served in videos.items()}
    truth_headers, truth_body = by_source["ground_truth"]
    # every header, date aside, is the same for every video: no validators, one size for the group
    for headers, body in videos.values():
        assert {k: v for k, v in headers.items() if k != "date"} == {
            k: v for k, v in truth_headers.items() if k != "date"
        }
        assert len(body) == len(truth_body)
    assert "etag" not in truth_headers and "last-modified" not in truth_headers
    assert by_source["twin"][1] == truth_body  # same tokens, same bytes: only motion differs
    sizes = [p.stat().st_size for p in rendered[3]]
    assert len(truth_body) == max(sizes) + FREE_BOX_HEADER
    # the page itself names nothing: its video urls are made of its random ids alone, and the rest, those ids set
    # aside (they may hold "gt" by chance), holds none of the sources' words
    for item in page["items"]:
        assert item["video_url"] == f"/media/{page['assignment_id']}/{item['item_id']}.mp4"
    text = str({k: v for k, v in page.items() if k not in ("assignment_id", "items")})
    text += str([{k: v for k, v in i.items() if k not in ("item_id", "video_url")} for i in page["items"]])
    assert not any(word in text for word in ("ground", "truth", "twin", "policy", "broken", "gt"))
    assert [i["label"] for i in page["items"]] == ["A", "B", "C", "D"]


def test_the_ground_truth_takes_every_position_and_urls_never_repeat(store, rendered, tmp_path):
    _campaign(store, rendered, tmp_path)
    client = TestClient(create_app(store))
    positions, urls = Counter(), set()
    for i in range(24):
        token = add_annotator(store, f"p{i}")
        page = client.post("/api/campaigns/blind/next", headers={"Authorization": f"Bearer {token}"}).json()
        page = page["assignment"]
        sources = _sources(store, page)
        positions[[sources[item["item_id"]] for item in page["items"]].index("ground_truth")] += 1
        urls |= {item["video_url"] for item in page["items"]}
    assert set(positions) == {0, 1, 2, 3}  # shown first, second, third and last
    assert len(urls) == 24 * 4  # per-page URLs: nothing links two pages


def test_padded_videos_decode_to_the_same_frames_and_ranges_cover_the_padding(store, rendered, tmp_path):
    from dyadic_env.render import read_video

    _campaign(store, rendered, tmp_path)
    client = TestClient(create_app(store))
    token = add_annotator(store, "eve")
    page, videos = _served(client, token)
    item = page["items"][0]
    served = videos[item["item_id"]][1]
    (tmp_path / "served.mp4").write_bytes(served)
    original = next(p for p in rendered[3] if served.startswith(p.read_bytes()))
    assert served == original.read_bytes() + padding(original.stat().st_size, len(served))
    np.testing.assert_array_equal(read_video(tmp_path / "served.mp4")[0], read_video(original)[0])
    headers = {"Authorization": f"Bearer {token}", "Range": f"bytes={len(served) - 10}-"}
    tail = client.get(item["video_url"], headers=headers)
    assert tail.status_code == 206 and tail.content == served[-10:]
    assert tail.headers["content-range"] == f"bytes {len(served) - 10}-{len(served) - 1}/{len(served)}"
    headers["Range"] = f"bytes={len(served)}-"
    assert client.get(item["video_url"], headers=headers).status_code == 416


def test_the_alignment_pipelines_render_the_ground_truth_from_tokens(rendered, tmp_path):
    """The quickstart's sample videos take the same path: a sample equal to the quantized ground truth
    renders to the same bytes, and no file name says which is which."""
    from experiments.pipelines.alignment import _render_sample

    root, clip, tokens, _ = rendered
    dataset = load_dataset(root / "data")
    videos = _render_sample(tmp_path / "m", [clip], [[tokens[0], tokens[2]]], dataset.tokenizer(), dataset, 1)
    assert set(videos) == {(0, -1), (0, 0), (0, 1)}
    read = {k: Path(v).read_bytes() for k, v in videos.items()}
    assert read[(0, -1)] == read[(0, 0)] != read[(0, 1)]
    # Every name is random and nothing else: a random one may spell "gt" by chance, so a name is checked whole.
    assert all(re.fullmatch(r"v_[A-Za-z0-9_-]{12}\.mp4", Path(v).name) for v in videos.values())
