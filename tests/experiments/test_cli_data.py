"""`dyadic data`: synth, import, info and validate, through the real command-line entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import Clip, Word, write_dataset
from experiments.cli import main


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    pairs = []
    for i, split in enumerate(["train"] * 4 + ["test"] * 2):
        motion = rng.normal(size=(2, 25, 56)).astype(np.float32)
        words = (Word(0.1, 0.3, "hello"), Word(0.4, 0.8, "there"))
        pairs.append((split, Clip(f"{split}-{i}", 25.0, motion[0], motion[1], words)))
    return write_dataset(tmp_path / "d", pairs, fps=25.0, expression_basis="flame", name="cli-test")


def test_info_prints_a_summary_and_json(dataset, capsys):
    assert main(["data", "info", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "cli-test" in out and "clips      6: train 4, test 2" in out and "words      12" in out
    assert "tokenizer  tokenizer.json fitted on train (100 frames)" in out
    assert main(["data", "info", str(dataset), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"] == {"train": 4, "test": 2} and summary["frames"] == 150
    assert (
        0 < summary["tokenizer_round_trip_first_clip"]["mean"] < 0.05
    )  # N(0,1) data, 256 bins over about 4.6


def test_validate_accepts_a_valid_dataset(dataset, capsys):
    assert main(["data", "validate", str(dataset)]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")


def _corrupt(path: Path) -> None:
    """NaN in an array, a truncated .npy, a bad manifest key, and a word outside the clip's time."""
    listener = np.load(path / "listener_motion.npy", mmap_mode="r+")
    listener[30, 5] = np.nan  # frame 5 of clip train-1
    listener.flush()
    data = (path / "speaker_motion.npy").read_bytes()
    (path / "speaker_motion.npy").write_bytes(data[: len(data) - 1000])
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["expression_basis"] = "blendshapes"
    (path / "manifest.json").write_text(json.dumps(manifest))
    lines = (path / "clips.jsonl").read_text()
    assert lines.count('[0.4, 0.8, "there"]') == 6
    (path / "clips.jsonl").write_text(lines.replace('[0.4, 0.8, "there"]', '[0.4, 7.8, "there"]', 1))


def test_validate_names_every_bad_file_and_field(dataset, tmp_path, capsys):
    copy = Path(shutil.copytree(dataset, tmp_path / "corrupt"))
    _corrupt(copy)
    assert main(["data", "validate", str(copy)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{copy / 'listener_motion.npy'}: listener_motion (clip 'train-1'): expected finite values, found nan at frame 5, dim 5"
        in out
    )
    assert f"{copy / 'speaker_motion.npy'}: speaker_motion: expected a readable .npy" in out
    assert (
        f"{copy / 'manifest.json'}: expression_basis: expected one of ('flame', 'ict-arkit'), found 'blendshapes'"
        in out
    )
    assert (
        f"{copy / 'clips.jsonl'} line 1 (clip 'train-0'): words[1] ('there'): expected 0 <= start <= end <= 1.000 s"
        in out
    )
    assert out.strip().endswith("4 problem(s)")
    assert main(["data", "validate", str(copy), "--json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert {(Path(p["file"].split(" ")[0]).name, p["field"].split(" ")[0]) for p in problems} == {
        ("listener_motion.npy", "listener_motion"), ("speaker_motion.npy", "speaker_motion"),
        ("manifest.json", "expression_basis"), ("clips.jsonl", "words[1]"),
    }  # fmt: skip


def test_info_on_a_corrupt_dataset_is_a_clear_error(dataset, tmp_path, capsys):
    copy = Path(shutil.copytree(dataset, tmp_path / "corrupt"))
    (copy / "manifest.json").unlink()
    assert main(["data", "info", str(copy)]) == 2
    assert "manifest.json: manifest.json: expected a manifest file, found no file" in capsys.readouterr().err


def test_import_dualtalk_then_info(tmp_path, capsys):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    for person, frames in (("1", 40), ("2", 36)):
        np.savez(
            src / f"talk_speaker{person}.npz",
            exp=rng.normal(size=(frames, 50)),
            pose=rng.normal(size=(frames, 6)),
        )
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "dualtalk",
                str(src),
                "--out",
                str(tmp_path / "out"),
                "--seed",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "imported 2 clips (dualtalk)" in out and "trimmed 1 conversation(s)" in out
    assert "clips      2: train 2" in out and "expression basis flame" in out


def test_import_user_mistakes_exit_2(dataset, tmp_path, capsys):
    assert (
        main(["data", "import", "--format", "l2l", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["data", "import", "--format", "dualtalk", str(tmp_path), "--out", str(dataset)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        main(
            ["data", "import", "--format", "dualtalk", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "files named <conv>_speaker1.npz and <conv>_speaker2.npz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main(["data", "import", "--format", "csv", str(tmp_path), "--out", str(tmp_path / "o")])


def test_synth_writes_a_valid_preset(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out), "--seed", "3"]) == 0
    assert "wrote synthetic preset 'tiny'" in capsys.readouterr().out
    assert main(["data", "validate", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["synthetic"]["seed"] == 3 and manifest["tokenizer"]["fitted_on"] == "train"
    assert main(["data", "synth", "--preset", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "--preset 'huge': expected one of tiny, small, full" in capsys.readouterr().err


def test_appropriate_builds_neighbour_sets_and_reports_them(dataset, capsys):
    assert main(["data", "appropriate", str(dataset), "--splits", "test", "--quantile", "1"]) == 0
    out = capsys.readouterr().out
    assert "test: threshold" in out and "(quantile 1 of the pair distances)" in out
    assert "set size min 2, mean 2.00, max 2" in out and "wrote 4 entries for 2 clips" in out
    assert main(["data", "validate", str(dataset)]) == 0
    assert main(["data", "info", str(dataset)]) == 0
    assert (
        "appropriate sets  neighbours: 2 clips, 4 reactions (0 stored, 4 recorded" in capsys.readouterr().out
    )
    assert main(["data", "appropriate", str(dataset), "--splits", "test"]) == 2
    assert "already has appropriate sets (neighbours); pass --replace" in capsys.readouterr().err
    assert (
        main(["data", "appropriate", str(dataset), "--splits", "test", "--threshold", "0", "--replace"]) == 0
    )
    assert (
        "threshold 0; set size min 1, mean 1.00, max 1; 2 clips have only their own listener"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--splits", "val"], "no split 'val'"),
        (["--quantile", "0"], "quantile: expected a share of clip pairs in (0, 1]"),
        (["--threshold", "-1"], "threshold: expected a distance >= 0"),
    ],
)
def test_appropriate_user_errors(dataset, capsys, argv, message):
    assert main(["data", "appropriate", str(dataset), *argv]) == 2
    assert message in capsys.readouterr().err


def test_synth_without_appropriate_sets(tmp_path, capsys):
    assert (
        main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "t"), "--appropriate", "0"]) == 0
    )
    assert "appropriate sets" not in capsys.readouterr().out
    assert (
        main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "u"), "--appropriate", "-1"]) == 2
    )
    assert "--appropriate -1: expected a set size >= 0" in capsys.readouterr().err
