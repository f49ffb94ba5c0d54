"""Importers of Learning-to-Listen, LM-listener and DualTalk, on fixtures built here in each format."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import DataValidationError, Word, load_dataset, validate_dataset
from dyadic_env.data.importers import import_dataset, read_dualtalk, read_l2l, read_lm_listener

DEMO = Path(__file__).resolve().parents[4] / "shared" / "data" / "dualtalk-demo"


# ---------------------------------------------------------------- Learning-to-Listen


def _l2l_folder(
    folder: Path, rng: np.random.Generator, n0: int, n1: int, videos: list[str] | None = None
) -> dict:
    """p0 listens in n0 windows (p1 speaking), p1 listens in n1 windows (p0 speaking); 8 frames each."""
    folder.mkdir(parents=True)
    arrays = {
        "p0_list": rng.normal(size=(n0, 8, 184)), "p1_speak": rng.normal(size=(n0, 8, 184)),
        "p1_list": rng.normal(size=(n1, 8, 184)), "p0_speak": rng.normal(size=(n1, 8, 184)),
    }  # fmt: skip
    for key, array in arrays.items():
        np.save(folder / f"{key}_faces_clean_deca.npy", array.astype(np.float32))
    if videos is not None:
        names = np.array([[[v, "x", str(f)] for f in range(8)] for v in videos])
        np.save(folder / "p1_speak_files_clean_deca.npy", names)
    return arrays


def test_l2l_pairs_each_listener_window_with_the_other_person_speaking(tmp_path):
    rng = np.random.default_rng(0)
    arrays = _l2l_folder(tmp_path / "src" / "trevor" / "train", rng, 5, 3)
    data = read_l2l(tmp_path / "src")
    clips = dict((clip.clip_id, (split, clip)) for split, clip in data.clips)
    assert data.num_clips == len(clips) == 8 and data.fps == 30.0 and data.expression_basis == "flame"
    split, clip = clips["trevor/train/p0_list/000002"]
    assert split == "train" and clip.listener_id == "trevor/train:p0" and clip.speaker_id == "trevor/train:p1"
    np.testing.assert_array_equal(clip.listener_motion, arrays["p0_list"][2, :, :56].astype(np.float32))
    np.testing.assert_array_equal(clip.speaker_motion, arrays["p1_speak"][2, :, :56].astype(np.float32))
    _, clip = clips["trevor/train/p1_list/000001"]
    np.testing.assert_array_equal(clip.speaker_motion, arrays["p0_speak"][1, :, :56].astype(np.float32))


def test_l2l_folders_without_split_names_split_by_video(tmp_path):
    rng = np.random.default_rng(1)
    videos = [f"video{i // 2}" for i in range(40)]  # 20 videos, 2 windows each
    _l2l_folder(tmp_path / "src" / "conan", rng, 40, 0, videos)
    data = read_l2l(tmp_path / "src", seed=5)
    by_video: dict[str, set[str]] = {}
    for split, clip in data.clips:
        by_video.setdefault(clip.meta["video"], set()).add(split)
    assert all(len(splits) == 1 for splits in by_video.values())
    assert Counter(next(iter(s)) for s in by_video.values()) == {"train": 16, "val": 2, "test": 2}
    assert any("split by source video with seed 5" in note for note in data.notes)


def test_l2l_import_writes_a_valid_dataset(tmp_path):
    _l2l_folder(tmp_path / "src" / "trevor" / "test", np.random.default_rng(2), 4, 2)
    result = import_dataset("l2l", tmp_path / "src", tmp_path / "out")
    dataset = load_dataset(result.path)
    assert result.num_clips == len(dataset) == 6 and dataset.splits == ("test",) and dataset.fps == 30.0
    assert dataset.manifest["import"]["format"] == "l2l" and validate_dataset(result.path) == []


@pytest.mark.parametrize(
    ("corrupt", "file", "message"),
    [
        (lambda f: (f / "p1_speak_faces_clean_deca.npy").unlink(), "p1_speak_faces_clean_deca.npy", "no file"),
        (lambda f: np.save(f / "p1_speak_faces_clean_deca.npy", np.zeros((4, 8, 184), np.float32)),
         "p1_speak_faces_clean_deca.npy", r"shape \(5, 8, \.\.\.\) like p0_list.*found shape \(4, 8, 184\)"),
        (lambda f: np.save(f / "p0_list_faces_clean_deca.npy", np.zeros((5, 8, 40), np.float32)),
         "p0_list_faces_clean_deca.npy", r"shape \(N, T, >= 56\).*\(5, 8, 40\)"),
        (lambda f: (f / "p0_list_faces_clean_deca.npy").write_bytes(b"\x93NUMPY garbage"),
         "p0_list_faces_clean_deca.npy", "unreadable"),
    ],
)  # fmt: skip
def test_l2l_malformed_inputs_name_the_file(tmp_path, corrupt, file, message):
    folder = tmp_path / "src" / "train"
    _l2l_folder(folder, np.random.default_rng(3), 5, 3)
    corrupt(folder)
    with pytest.raises(DataValidationError, match=message) as error:
        data = read_l2l(tmp_path / "src")
        list(data.clips)
    assert error.value.file.endswith(file)


def test_l2l_non_finite_window_names_file_and_window(tmp_path):
    folder = tmp_path / "src" / "train"
    arrays = _l2l_folder(folder, np.random.default_rng(4), 5, 0)
    arrays["p1_speak"][3, 2, 10] = np.nan
    np.save(folder / "p1_speak_faces_clean_deca.npy", arrays["p1_speak"].astype(np.float32))
    with pytest.raises(
        DataValidationError, match=r"p1_speak_faces_clean_deca\.npy: window 3 .*nan at frame 2, dim 10"
    ):
        import_dataset("l2l", tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataValidationError, match="Learning-to-Listen files"):
        read_l2l(tmp_path / "empty")


# ---------------------------------------------------------------- LM-listener

torch = pytest.importorskip("torch")


def _segment(
    rng: np.random.Generator, frames: int, start_frame: int | None = 60, fname: str = "trevor/vid1"
) -> dict:
    segment = {
        "p0_exp": torch.tensor(rng.normal(size=(frames, 50)), dtype=torch.float32),
        "p0_pose": torch.tensor(rng.normal(size=(frames, 6)), dtype=torch.float32),
        "p1_exp": torch.tensor(rng.normal(size=(frames, 50)), dtype=torch.float32),
        "p1_pose": torch.tensor(rng.normal(size=(frames, 6)), dtype=torch.float32),
        "fname": fname,
        "before_words": [{"text": "so", "end": 1.5}],
        "during_words": [{"text": "I", "end": 2.2}, {"text": "went", "start": 2.3, "end": 2.6},
                         {"text": "home", "end": 2.9}, {"text": "later", "end": 9.0}],
    }  # fmt: skip
    if start_frame is not None:
        segment["split_start_frame"] = start_frame
        segment["split_end_frame"] = start_frame + frames
    return segment


def _save_segments(folder: Path, **splits: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, segments in splits.items():
        torch.save(segments, folder / f"segments_{split}.pth")
    return folder


def test_lm_listener_frames_words_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    train = [_segment(rng, 30), _segment(rng, 30, start_frame=120)]
    src = _save_segments(tmp_path / "src", train=train, test=[_segment(rng, 90, start_frame=None, fname="")])
    data = read_lm_listener(src)
    clips = list(data.clips)
    assert [split for split, _ in clips] == ["test", "train", "train"] and data.fps == 30.0
    _, clip = clips[1]
    assert clip.clip_id == "trevor/vid1_60" and clip.listener_id == "trevor/vid1:p0"
    np.testing.assert_allclose(clip.listener_motion[:, :50], train[0]["p0_exp"].numpy())
    np.testing.assert_allclose(clip.listener_motion[:, 50:], train[0]["p0_pose"].numpy())
    np.testing.assert_allclose(clip.speaker_motion[:, 50:], train[0]["p1_pose"].numpy())
    # Clip starts at 60 / 30 = 2 s: "I" ends at 0.2 s (start from the default word length, not before 0),
    # "went" keeps its start, "later" (9 s) ends after the 1 s clip and is dropped.
    assert [(round(w.start, 4), round(w.end, 4), w.text) for w in clip.speaker_words] == [
        (0.0, 0.2, "I"), (0.3, 0.6, "went"), (0.6, 0.9, "home"),
    ]  # fmt: skip
    assert clip.meta == {"source_start_s": 2.0, "video": "trevor/vid1", "words_before": [[-0.5, "so"]]}
    # The second segment starts at 4 s: every word ended before it.
    assert clips[2][1].speaker_words == () and len(clips[2][1].meta["words_before"]) == 4
    # Without a start frame, times are taken as relative to the segment.
    assert clips[0][1].clip_id == "test/000000"
    assert [w.text for w in clips[0][1].speaker_words] == ["so", "I", "went", "home"]
    assert any("dropped 3 words" in note for note in data.notes)  # "later" of each segment


def test_lm_listener_import_keeps_the_given_splits(tmp_path):
    rng = np.random.default_rng(1)
    src = _save_segments(tmp_path / "src", train=[_segment(rng, 30)], val=[_segment(rng, 30, 90)])
    result = import_dataset("lm-listener", src, tmp_path / "out")
    dataset = load_dataset(result.path)
    assert set(dataset.splits) == {"train", "val"} and validate_dataset(result.path) == []
    assert dataset.clip("trevor/vid1_60").speaker_words[-1] == Word(0.6, 0.9, "home")


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda s: s.pop("p1_pose"), "segments[0].p1_pose", r"missing key \(keys present"),
        (lambda s: s.update(p1_exp=s["p1_exp"][:-1]), "segments[0].p1_exp", "30 frames .* found 29 frames"),
        (lambda s: s.update(p0_pose=s["p0_pose"][:, :5]), "segments[0].p0_pose", r"shape \(T, 6\)"),
        (lambda s: s["during_words"].append({"text": "x"}), "segments[0].during_words[4].end", "end time"),
        (
            lambda s: s["during_words"].append({"text": "", "end": 2.1}),
            "segments[0].during_words[4].text",
            "non-empty",
        ),
        (
            lambda s: s["p0_exp"].__setitem__((3, 4), float("inf")),
            "segments[0].p0_exp",
            "inf at frame 3, dim 4",
        ),
    ],
)
def test_lm_listener_malformed_segments_name_file_and_key(tmp_path, edit, field, message):
    segment = _segment(np.random.default_rng(2), 30)
    edit(segment)
    src = _save_segments(tmp_path / "src", train=[segment])
    with pytest.raises(DataValidationError, match=message) as error:
        list(read_lm_listener(src).clips)
    assert error.value.file.endswith("segments_train.pth") and error.value.field == field


def test_lm_listener_refuses_pickled_objects_and_bad_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    torch.save([{"p0_exp": np.float64}], src / "segments_train.pth")  # a class: refused by weights_only
    with pytest.raises(DataValidationError, match=r"segments_train.pth: file: .*--trust-pickle"):
        read_lm_listener(src)
    (src / "segments_train.pth").write_bytes(b"not a torch file")
    with pytest.raises(DataValidationError, match="unreadable"):
        read_lm_listener(src)
    torch.save({"p0_exp": 1}, src / "segments_train.pth")
    with pytest.raises(DataValidationError, match="a list of segment dicts, found dict"):
        read_lm_listener(src)
    with pytest.raises(DataValidationError, match=r"segments_\{train,val,test\}\.pth"):
        read_lm_listener(tmp_path / "nothing")


# ---------------------------------------------------------------- DualTalk


def _person(file: Path, rng: np.random.Generator, frames: int, **overrides) -> dict:
    arrays = {"exp": rng.normal(size=(frames, 50)).astype(np.float32),
              "pose": rng.normal(0, 0.1, size=(frames, 6)).astype(np.float32),
              "shape": np.zeros((frames, 100), np.float32)}  # fmt: skip
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(file, **arrays)
    return arrays


def test_dualtalk_one_clip_per_direction_trimmed_to_the_shorter_person(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    a1, a2 = _person(src / "convA_speaker1.npz", rng, 30), _person(src / "convA_speaker2.npz", rng, 27)
    _person(src / "convB_speaker1.npz", rng, 20), _person(src / "convB_speaker2.npz", rng, 20)
    data = read_dualtalk(src)
    clips = {clip.clip_id: (split, clip) for split, clip in data.clips}
    assert sorted(clips) == ["convA/listener1", "convA/listener2", "convB/listener1", "convB/listener2"]
    _, clip = clips["convA/listener1"]
    assert clip.num_frames == 27 and clip.fps == 25.0 and clip.listener_id == "convA_speaker1"
    np.testing.assert_array_equal(clip.listener_motion, np.concatenate([a1["exp"], a1["pose"]], axis=1)[:27])
    np.testing.assert_array_equal(clip.speaker_motion, np.concatenate([a2["exp"], a2["pose"]], axis=1))
    np.testing.assert_array_equal(clips["convA/listener2"][1].listener_motion, clip.speaker_motion)
    assert clip.meta["trimmed_from_frames"] == {"speaker1": 30, "speaker2": 27}
    assert "trimmed_from_frames" not in clips["convB/listener1"][1].meta
    assert any(
        "trimmed 1 conversation(s)" in note and "convA (30 vs 27 frames)" in note for note in data.notes
    )
    assert data.expression_basis == "flame"


def test_dualtalk_splits_by_conversation(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        _person(src / f"c{i:02d}_speaker1.npz", rng, 5), _person(src / f"c{i:02d}_speaker2.npz", rng, 5)
    splits: dict[str, set[str]] = {}
    for split, clip in read_dualtalk(src, seed=3).clips:
        splits.setdefault(clip.meta["conversation"], set()).add(split)
    assert all(len(s) == 1 for s in splits.values())
    assert Counter(next(iter(s)) for s in splits.values()) == {"train": 16, "val": 2, "test": 2}
    other = {clip.meta["conversation"]: split for split, clip in read_dualtalk(src, seed=4).clips}
    assert other != {conv: next(iter(s)) for conv, s in splits.items()}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"pose": None}, "pose", r"missing key \(keys present: \['exp', 'shape'\]\)"),
        ({"exp": np.zeros((10, 48), np.float32)}, "exp", r"shape \(T, 50\), found shape \(10, 48\)"),
        ({"pose": np.zeros((9, 6), np.float32)}, "pose", "10 frames .* found 9 frames"),
        ({"exp": np.full((10, 50), np.nan, np.float32)}, "exp", "finite values"),
        ({"pose": np.array([["a"] * 6] * 10)}, "pose", "a numeric array"),
    ],
)
def test_dualtalk_malformed_person_names_file_and_key(tmp_path, overrides, field, message):
    rng = np.random.default_rng(2)
    src = tmp_path / "src"
    src.mkdir()
    _person(src / "c_speaker1.npz", rng, 10, **overrides)
    _person(src / "c_speaker2.npz", rng, 10)
    with pytest.raises(DataValidationError, match=message) as error:
        list(read_dualtalk(src).clips)
    assert error.value.file.endswith("c_speaker1.npz") and error.value.field == field


def test_dualtalk_unpaired_or_unreadable_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _person(src / "c_speaker1.npz", np.random.default_rng(3), 10)
    with pytest.raises(DataValidationError, match=r"c_speaker2\.npz: conversation partner.*no file"):
        read_dualtalk(src)
    (src / "c_speaker2.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataValidationError, match=r"c_speaker2\.npz: file: expected a readable \.npz"):
        list(read_dualtalk(src).clips)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match=r"files named <conv>_speaker1.npz"):
        read_dualtalk(tmp_path / "empty")


@pytest.mark.skipif(not DEMO.is_dir(), reason=f"real DualTalk demo files not present at {DEMO}")
def test_real_dualtalk_motion_imports_and_tokenizes(tmp_path):
    """Two real people (from different conversations) as one pseudo-conversation, trimmed to 587 frames."""
    first, second = sorted(DEMO.glob("*_speaker1.npz"))[0], sorted(DEMO.glob("*_speaker2.npz"))[0]
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(first, src / "pseudo_speaker1.npz")
    shutil.copy(second, src / "pseudo_speaker2.npz")
    result = import_dataset("dualtalk", src, tmp_path / "out")
    dataset = load_dataset(result.path)
    assert validate_dataset(result.path) == [] and dataset.expression_basis == "flame"
    with np.load(first) as person:
        expected = np.concatenate([person["exp"], person["pose"]], axis=1)[:587]
    clip = dataset.clip("pseudo/listener1")
    assert clip.num_frames == 587
    np.testing.assert_array_equal(clip.listener_motion, expected)

    tokenizer = dataset.tokenizer()
    frames = np.concatenate([c.listener_motion for c in dataset.split("train")])
    decoded = tokenizer.decode(tokenizer.encode(frames))
    inside = (frames >= tokenizer.low) & (frames <= tokenizer.high)
    error = np.abs(decoded - frames)
    # Inside the 1 %/99 % bounds a value decodes to its bin centre: within half a bin (float32 slack).
    assert (error <= np.broadcast_to(tokenizer.bin_width / 2 + 1e-5, error.shape))[inside].all()
    assert inside.mean() > 0.97
    # Real expression spreads over about 0.2 to 1.5 per dim, so the mean error is a small fraction of it.
    assert error.mean() < 0.01 * frames.std(axis=0).mean()
