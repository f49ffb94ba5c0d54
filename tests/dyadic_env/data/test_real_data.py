"""Real data end to end: lone speakers as speaker-only clips, splits by conversation into train/val/test, the
two real DualTalk demo clips imported as shipped, evaluated and rendered (approximately: FLAME pose and jaw)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import DataValidationError, load_dataset, validate_dataset
from dyadic_env.data.importers import import_dataset, read_dualtalk
from dyadic_env.data.importers._common import parse_fractions, split_groups
from dyadic_env.envs import ListenerEnv
from dyadic_env.render.approximate import flame_on_ict, load_expression_map
from experiments.cli import main

DEMO = Path(__file__).resolve().parents[4] / "shared" / "data" / "dualtalk-demo"
needs_demo = pytest.mark.skipif(not DEMO.is_dir(), reason=f"real DualTalk demo files not present at {DEMO}")


def _person(file: Path, rng: np.random.Generator, frames: int) -> None:
    np.savez(file, exp=rng.normal(size=(frames, 50)), pose=rng.normal(0, 0.1, size=(frames, 6)))


@pytest.mark.parametrize(("groups", "expected"), [
    (1, {"train": 1}), (2, {"train": 1, "test": 1}), (3, {"train": 1, "val": 1, "test": 1}),
    (10, {"train": 8, "val": 1, "test": 1}), (25, {"train": 20, "val": 3, "test": 2}),
])  # fmt: skip
def test_split_groups_gives_every_split_a_group_while_there_are_enough(groups, expected):
    names = [f"conv{i}" for i in range(groups)]
    split_of = split_groups(names, seed=0)
    assert Counter(split_of.values()) == expected and set(split_of) == set(names)
    assert split_groups(names, seed=0) == split_of  # seeded
    if groups >= 10:
        assert split_groups(names, seed=1) != split_of


def test_parse_fractions():
    assert parse_fractions("train=0.7, test=0.3") == {"train": 0.7, "test": 0.3}
    for bad in ("train=0.7", "train:0.5,test:0.5", "train=x,test=1"):
        with pytest.raises(ValueError, match="split fractions"):
            parse_fractions(bad)


def test_lone_speakers_import_as_speaker_only_clips(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    _person(src / "a_speaker1.npz", rng, 30)
    _person(src / "a_speaker2.npz", rng, 30)
    _person(src / "b_speaker2.npz", rng, 25)
    with pytest.raises(DataValidationError, match="--unpaired speaker-only"):
        read_dualtalk(src)
    skipped = read_dualtalk(src, unpaired="skip")
    assert skipped.num_clips == 2 and {c.clip_id for _, c in skipped.clips} == {"a/listener1", "a/listener2"}
    result = import_dataset("dualtalk", src, tmp_path / "out", unpaired="speaker-only")
    dataset = load_dataset(result.path)
    assert validate_dataset(result.path) == [] and len(dataset) == 3
    clip = dataset.clip("b/speaker2")
    assert clip.meta["speaker_only"] and clip.num_frames == 25 and not np.asarray(clip.listener_motion).any()
    with np.load(src / "b_speaker2.npz") as person:
        np.testing.assert_allclose(
            clip.speaker_motion, np.concatenate([person["exp"], person["pose"]], 1), 1e-6
        )
    assert any("speaker-only" in note for note in result.notes)
    # The env replays the real speaker of a speaker-only clip.
    split = next(s for s in dataset.splits if "b/speaker2" in dataset.split(s).clip_ids)
    env = ListenerEnv(dataset, split, context_frames=4)
    obs, _ = env.reset(options={"clip_id": "b/speaker2"})
    np.testing.assert_array_equal(obs["speaker_motion"][-1], clip.speaker_motion[0])


def test_data_import_cli_splits_by_conversation(tmp_path, capsys):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    for conv in "abcde":
        _person(src / f"{conv}_speaker1.npz", rng, 20)
        _person(src / f"{conv}_speaker2.npz", rng, 20)
    out = tmp_path / "out"
    args = ["data", "import", str(src), "--format", "dualtalk", "--out", str(out), "--fractions",
            "train=0.6,val=0.2,test=0.2"]  # fmt: skip
    assert main(args) == 0
    assert "split by conversation with seed 0: " in capsys.readouterr().out
    dataset = load_dataset(out)
    per_split = {s: {c.meta["conversation"] for c in dataset.split(s)} for s in dataset.splits}
    assert sorted(len(v) for v in per_split.values()) == [1, 1, 3]
    assert set.union(*per_split.values()) == set("abcde") and sum(map(len, per_split.values())) == 5
    bad = [
        "data",
        "import",
        str(src),
        "--format",
        "dualtalk",
        "--out",
        str(tmp_path / "o2"),
        "--fractions",
        "train=2",
    ]
    assert main(bad) == 2 and "--fractions" in capsys.readouterr().err


def test_flame_on_ict_keeps_pose_and_maps_expression(tmp_path):
    frames = np.random.default_rng(0).normal(size=(5, 56)).astype(np.float32)
    approx = flame_on_ict(frames)
    np.testing.assert_array_equal(approx[:, 50:], frames[:, 50:])
    assert not approx[:, :50].any()
    matrix = np.eye(50, dtype=np.float32)
    np.save(tmp_path / "map.npy", matrix)
    mapped = flame_on_ict(frames, load_expression_map(tmp_path / "map.npy"))
    np.testing.assert_array_equal(mapped[:, :50], np.clip(frames[:, :50], 0, 1))
    np.save(tmp_path / "bad.npy", np.eye(3))
    with pytest.raises(ValueError, match=r"expected finite floats of shape \(50, 50\)"):
        load_expression_map(tmp_path / "bad.npy")


@needs_demo
@pytest.mark.render
def test_the_dualtalk_demo_clips_import_as_shipped_evaluate_and_render(tmp_path, capsys):
    out = tmp_path / "demo"
    imp = [
        "data",
        "import",
        str(DEMO),
        "--format",
        "dualtalk",
        "--unpaired",
        "speaker-only",
        "--out",
        str(out),
    ]
    assert main(imp) == 0
    dataset = load_dataset(out)
    assert dataset.expression_basis == "flame" and validate_dataset(out) == []
    assert {s: len(dataset.split(s)) for s in dataset.splits} == {"train": 1, "test": 1}
    assert sorted(c.num_frames for c in dataset) == [587, 750]
    tokenizer = dataset.tokenizer()  # fitted on the real speaker, not the placeholder listener
    assert (tokenizer.high - tokenizer.low)[:50].min() > 0.1
    capsys.readouterr()

    run = tmp_path / "run"
    assert (
        main(["eval", "--dataset", str(out), "--agent", "random,mean,nn,mirror", "--run-dir", str(run)]) == 0
    )
    printed = capsys.readouterr().out
    assert "1 of the 1 clips are speaker-only" in printed
    rows = json.loads((run / "results.json").read_text())["rows"]
    assert all(np.isfinite(rows[a]["L2"]) for a in ("random", "mean", "nn", "mirror"))

    clip_id = dataset.split("test").clip_ids[0]
    sheet = tmp_path / "sheet.png"
    render = ["render", "--dataset", str(out), "--clip", clip_id, "--agent", "gt,mirror", "--sheet", str(sheet),
              "--size", "64", "--sheet-frames", "3"]  # fmt: skip
    assert main(render) == 2 and "--approximate" in capsys.readouterr().err  # exact FLAME needs the model
    assert main([*render, "--approximate"]) == 0
    from PIL import Image

    image = np.asarray(Image.open(sheet)).astype(int)
    cell = 64 + 4
    assert image.shape[1] == 3 * cell + 4
    # The speaker's row (the first): its head and jaw move between the first and the last time shown.
    first, last = image[4 : 4 + 64, 4 : 4 + 64], image[4 : 4 + 64, 4 + 2 * cell : 4 + 2 * cell + 64]
    assert np.abs(first - last).max() > 30
