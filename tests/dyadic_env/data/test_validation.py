"""Validation names the file, the field, what was expected and what was found, for every problem."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import (
    DataValidationError,
    Word,
    clip_problems,
    load_dataset,
    validate_clip,
    validate_dataset,
)


@pytest.mark.parametrize(
    ("change", "field", "expected", "found"),
    [
        (
            {"speaker_motion": np.zeros((20, 50), np.float32)},
            "speaker_motion",
            "shape (T, 56)",
            "shape (20, 50)",
        ),
        (
            {"listener_motion": np.zeros((20, 56), np.float64)},
            "listener_motion",
            "dtype float32",
            "dtype float64",
        ),
        ({"listener_motion": np.zeros((19, 56), np.float32)}, "listener_motion", "20 frames", "19 frames"),
        (
            {"speaker_affect": np.zeros((20, 3), np.float32)},
            "speaker_affect",
            "shape (20, 2)",
            "shape (20, 3)",
        ),
        ({"speaker_features": [[1.0]]}, "speaker_features", "a numpy array", "list"),
        ({"fps": 0.0}, "fps", "a frame rate in (0, 1000]", "0.0"),
        ({"fps": float("nan")}, "fps", "a frame rate", "nan"),
        ({"fps": "25"}, "fps", "a frame rate", "not a number"),
        ({"speaker_words": (Word(0.5, 2.0, "late"),)}, "speaker_words[0] ('late')", "<= 0.800 s", "end=2.0"),
        (
            {"speaker_words": (Word(-0.1, 0.2, "early"),)},
            "speaker_words[0] ('early')",
            "0 <= start",
            "start=-0.1",
        ),
        (
            {"speaker_words": (Word(0.3, 0.2, "backwards"),)},
            "speaker_words[0] ('backwards')",
            "start <= end",
            "start=0.3",
        ),
        ({"speaker_words": (Word(0.0, 0.2, " "),)}, "speaker_words[0]", "a non-empty word", "' '"),
        ({"clip_id": "a\nb"}, "clip_id", "single-line", "'a\\nb'"),
    ],
)
def test_clip_problem_names_field_expected_and_found(clip_factory, change, field, expected, found):
    clip = replace(clip_factory("c", 20), **change)
    problems = clip_problems(clip)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.field == field and expected in problem.expected and found in problem.found
    with pytest.raises(DataValidationError, match="clip 'c'" if field != "clip_id" else "clip"):
        validate_clip(clip)


def test_non_finite_values_are_located(clip_factory):
    clip = clip_factory("c", 20)
    clip.listener_motion[4, 9] = np.inf
    clip.listener_motion[6, 0] = np.nan
    (problem,) = clip_problems(clip)
    assert (
        str(problem)
        == "clip 'c': listener_motion: expected finite values, found inf at frame 4, dim 9 (2 non-finite values)"
    )


def test_every_problem_of_a_clip_is_listed(clip_factory):
    clip = replace(clip_factory("c", 20), fps=-1.0, speaker_affect=np.zeros((20, 3), np.float32))
    clip.speaker_motion[0, 0] = np.nan
    assert {p.field for p in clip_problems(clip)} == {"fps", "speaker_motion", "speaker_affect"}


def test_error_pickles_and_serializes():
    error = DataValidationError("f.npy", "x", "finite values", "nan", "fix it")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) == "f.npy: x: expected finite values, found nan. fix it"
    assert again.to_dict() == {
        "file": "f.npy",
        "field": "x",
        "expected": "finite values",
        "found": "nan",
        "hint": "fix it",
    }


def test_valid_dataset_has_no_problems(small_dataset):
    assert validate_dataset(small_dataset) == []


def _copy(dataset: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / name))


def _set_nan(path: Path, frame: int) -> None:
    array = np.load(path / "listener_motion.npy", mmap_mode="r+")
    array[frame, 3] = np.nan
    array.flush()


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _edit_manifest(path: Path, **changes) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    for key, value in changes.items():
        if value is None:
            del manifest[key]
        else:
            manifest[key] = value
    (path / "manifest.json").write_text(json.dumps(manifest))


def _move_word_out_of_time(path: Path) -> None:
    # Same byte length, so only the word's time is wrong (not the index's byte ranges).
    text = (path / "clips.jsonl").read_text()
    line = text.splitlines()[7]  # val-1, 14 frames = 0.56 s
    assert '[0.1, 0.2, "there"]' in line
    (path / "clips.jsonl").write_text(
        text.replace(line, line.replace('[0.1, 0.2, "there"]', '[0.1, 9.2, "there"]'))
    )


def _replace_array(path: Path, name: str, array: np.ndarray) -> None:
    np.save(path / f"{name}.npy", array)


CORRUPTIONS = {
    "nan": (lambda p: _set_nan(p, 13), "listener_motion.npy", "listener_motion (clip 'train-1')", "nan at frame 1, dim 3"),
    "truncated npy": (lambda p: _truncate(p / "speaker_motion.npy"), "speaker_motion.npy", "speaker_motion", "unreadable"),
    "missing manifest key": (lambda p: _edit_manifest(p, fps=None), "manifest.json", "fps", "missing key"),
    "bad fps": (lambda p: _edit_manifest(p, fps=-25), "manifest.json", "fps", "-25"),
    "unknown basis": (lambda p: _edit_manifest(p, expression_basis="arkit"), "manifest.json", "expression_basis", "arkit"),
    "word outside time": (_move_word_out_of_time, "clips.jsonl line 8 (clip 'val-1')", "words[1] ('there')", "end=9.2"),
    "wrong dtype": (lambda p: _replace_array(p, "listener_motion", np.zeros((154, 56))), "listener_motion.npy",
                    "listener_motion", "dtype float64"),
    "wrong shape": (lambda p: _replace_array(p, "speaker_motion", np.zeros((154, 55), np.float32)), "speaker_motion.npy",
                    "speaker_motion", "shape (154, 55)"),
    "different lengths": (lambda p: _replace_array(p, "listener_motion", np.zeros((153, 56), np.float32)),
                          "listener_motion.npy", "listener_motion", "153 frames"),
    "missing index": (lambda p: (p / "clip_index.npy").unlink(), "clip_index.npy", "clip index", "no file"),
    "truncated clip lines": (lambda p: _truncate(p / "clips.jsonl"), "clips.jsonl", "clip entries", "bytes"),
    "unreadable manifest": (lambda p: (p / "manifest.json").write_text("{"), "manifest.json", "manifest.json", "unreadable"),
}  # fmt: skip


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corruption_is_named_by_file_and_field(small_dataset, tmp_path, corruption):
    corrupt, file, field, found = CORRUPTIONS[corruption]
    path = _copy(small_dataset, tmp_path, "copy")
    corrupt(path)
    problems = validate_dataset(path)
    matching = [p for p in problems if p.file.endswith(file) or file in p.file]
    assert any(p.field == field and found in p.found for p in matching), problems


def test_all_problems_of_a_dataset_are_listed_together(small_dataset, tmp_path):
    path = _copy(small_dataset, tmp_path, "copy")
    for corruption in ("nan", "truncated npy", "missing manifest key", "word outside time"):
        CORRUPTIONS[corruption][0](path)
    fields = {p.field for p in validate_dataset(path)}
    assert {"listener_motion (clip 'train-1')", "speaker_motion", "fps"} <= fields


def test_loading_a_corrupt_dataset_fails_with_the_file_named(small_dataset, tmp_path):
    path = _copy(small_dataset, tmp_path, "copy")
    _truncate(path / "listener_motion.npy")
    with pytest.raises(
        DataValidationError, match=r"listener_motion\.npy: listener_motion: expected a readable \.npy"
    ):
        load_dataset(path)
    path = _copy(small_dataset, tmp_path, "copy2")
    _edit_manifest(path, splits=None)
    with pytest.raises(
        DataValidationError,
        match=r"manifest\.json: splits: expected a key of the manifest, found missing key",
    ):
        load_dataset(path)


def test_broken_clip_line_is_reported_when_the_clip_is_read(small_dataset, tmp_path):
    path = _copy(small_dataset, tmp_path, "copy")
    raw = bytearray((path / "clips.jsonl").read_bytes())
    raw[0:1] = b"#"  # same size, first line no longer JSON
    (path / "clips.jsonl").write_bytes(bytes(raw))
    dataset = load_dataset(path)
    assert dataset.clip("train-1").clip_id == "train-1"
    with pytest.raises(
        DataValidationError, match=r"clips\.jsonl line 1: clip entry: expected one JSON object"
    ):
        dataset.clip("train-0")
    assert any(p.field == "clip entry" for p in validate_dataset(path))
