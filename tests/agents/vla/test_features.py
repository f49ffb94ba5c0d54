import numpy as np
import pytest
import torch

from agents.vla.features import VisualFeatureExtractor, align_frames
from dyadic_env.data import load_dataset
from experiments.cli import main


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """Tiny randomly initialised DINOv2 and SigLIP vision models saved like downloaded ones."""
    from transformers import Dinov2Config, Dinov2Model, SiglipVisionConfig, SiglipVisionModel

    root = tmp_path_factory.mktemp("encoders")
    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "image_size": 28, "patch_size": 14}  # fmt: skip
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(**small)).save_pretrained(root / "dino")
    SiglipVisionModel(SiglipVisionConfig(**{**small, "hidden_size": 24})).save_pretrained(root / "siglip")
    return root / "dino", root / "siglip"


def test_features_concatenate_dino_and_siglip_pooled_outputs(encoders):
    from transformers import Dinov2Model, SiglipVisionModel

    frames = np.random.default_rng(0).integers(0, 256, size=(5, 40, 48, 3), dtype=np.uint8)
    extractor = VisualFeatureExtractor(*encoders, batch_size=2)
    features = extractor(frames)
    assert features.shape == (5, 16 + 24) and features.dtype == np.float32 and extractor.dim == 40
    # Batching does not change a frame's features, and different frames differ.
    np.testing.assert_allclose(features[:1], extractor(frames[:1]), atol=1e-5)
    assert not np.allclose(features[0], features[1])
    dino = Dinov2Model.from_pretrained(encoders[0]).eval()
    x = torch.nn.functional.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, size=(28, 28),
                                        mode="bilinear", antialias=True)  # fmt: skip
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        np.testing.assert_allclose(features[:, :16], dino(pixel_values=x).pooler_output.numpy(), atol=1e-5)
    assert SiglipVisionModel.from_pretrained(encoders[1]).config.hidden_size == 24


def test_align_frames_resamples_by_time_and_rejects_short_videos():
    frames = np.arange(10)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    picked = align_frames(frames, 50.0, 25.0, 5, "v.mp4")
    assert picked[:, 0, 0, 0].tolist() == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="the video is 10 frames short"):
        align_frames(frames, None, 25.0, 20, "v.mp4")


def test_data_features_command_writes_a_dataset_with_features(encoders, random_dataset, tmp_path, capsys):
    import imageio.v3 as iio

    data = load_dataset(random_dataset)
    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(1)
    for i, cid in enumerate(c for s in data.splits for c in data.split(s).clip_ids):
        frames = rng.integers(0, 256, size=(data.clip(cid).num_frames, 32, 32, 3), dtype=np.uint8)
        if i == 0:
            iio.imwrite(videos / f"{cid}.mp4", frames, fps=data.fps, codec="libx264")
        else:
            np.save(videos / f"{cid}.npy", frames)
    dino, siglip = encoders
    out = tmp_path / "with_features"
    code = main(["data", "features", "--dataset", str(random_dataset), "--videos", str(videos), "--dino", str(dino),
                 "--siglip", str(siglip), "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = load_dataset(out)
    assert result.feature_dim == 40 and result.splits == data.splits
    clip = result.split("train")[1]
    expected = VisualFeatureExtractor(dino, siglip)(np.load(videos / f"{clip.clip_id}.npy"))
    np.testing.assert_allclose(clip.speaker_features, expected, atol=1e-5)
    np.testing.assert_array_equal(clip.listener_motion, data.clip(clip.clip_id).listener_motion)
    assert (out / "tokenizer.json").read_text() == (random_dataset / "tokenizer.json").read_text()


def test_data_features_command_names_a_missing_video(encoders, random_dataset, tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    code = main(["data", "features", "--dataset", str(random_dataset), "--videos", str(tmp_path / "videos"),
                 "--dino", str(encoders[0]), "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no speaker video for clip 'c0'; expected c0.mp4 or c0.npy" in err
    assert not (tmp_path / "out").exists()
