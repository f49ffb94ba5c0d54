"""`dyadic render` and the environment's rgb_array frames, end to end on synthetic:tiny."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dyadic_env.data import load_dataset
from dyadic_env.render import read_video
from experiments.cli import main

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def clip_id() -> str:
    return load_dataset("synthetic:tiny").split("test").clip_ids[0]


def test_listener_env_renders_speaker_and_listener() -> None:
    import gymnasium as gym

    import dyadic_env  # noqa: F401  (registers the env)

    env = gym.make("dyadic_env/Listener-v0", dataset="synthetic:tiny", split="test", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        first = env.render()
        env.step(env.action_space.sample())
        image = env.render()
        assert env.metadata["render_fps"] == 25
    finally:
        env.close()
    assert image.shape == (256, 512, 3) and image.dtype == np.uint8
    assert first.shape == image.shape
    # Two heads: each half has plenty of non-background pixels.
    for half in (image[:, :256], image[:, 256:]):
        assert (np.abs(half.astype(int) - half[5, -5]).max(-1) > 20).mean() > 0.2


def test_render_ground_truth_video(tmp_path: Path, clip_id: str, capsys) -> None:
    out = tmp_path / "gt.mp4"
    args = ["render", "--dataset", "synthetic:tiny", "--clip", clip_id, "-o", str(out), "--size", "64"]
    assert main(args) == 0
    video, fps = read_video(out)
    clip = load_dataset("synthetic:tiny").clip(clip_id)
    assert video.shape == (clip.num_frames, 64, 128, 3) and fps == pytest.approx(clip.fps)
    assert "listener: gt" in capsys.readouterr().out


def test_render_contact_sheet_across_agents(tmp_path: Path, clip_id: str) -> None:
    sheet = tmp_path / "sheet.png"
    args = ["render", "--dataset", "synthetic:tiny", "--clip", clip_id, "--agent", "gt,neutral"]
    assert main([*args, "--sheet", str(sheet), "--size", "64", "--sheet-frames", "4"]) == 0
    image = np.asarray(Image.open(sheet))
    # Rows: speaker, gt, neutral; four times each.
    assert image.shape[1] == 4 * (64 + 4) + 4
    assert 3 * 64 < image.shape[0] < 4 * 64 + 3 * 30
    # The neutral agent's row shows the same face at every time.
    row_height = (image.shape[0] - 4) // 3
    top = 4 + 2 * row_height
    tiles = [image[top : top + 64, 4 + k * 68 : 4 + k * 68 + 64] for k in range(4)]
    assert all(np.abs(t.astype(int) - tiles[0]).max() <= 2 for t in tiles[1:])


def test_render_errors_say_what_to_fix(tmp_path: Path, clip_id: str, capsys) -> None:
    base = ["render", "--dataset", "synthetic:tiny"]
    assert main([*base, "--clip", "no-such-clip", "-o", str(tmp_path / "a.mp4")]) == 2
    assert "no such clip" in capsys.readouterr().err
    assert main([*base, "--clip", clip_id]) == 2
    assert "nothing to write" in capsys.readouterr().err
    assert main([*base, "--clip", clip_id, "--agent", "telepath", "--sheet", str(tmp_path / "s.png")]) == 2
    assert "expected gt or one of" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_face_sheet_renders_the_gallery(tmp_path: Path, capsys) -> None:
    out = tmp_path / "faces.png"
    assert main(["face", "sheet", "-o", str(out), "--size", "64"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape[1] == 5 * (64 + 4) + 4 and 2 * 64 < image.shape[0] < 3 * 64  # 10 faces, 5 a row
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("neutral", "happiness", "disgust", "jaw open", "head turn"))


@pytest.mark.slow
def test_bench_render_reports_every_figure() -> None:
    from experiments.bench.render import bench_render

    figures = bench_render(quick=True)
    for key in (
        "mesh_evals_per_s_batch1", "mesh_evals_per_s_batch64", "faces_per_s_256", "faces_per_s_512",
        "video_256_time_over_duration", "video_256_cpu_s_per_video_s",
    ):  # fmt: skip
        assert figures[key] > 0, key
    assert figures["video_256_time_over_duration"] == pytest.approx(
        figures["video_256_render_s"] / figures["video_256_seconds"]
    )
