"""Presets on disk: the cache is generated once, atomically, and loads through ``synthetic:NAME``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import load_dataset, validate_dataset
from dyadic_env.synthetic import GENERATOR_VERSION, PRESETS, cached_preset, write_preset
from dyadic_env.synthetic import presets as presets_module
from dyadic_env.synthetic.appropriate import SETS_VERSION

CACHED_TINY = f"tiny-seed0-v{GENERATOR_VERSION}-sets{SETS_VERSION}"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DYADIC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_write_preset_writes_a_valid_dataset_with_its_config(tmp_path: Path) -> None:
    out = write_preset("tiny", tmp_path / "tiny", seed=3)
    assert validate_dataset(out) == []
    dataset = load_dataset(out)
    assert dataset.expression_basis == "ict-arkit" and dataset.fps == 25.0 and dataset.has_affect
    assert set(dataset.splits) == {"train", "val", "test"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["synthetic"]["seed"] == 3 and manifest["synthetic"]["generator_version"] == GENERATOR_VERSION
    )
    assert manifest["synthetic"]["config"]["poor_listener_fraction"] == PRESETS["tiny"].poor_listener_fraction
    assert dataset.tokenizer() is not None
    clip = dataset.split("test")[0]
    assert clip.meta["listener_kind"] in ("appropriate", "generic_positive", "inattentive")


def test_write_preset_refuses_unknown_names_and_existing_output(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="unknown synthetic preset 'huge'; expected one of tiny, small, full"
    ):
        write_preset("huge", tmp_path / "x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_preset("tiny", tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_cached_preset_generates_once_and_loads_by_spec(cache: Path) -> None:
    path = cached_preset("tiny")
    assert path == cache / "synthetic" / CACHED_TINY
    stamp = (path / "manifest.json").stat().st_mtime_ns
    assert cached_preset("tiny") == path
    assert (path / "manifest.json").stat().st_mtime_ns == stamp
    dataset = load_dataset("synthetic:tiny")
    assert dataset.path == path and len(dataset) == 24
    fresh = write_preset("tiny", cache.parent / "fresh")
    np.testing.assert_array_equal(
        load_dataset(fresh).split("train")[0].listener_motion, dataset.split("train")[0].listener_motion
    )


def test_concurrent_callers_share_one_copy(cache: Path) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        paths = list(pool.map(lambda _: cached_preset("tiny"), range(3)))
    assert len(set(paths)) == 1 and validate_dataset(paths[0]) == []
    assert [p.name for p in (cache / "synthetic").iterdir()] == [paths[0].name]  # no temporary leftovers


def test_a_caller_that_loses_the_race_uses_the_winner(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = presets_module.write_synthetic
    final = cache / "synthetic" / CACHED_TINY

    def racing(config, out, *, seed=None, name="synthetic"):
        if not final.exists():
            real(config, final, seed=seed, name=name)  # another process finishes first
        return real(config, out, seed=seed, name=name)

    monkeypatch.setattr(presets_module, "write_synthetic", racing)
    assert cached_preset("tiny") == final
    assert validate_dataset(final) == []
    assert [p.name for p in (cache / "synthetic").iterdir()] == [final.name]
