"""`dyadic bench feedback`: the annotation server under 50 concurrent annotators, SQLite and PostgreSQL
side by side.

A real server process (uvicorn, one worker) on a fresh store: a SQLite file (WAL, synchronous=FULL: every
acknowledged page is fsynced) and a database of a throwaway PostgreSQL server started for the run
(:class:`~human_feedback.pgserver.TemporaryPostgres` with its crash-safe defaults, fsync on). 50
annotators, each an asyncio task with its own token, loop "next page -> submit 5 ratings" over real HTTP.
Two phases per store: *saturated* (no pause between pages: the server's throughput, and latency under a
full queue) and *paced* (each person pauses about ``think`` seconds between pages, an offered load well
below capacity: the latency people would feel). Baseline in the same run: one annotator alone, per store.
Figures are named ``sqlite_*`` and ``postgresql_*``, each pair next to the other; set
``DYADIC_SKIP_POSTGRES=1`` on a machine without PostgreSQL to measure SQLite alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dyadic_env.criteria import CRITERIA
from experiments.bench import benchmark

KEYS = CRITERIA


def _campaign(
    db: str, media: Path, groups: int, candidates: int, annotators: int, frames: int = 250
) -> list[str]:
    """A campaign of ``groups`` groups (``candidates`` each, 10 s clips of tokens) and annotator tokens."""
    from human_feedback import service
    from human_feedback.auth import add_annotator
    from human_feedback.store import Store

    store = Store(db, create=True)
    rng = np.random.default_rng(0)
    service.create_campaign(store, "bench", media_dir=media, ratings_per_group=3, repeat_every=8)
    with store.write() as session:
        campaign = store.campaign(session, "bench")
        for g in range(groups):
            clip = service.add_clip(
                session, campaign, clip_id=f"clip{g:05d}", fps=25.0,
                speaker_motion=rng.normal(size=(frames, 56)).astype(np.float32),
                speaker_words=[(0.5 * i, 0.5 * i + 0.3, "word") for i in range(20)],
            )  # fmt: skip
            group = service.add_group(session, campaign, clip)
            for c in range(candidates):
                service.add_candidate(
                    session, campaign, group, source="ground_truth" if c == 0 else "policy", policy_name=f"p{c}",
                    tokens=rng.integers(0, 256, size=(frames, 56)),
                )  # fmt: skip
    tokens = [add_annotator(store, f"bench-{i:03d}") for i in range(annotators)]
    store.close()
    return tokens


async def _annotator(
    client: Any, token: str, index: int, latencies: dict[str, list[float]], deadline: float, think_s: float
) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(index)
    pages = 0
    if think_s:
        await asyncio.sleep(float(rng.uniform(0, think_s)))  # people do not all start at once
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await client.post("/api/campaigns/bench/next", headers=headers)
        latencies["next"].append(time.perf_counter() - started)
        response.raise_for_status()
        page = response.json()["assignment"]
        if page is None:
            break
        body = {
            "submission_id": uuid.uuid4().hex,
            "ratings": [
                {"item_id": i["item_id"], **{k: int(rng.integers(1, 6)) for k in KEYS}} for i in page["items"]
            ],
            "time_spent_ms": 30_000,
        }
        started = time.perf_counter()
        response = await client.post(
            f"/api/assignments/{page['assignment_id']}/submit", json=body, headers=headers
        )
        latencies["submit"].append(time.perf_counter() - started)
        response.raise_for_status()
        pages += 1
        if think_s:
            await asyncio.sleep(float(rng.uniform(0.5, 1.5)) * think_s)
    return pages


async def _drive(
    url: str, tokens: list[str], seconds: float, think_s: float = 0.0
) -> tuple[dict[str, list[float]], int, float]:
    import httpx

    latencies: dict[str, list[float]] = {"next": [], "submit": []}
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens) + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:
        started = time.perf_counter()
        pages = await asyncio.gather(
            *(_annotator(client, t, i, latencies, started + seconds, think_s) for i, t in enumerate(tokens))
        )
        elapsed = time.perf_counter() - started
    return latencies, sum(pages), elapsed


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


STORES = ("sqlite", "postgresql")


def _think(quick: bool) -> float:
    return 0.5 if quick else 2.0


@contextlib.contextmanager
def _databases(folder: Path) -> Iterator[dict[str, str]]:
    """A SQLite file and, unless DYADIC_SKIP_POSTGRES=1, a database of a throwaway PostgreSQL server."""
    from human_feedback.pgserver import TemporaryPostgres

    urls = {"sqlite": str(folder / "bench.db")}
    if os.environ.get("DYADIC_SKIP_POSTGRES") == "1":
        yield urls
        return
    with TemporaryPostgres(durable=True) as server:
        urls["postgresql"] = server.create_database("bench")
        yield urls


def _measure(db: str, media: Path, quick: bool) -> dict[str, Any]:
    """Single annotator, then saturated and paced crowds, on one store; figures without a store prefix."""
    from human_feedback.process import ServerProcess

    annotators, candidates = (10, 5) if quick else (50, 5)
    seconds, alone_seconds = (1.0, 0.5) if quick else (20.0, 4.0)
    groups = 100 if quick else 1000
    think = _think(quick)
    tokens = _campaign(db, media, groups, candidates, annotators + 1, frames=50 if quick else 250)
    with ServerProcess(db) as server:
        alone, alone_pages, _ = asyncio.run(_drive(server.url, tokens[:1], alone_seconds))
        crowd, pages, elapsed = asyncio.run(_drive(server.url, tokens[1:], seconds))
        paced, paced_pages, paced_elapsed = asyncio.run(
            _drive(server.url, tokens[1:], seconds, think_s=think)
        )
    return {
        "pages": pages, "ratings": pages * candidates, "seconds": round(elapsed, 2),
        "ratings_per_s": round(pages * candidates / elapsed, 1), "pages_per_s": round(pages / elapsed, 2),
        "submit_p50_ms": round(_ms(crowd["submit"], 50), 1), "submit_p99_ms": round(_ms(crowd["submit"], 99), 1),
        "next_p50_ms": round(_ms(crowd["next"], 50), 1), "next_p99_ms": round(_ms(crowd["next"], 99), 1),
        "single_submit_p50_ms": round(_ms(alone["submit"], 50), 1),
        "single_next_p50_ms": round(_ms(alone["next"], 50), 1), "single_pages": alone_pages,
        "submit_p50_vs_single": round(_ms(crowd["submit"], 50) / _ms(alone["submit"], 50), 2),
        "paced_ratings_per_s": round(paced_pages * candidates / paced_elapsed, 1),
        "paced_submit_p50_ms": round(_ms(paced["submit"], 50), 1),
        "paced_submit_p99_ms": round(_ms(paced["submit"], 99), 1),
        "paced_next_p50_ms": round(_ms(paced["next"], 50), 1),
        "paced_next_p99_ms": round(_ms(paced["next"], 99), 1),
    }  # fmt: skip


@benchmark(
    "feedback",
    help="annotation server on SQLite and PostgreSQL: p50/p99 latency and ratings/s, 50 annotators, paced and saturated",
)
def bench_feedback(quick: bool = False) -> dict[str, Any]:
    measured: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, _databases(Path(tmp)) as urls:
        for store, url in urls.items():
            measured[store] = _measure(url, Path(tmp) / f"media-{store}", quick)
    figures: dict[str, Any] = {
        "annotators": 10 if quick else 50, "candidates_per_page": 5, "paced_think_s": _think(quick),
        "stores": ",".join(measured),
    }  # fmt: skip
    for key in measured["sqlite"]:  # each figure of both stores side by side
        figures.update({f"{store}_{key}": measured[store][key] for store in STORES if store in measured})
    if "postgresql" in measured:
        figures["postgresql_vs_sqlite_ratings_per_s"] = round(
            measured["postgresql"]["ratings_per_s"] / measured["sqlite"]["ratings_per_s"], 2
        )
        figures["postgresql_vs_sqlite_paced_submit_p50"] = round(
            measured["postgresql"]["paced_submit_p50_ms"] / measured["sqlite"]["paced_submit_p50_ms"], 2
        )
    return figures
