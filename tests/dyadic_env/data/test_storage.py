"""The on-disk format: round trips, laziness, the fitted tokenizer, and atomic writes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import Clip, DataValidationError, DyadicDataset, Word, load_dataset, write_dataset
from dyadic_env.data.writer import _evenly_spaced_frames
from dyadic_env.tokenizer import ActionTokenizer


def test_round_trip_keeps_every_field(tmp_path, clip_factory):
    meta = {"listener_kind": "appropriate", "score": np.float64(0.5), "ids": np.arange(2)}
    clips = [
        ("train", clip_factory("a", 10, features=3, affect=True, meta=meta)),
        ("test", clip_factory("b", 15, features=3, affect=True, fps=30.0)),
    ]
    dataset = load_dataset(write_dataset(tmp_path / "d", clips, fps=25.0, expression_basis="ict-arkit"))
    assert dataset.splits == ("train", "test")
    assert dataset.expression_basis == "ict-arkit" and dataset.fps == 25.0
    assert dataset.feature_dim == 3 and dataset.has_affect
    for (_, original), stored in zip(clips, [dataset.split("train")[0], dataset.split("test")[0]]):
        assert stored.clip_id == original.clip_id and stored.fps == original.fps
        for field in (
            "speaker_motion",
            "listener_motion",
            "speaker_features",
            "speaker_affect",
            "listener_affect",
        ):
            np.testing.assert_array_equal(getattr(stored, field), getattr(original, field))
        assert stored.speaker_words == original.speaker_words
        assert (stored.speaker_id, stored.listener_id, stored.source) == (
            original.speaker_id, original.listener_id, original.source,
        )  # fmt: skip
    assert dataset.clip("a").meta == {"listener_kind": "appropriate", "score": 0.5, "ids": [0, 1]}


def test_arrays_are_read_only_memory_maps(small_dataset):
    dataset = load_dataset(small_dataset)
    assert all(isinstance(a, np.memmap) for a in dataset.arrays.values())
    assert isinstance(dataset.index, np.memmap) and isinstance(dataset.clip_id_array, np.memmap)
    clip = dataset.split("train")[1]
    assert isinstance(clip.listener_motion, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        clip.listener_motion[0, 0] = 1.0


def test_split_sequences_and_lookup(small_dataset):
    dataset = load_dataset(small_dataset)
    train = dataset.split("train")
    assert len(train) == 6 and len(dataset) == 10
    assert train.clip_ids == [f"train-{i}" for i in range(6)]
    assert train[-1].clip_id == "train-5" and [c.clip_id for c in train[1:3]] == ["train-1", "train-2"]
    assert [c.num_frames for c in train] == [12, 14, 16, 18, 20, 22]
    assert train.num_frames == sum([12, 14, 16, 18, 20, 22]) and train.lengths.tolist() == [
        12,
        14,
        16,
        18,
        20,
        22,
    ]
    assert dataset.clip("test-1").num_frames == 14
    with pytest.raises(KeyError, match=r"no split 'dev'.*'train', 'val', 'test'"):
        dataset.split("dev")
    with pytest.raises(KeyError, match="no clip 'nope'"):
        dataset.clip("nope")
    with pytest.raises(IndexError):
        train[6]


def test_summary_counts(small_dataset):
    summary = load_dataset(small_dataset).summary()
    assert summary["clips"] == 10 and summary["splits"] == {"train": 6, "val": 2, "test": 2}
    lengths = [12 + 2 * i for i in range(6)] + [12, 14] * 2
    assert summary["frames"] == sum(lengths) and summary["clip_frames_min_mean_max"] == [
        12,
        np.mean(lengths),
        22,
    ]
    assert summary["words"] == 20 and summary["seconds"] == pytest.approx(sum(lengths) / 25.0)


def test_tokenizer_is_fitted_on_the_train_split(small_dataset):
    dataset = load_dataset(small_dataset)
    expected = ActionTokenizer.fit(np.concatenate([c.listener_motion for c in dataset.split("train")]))
    tokenizer = dataset.tokenizer()
    np.testing.assert_allclose(tokenizer.low, expected.low)
    np.testing.assert_allclose(tokenizer.high, expected.high)
    assert dataset.manifest["tokenizer"] == {"file": "tokenizer.json", "fitted_on": "train", "frames": 102}


def test_tokenizer_uses_all_clips_without_a_train_split(tmp_path, clip_factory):
    clips = [("a", clip_factory("x", 10)), ("b", clip_factory("y", 12))]
    dataset = load_dataset(write_dataset(tmp_path / "d", clips, fps=25.0, expression_basis="flame"))
    expected = ActionTokenizer.fit(np.concatenate([c.listener_motion for _, c in clips]))
    np.testing.assert_allclose(dataset.tokenizer().low, expected.low)
    assert dataset.manifest["tokenizer"]["fitted_on"] == "all"
    no_tokenizer = write_dataset(
        tmp_path / "e", clips, fps=25.0, expression_basis="flame", fit_tokenizer=False
    )
    assert load_dataset(no_tokenizer).tokenizer() is None


def test_evenly_spaced_frames_map_positions_into_clips():
    offsets, lengths = np.array([100, 5, 50]), np.array([3, 2, 4])
    np.testing.assert_array_equal(
        _evenly_spaced_frames(offsets, lengths, 100), [100, 101, 102, 5, 6, 50, 51, 52, 53]
    )
    sub = _evenly_spaced_frames(offsets, lengths, 3)
    np.testing.assert_array_equal(sub, [100, 6, 53])


def test_writer_streams_a_generator(tmp_path, clip_factory):
    def clips():
        for i in range(5):
            yield ("train", clip_factory(f"g{i}", 8))

    dataset = load_dataset(write_dataset(tmp_path / "d", clips(), fps=25.0, expression_basis="flame"))
    assert dataset.split("train").clip_ids == [f"g{i}" for i in range(5)]


def test_failed_write_leaves_nothing_behind(tmp_path, clip_factory):
    bad = clip_factory("bad", 10)
    bad.listener_motion[3, 7] = np.nan
    keep = tmp_path / "d.partial"  # a user's folder that only looks like a temporary one
    keep.mkdir()
    (keep / "mine.txt").write_text("keep me")
    with pytest.raises(DataValidationError, match=r"clip 'bad'.*listener_motion.*nan at frame 3, dim 7"):
        write_dataset(tmp_path / "d", [("train", clip_factory("ok", 10)), ("train", bad)], fps=25.0,
                      expression_basis="flame")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.partial"]
    assert (keep / "mine.txt").read_text() == "keep me"


def test_write_refuses_a_non_empty_target(tmp_path, clip_factory):
    out = tmp_path / "d"
    out.mkdir()
    (out / "data.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        write_dataset(out, [("train", clip_factory("a"))], fps=25.0, expression_basis="flame")
    assert (out / "data.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_dataset(
        write_dataset(empty, [("train", clip_factory("a"))], fps=25.0, expression_basis="flame")
    )


@pytest.mark.parametrize(
    ("clips", "error"),
    [
        ([("train", "id-b"), ("train", "id-b")], "'id-b' again"),
        ([("", "id-a")], "split: expected a non-empty split name"),
    ],
)
def test_writer_rejects_bad_ids_and_splits(tmp_path, clip_factory, clips, error):
    with pytest.raises(DataValidationError, match=error):
        write_dataset(
            tmp_path / "d", [(s, clip_factory(c)) for s, c in clips], fps=25.0, expression_basis="flame"
        )
    assert not (tmp_path / "d").exists()


def test_writer_rejects_mixed_optional_fields_and_bad_arguments(tmp_path, clip_factory):
    mixed = [("train", clip_factory("a", affect=True)), ("train", clip_factory("b"))]
    with pytest.raises(DataValidationError, match=r"optional arrays.*speaker_affect.*found none"):
        write_dataset(tmp_path / "d", mixed, fps=25.0, expression_basis="flame")
    with pytest.raises(ValueError, match="expression_basis"):
        write_dataset(tmp_path / "d", [("train", clip_factory("a"))], fps=25.0, expression_basis="arkit")
    with pytest.raises(ValueError, match=r"fps"):
        write_dataset(tmp_path / "d", [("train", clip_factory("a"))], fps=0, expression_basis="flame")
    with pytest.raises(ValueError, match="no clips"):
        write_dataset(tmp_path / "d", [], fps=25.0, expression_basis="flame")
    with pytest.raises(TypeError, match=r"\(split, Clip\) pair"):
        write_dataset(tmp_path / "d", [clip_factory("a")], fps=25.0, expression_basis="flame")
    with pytest.raises(ValueError, match="reserved"):
        write_dataset(tmp_path / "d", [("train", clip_factory("a"))], fps=25.0, expression_basis="flame",
                      extra_manifest={"fps": 3})  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_dataset_pickles_as_its_path(small_dataset):
    dataset = load_dataset(small_dataset)
    data = pickle.dumps(dataset)
    assert len(data) < 1000
    again = pickle.loads(data)
    np.testing.assert_array_equal(again.clip("val-1").listener_motion, dataset.clip("val-1").listener_motion)


def test_load_dataset_passes_an_open_dataset_through_and_names_a_missing_dir(small_dataset, tmp_path):
    dataset = load_dataset(small_dataset)
    assert load_dataset(dataset) is dataset and isinstance(dataset, DyadicDataset)
    with pytest.raises(FileNotFoundError, match="no such dataset directory"):
        load_dataset(tmp_path / "missing")


def test_manifest_records_files_and_extra_keys(tmp_path, clip_factory):
    path = write_dataset(tmp_path / "d", [("train", clip_factory("a", 10, words=(Word(0.0, 0.4, "hi"),)))],
                         fps=25.0, expression_basis="flame", extra_manifest={"generator": {"preset": "tiny"}})  # fmt: skip
    manifest = json.loads((path / "manifest.json").read_text())
    assert (
        manifest["generator"] == {"preset": "tiny"}
        and manifest["num_clips"] == 1
        and manifest["num_frames"] == 10
    )
    assert manifest["files"]["clips.jsonl"]["bytes"] == (path / "clips.jsonl").stat().st_size
    assert manifest["arrays"]["listener_motion"] == {
        "file": "listener_motion.npy",
        "shape": [10, 56],
        "dtype": "float32",
    }
    assert not any(p.name.endswith(".partial") for p in Path(tmp_path).iterdir())


def test_clip_with_listener_replaces_trajectory(clip_factory):
    clip: Clip = clip_factory("a", 10, affect=True)
    other = clip.with_listener(np.zeros((10, 56)))
    assert other.listener_affect is None and other.listener_motion.dtype == np.float32
    with pytest.raises(ValueError, match=r"expected shape \(10, 56\)"):
        clip.with_listener(np.zeros((9, 56)))
