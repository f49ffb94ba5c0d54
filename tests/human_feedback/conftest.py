"""Fixtures: feedback stores on SQLite and on a real PostgreSQL server, small campaigns built directly in
a store, with short real H.264 videos.

Every test that takes ``store`` or ``db_url`` runs twice: on a SQLite file and on a fresh database of a
PostgreSQL server that the first such test starts in a temporary folder (once per test session; stopped
at the end). When PostgreSQL cannot be started those tests fail, saying why; set
``DYADIC_SKIP_POSTGRES=1`` to skip them instead on a machine without PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from human_feedback import service
from human_feedback.auth import add_annotator, new_admin_token
from human_feedback.pgserver import PostgresUnavailable, TemporaryPostgres
from human_feedback.store import Campaign, Store

FRAME_DIM = 56


_VIDEO_CACHE: dict[tuple[float, int, int], bytes] = {}


def write_test_video(path: Path, *, seconds: float = 0.6, fps: int = 10, shade: int = 0) -> Path:
    """A short speaker|listener-shaped (2:1) H.264 MP4 that browsers can play (encoded once per shape)."""
    key = (seconds, fps, shade % 4)
    if key in _VIDEO_CACHE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_VIDEO_CACHE[key])
        return path
    _encode(path, seconds, fps, shade % 4)
    _VIDEO_CACHE[key] = path.read_bytes()
    return path


def _encode(path: Path, seconds: float, fps: int, shade: int) -> None:
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = 128, 64
    frames = round(seconds * fps)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=16,
        output_params=["-movflags", "+faststart"],
    )
    writer.send(None)
    for t in range(frames):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, : width // 2] = (40, 60, 90)
        frame[:, width // 2 :] = ((shade * 50) % 255, 120, (t * 20) % 255)
        writer.send(frame.tobytes())
    writer.close()


def build_campaign(
    store: Store,
    name: str,
    media_dir: Path,
    *,
    groups: int = 3,
    policies: tuple[str, ...] = ("policy",),
    samples: int = 2,
    ground_truth: bool = True,
    broken_every: int = 0,
    videos: bool = True,
    frames: int = 6,
    ratings_per_group: int = 2,
    repeat_every: int = 0,
    require_full_view: bool = True,
    seed: int = 0,
) -> None:
    """A campaign of ``groups`` clips, each with ``samples`` candidates per policy (+ ground truth)."""
    rng = np.random.default_rng(seed)
    service.create_campaign(
        store,
        name,
        media_dir=media_dir,
        ratings_per_group=ratings_per_group,
        repeat_every=repeat_every,
        seed=seed,
        dataset_spec="synthetic:tiny",
        split="test",
        config={"require_full_view": require_full_view},
    )
    with store.write() as session:
        campaign = store.campaign(session, name)
        for g in range(groups):
            clip = service.add_clip(
                session,
                campaign,
                clip_id=f"clip{g:03d}",
                fps=25.0,
                speaker_motion=rng.normal(size=(frames, FRAME_DIM)).astype(np.float32),
                speaker_words=[(0.0, 0.1, "hello"), (0.12, 0.2, "there")],
                split="test",
            )
            group = service.add_group(session, campaign, clip)
            sources = [("ground_truth", "ground_truth", 0)] if ground_truth else []
            sources += [("policy", p, i) for p in policies for i in range(samples)]
            if broken_every and g % broken_every == 0:
                sources.append(("broken", "broken:frozen", 0))
            for k, (source, policy, index) in enumerate(sources):
                video = None
                if videos:
                    video = write_test_video(media_dir / f"g{g}_c{k}.mp4", shade=k)
                service.add_candidate(
                    session,
                    campaign,
                    group,
                    source=source,
                    policy_name=policy,
                    sample_index=index,
                    tokens=rng.integers(0, 256, size=(frames, FRAME_DIM)),
                    video_path=video,
                )


SKIP_POSTGRES = "DYADIC_SKIP_POSTGRES"
BACKENDS = ["sqlite", "postgresql"]
_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the whole test session."""
    if os.environ.get(SKIP_POSTGRES) == "1":
        pytest.skip(f"PostgreSQL tests skipped ({SKIP_POSTGRES}=1)")
    try:
        server = TemporaryPostgres().start()
    except PostgresUnavailable as e:
        pytest.fail(
            f"cannot start PostgreSQL for the PostgreSQL half of the feedback tests: {e}\n"
            f"Install it (`bash scripts/setup.sh` does) or set {SKIP_POSTGRES}=1 to skip these tests.",
            pytrace=False,
        )
    yield server
    server.stop()


def _database(request: pytest.FixtureRequest, folder: Path):
    """A URL of a new, empty database of the requested kind, and a function that removes it."""
    if request.param == "sqlite":
        return str(folder / "feedback.db"), lambda: None
    server = request.getfixturevalue("postgres_server")
    name = f"t{next(_database_numbers)}"
    return server.create_database(name), lambda: server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    url, drop = _database(request, tmp_path)
    yield url
    drop()


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory) -> str:
    """A database shared by the tests of one module (for costly set-ups), on each backend."""
    url, drop = _database(request, tmp_path_factory.mktemp("db"))
    yield url
    drop()


@pytest.fixture
def store(db_url) -> Store:
    s = Store(db_url, create=True)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path) -> Store:
    """For what only SQLite has (its file, its settings)."""
    s = Store(tmp_path / "feedback.db", create=True)
    yield s
    s.close()


@pytest.fixture
def campaign(store: Store, tmp_path: Path) -> str:
    build_campaign(store, "pilot", tmp_path / "media", videos=False)
    return "pilot"


@pytest.fixture
def tokens(store: Store) -> dict[str, str]:
    return {
        "alice": add_annotator(store, "alice"),
        "bob": add_annotator(store, "bob"),
        "carol": add_annotator(store, "carol"),
        "admin": new_admin_token(store),
    }


def campaign_id(store: Store, name: str) -> int:
    with store.read() as session:
        return session.query(Campaign).filter_by(name=name).one().id


def watch_all(client, page: dict, headers: dict) -> None:
    """Fetch every video on a page, as a browser playing them would (the server checks it at submit)."""
    for item in page["items"]:
        if item["video_url"]:
            assert client.get(item["video_url"], headers=headers).status_code == 200
