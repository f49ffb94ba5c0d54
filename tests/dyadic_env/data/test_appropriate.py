"""Appropriate-reaction sets in the dataset format (schema 2): writing, reading, validating, adding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import (
    DataValidationError,
    DyadicDataset,
    add_appropriate_sets,
    load_dataset,
    validate_dataset,
    write_dataset,
)
from dyadic_env.data.neighbours import neighbour_sets, speaker_distances
from dyadic_env.data.specs import register_scheme, resolve_spec


@pytest.fixture
def with_sets(tmp_path: Path, clip_factory) -> tuple[Path, dict[str, list]]:
    """Four train clips, two test clips with sets: stored reactions and recorded listeners of other clips."""
    clips = [clip_factory(f"c{i}", 10 + i) for i in range(6)]
    rng = np.random.default_rng(1)
    sets = {
        "c4": [rng.normal(size=(14, 56)).astype(np.float32), "c4", "c0"],
        "c5": ["c1", rng.normal(size=(15, 56)).astype(np.float32)],
    }
    items = [("train", c) for c in clips[:4]] + [("test", c, sets[c.clip_id]) for c in clips[4:]]
    path = write_dataset(
        tmp_path / "d",
        items,
        fps=25.0,
        expression_basis="flame",
        appropriate_info={"method": "test", "params": {"k": 2}},
    )
    return path, sets


def test_sets_round_trip_as_memory_maps(with_sets):
    path, sets = with_sets
    dataset = load_dataset(path)
    assert dataset.has_appropriate and dataset.manifest["schema_version"] == 2
    first = dataset.appropriate_listeners(dataset.row_of("c4"))
    np.testing.assert_array_equal(first[0], sets["c4"][0])
    np.testing.assert_array_equal(first[1], dataset.clip("c4").listener_motion)
    np.testing.assert_array_equal(first[2], dataset.clip("c0").listener_motion)  # keeps its own 10 frames
    assert isinstance(first[0], np.memmap) and not first[0].flags.writeable
    second = dataset.appropriate_listeners(dataset.row_of("c5"))
    assert len(second) == 2 and second[1].shape == (15, 56)
    assert dataset.appropriate_listeners(0) == []  # a train clip has no set
    block = dataset.summary()["appropriate"]
    assert block["entries"] == 5 and block["stored"] == 2 and block["recorded"] == 3 and block["clips"] == 2
    assert block["sizes"] == {"min": 2, "mean": 2.5, "max": 3} and block["method"] == "test"
    assert validate_dataset(path) == []


def test_a_copy_keeps_the_sets(with_sets, tmp_path):
    source = load_dataset(with_sets[0])
    items = [
        (s, c, source.appropriate_entries(source.row_of(c.clip_id)))
        for s in source.splits
        for c in source.split(s)
    ]
    copy = load_dataset(write_dataset(tmp_path / "copy", items, fps=25.0, expression_basis="flame"))
    for clip_id in ("c4", "c5"):
        for a, b in zip(
            source.appropriate_listeners(source.row_of(clip_id)),
            copy.appropriate_listeners(copy.row_of(clip_id)),
        ):
            np.testing.assert_array_equal(a, b)
    assert source.appropriate_entries(source.row_of("c4"))[1:] == ["c4", "c0"]


def test_a_schema_1_dataset_still_loads(small_dataset):
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (small_dataset / "manifest.json").write_text(json.dumps(manifest))
    dataset = load_dataset(small_dataset)
    assert not dataset.has_appropriate and dataset.appropriate_listeners(0) == []
    assert validate_dataset(small_dataset) == []
    manifest["appropriate"] = {"index": "appropriate_index.npy"}
    (small_dataset / "manifest.json").write_text(json.dumps(manifest))
    assert any(p.field == "schema_version" for p in validate_dataset(small_dataset))


def test_writing_refuses_bad_sets(tmp_path, clip_factory):
    clip = clip_factory("a", 12)
    with pytest.raises(DataValidationError, match=r"appropriate\[0\]: expected shape \(12, 56\)"):
        write_dataset(tmp_path / "x", [("test", clip, [np.zeros((11, 56), np.float32)])], fps=25.0,
                      expression_basis="flame")  # fmt: skip
    with pytest.raises(DataValidationError, match="ids of clips in the dataset, found 'nope'"):
        write_dataset(tmp_path / "y", [("test", clip, ["nope"])], fps=25.0, expression_basis="flame")
    with pytest.raises(DataValidationError, match="a list of"):
        write_dataset(tmp_path / "z", [("test", clip, "a")], fps=25.0, expression_basis="flame")
    assert not any(tmp_path.iterdir())  # nothing half-written left behind


def test_validation_names_a_broken_index_and_non_finite_reactions(with_sets):
    path, _ = with_sets
    index = np.load(path / "appropriate_index.npy")
    index[1, 2] = 99  # a recorded listener of no clip
    np.save(path / "appropriate_index.npy", index)
    motion = np.load(path / "appropriate_motion.npy", mmap_mode="r+")
    motion[3, 7] = np.inf
    motion.flush()
    problems = validate_dataset(path)
    assert [p.field for p in problems] == ["ref", "frames", "appropriate motion"]
    assert "appropriate_index.npy row 1" in problems[0].file and "a clip row in [0, 6)" in str(problems[0])
    with pytest.raises(DataValidationError, match="row 1: ref"):
        DyadicDataset(path)
    (path / "appropriate_motion.npy").unlink()
    assert any("no file" in str(p) for p in validate_dataset(path))


def test_adding_sets_to_an_existing_dataset(small_dataset):
    test_ids = load_dataset(small_dataset).split("test").clip_ids
    frames = load_dataset(small_dataset).clip(test_ids[0]).num_frames
    stored = np.ones((frames, 56), np.float32)
    block = add_appropriate_sets(small_dataset, {test_ids[0]: [test_ids[0], stored], test_ids[1]: [test_ids[0]]},
                                 method="hand", params={"why": "test"})  # fmt: skip
    dataset = load_dataset(small_dataset)
    assert block["entries"] == 3 and dataset.appropriate.method == "hand"  # type: ignore[union-attr]
    np.testing.assert_array_equal(dataset.appropriate_listeners(dataset.row_of(test_ids[0]))[1], stored)
    assert validate_dataset(small_dataset) == []
    with pytest.raises(FileExistsError, match="already has appropriate sets"):
        add_appropriate_sets(small_dataset, {test_ids[0]: [test_ids[1]]}, method="again")
    add_appropriate_sets(small_dataset, {test_ids[0]: [test_ids[1]]}, method="again", replace=True)
    names = sorted(p.name for p in small_dataset.glob("appropriate_*"))
    assert len(names) == 1 and names[0].startswith("appropriate_index-")  # the old files are gone
    assert load_dataset(small_dataset).summary()["appropriate"]["entries"] == 1
    with pytest.raises(KeyError, match="no clips"):
        add_appropriate_sets(small_dataset, {"missing": ["x"]}, method="m", replace=True)


def test_neighbour_sets_group_clips_whose_speakers_behave_alike(tmp_path, clip_factory):
    base = [clip_factory(f"c{i}", 20) for i in range(5)]
    # c1 repeats c0's speaker: distance 0, so each is in the other's set at any threshold.
    twin = base[1].__class__(**{**base[1].__dict__, "speaker_motion": base[0].speaker_motion})
    clips = [base[0], twin, *base[2:]]
    path = write_dataset(tmp_path / "n", [("test", c) for c in clips], fps=25.0, expression_basis="flame")
    dataset = load_dataset(path)
    distances = speaker_distances([c.speaker_motion for c in clips])
    assert distances.shape == (5, 5) and distances[0, 1] == 0 and (distances[2:, :2] > 0).all()
    found = neighbour_sets(dataset, ["test"], threshold=0.0)
    assert found.sets["c0"] == ["c0", "c1"] and found.sets["c2"] == ["c2"]
    assert found.sizes["test"] == {"min": 1, "mean": 1.4, "max": 2, "only_itself": 3}
    wide = neighbour_sets(dataset, ["test"], quantile=1.0)
    assert all(len(s) == 5 for s in wide.sets.values()) and wide.thresholds["test"] == pytest.approx(
        distances.max(), rel=1e-5
    )
    with pytest.raises(KeyError, match="no split 'val'"):
        neighbour_sets(dataset, ["val"])
    with pytest.raises(ValueError, match="not both"):
        neighbour_sets(dataset, ["test"], threshold=1.0, quantile=0.5)


def test_dataset_specs_resolve_through_registered_schemes(tmp_path):
    assert resolve_spec("plain/path") == Path("plain/path") and resolve_spec("C:/data") == Path("C:/data")
    register_scheme("testspec", lambda name: tmp_path / name, overwrite=True)
    assert resolve_spec("testspec:abc") == tmp_path / "abc"
    with pytest.raises(ValueError, match="is registered"):
        register_scheme("testspec", "x:y")
    # The data layer names no package above it: `synthetic:` is registered by dyadic_env itself.
    source = "".join(p.read_text() for p in Path(resolve_spec.__code__.co_filename).parent.glob("*.py"))
    assert "dyadic_env.synthetic" not in source
