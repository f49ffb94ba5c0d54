"""Checks when data loads: NaN or inf in a clip is an error naming the clip; array files never ask for pickle."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic_env.data import DataValidationError, DyadicDataset
from dyadic_env.envs import ListenerEnv
from dyadic_env.envs.testing import write_random_walk_dataset
from experiments.cli import main


@pytest.fixture
def poisoned(tmp_path):
    """A dataset whose second test clip has a NaN in its listener motion (written behind the writer's back)."""
    path = write_random_walk_dataset(tmp_path / "d")
    dataset = DyadicDataset(path)
    row = dataset.row_of("test-001")
    offset = int(dataset.index[row, 0])
    motion = np.load(path / "listener_motion.npy", mmap_mode="r+")
    motion[offset + 7, 12] = np.nan
    motion.flush()
    del motion
    return path


def test_a_clip_with_nan_is_an_error_naming_it_when_read(poisoned):
    dataset = DyadicDataset(poisoned)  # opening reads headers only
    assert dataset.clip("test-000").num_frames > 0  # other clips stay readable
    with pytest.raises(DataValidationError) as raised:
        dataset.clip("test-001")
    message = str(raised.value)
    assert "listener_motion.npy" in message and "clip 'test-001'" in message
    assert "nan at frame 7, dim 12" in message and "dyadic data validate" in message
    env = ListenerEnv(dataset, "test")
    with pytest.raises(DataValidationError, match="test-001"):
        env.reset(options={"clip_id": "test-001"})


def test_dyadic_eval_on_nan_data_says_which_clip(poisoned, tmp_path, capsys):
    code = main(["eval", "--dataset", str(poisoned), "--agent", "mean", "--run-dir", str(tmp_path / "run")])
    assert code != 0
    assert "clip 'test-001'" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"garbage" * 20, "object"])
def test_unreadable_array_files_do_not_advise_pickle(tmp_path, content):
    path = write_random_walk_dataset(tmp_path / "d")
    file = path / "speaker_motion.npy"
    if content == "object":
        np.save(file, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    else:
        file.write_bytes(content)
    with pytest.raises(DataValidationError) as raised:
        DyadicDataset(path)
    message = str(raised.value)
    assert "speaker_motion.npy" in message and "allow_pickle" not in message
    assert "never unpickled" in message
