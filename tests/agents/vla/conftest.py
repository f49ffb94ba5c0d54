"""Small random datasets and tiny VLA models for the VLA tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dyadic_env.data import Clip, Word, load_dataset, write_dataset
from dyadic_env.tokenizer import ActionTokenizer

TINY_BACKBONE = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "num_key_value_heads": 2}  # fmt: skip
TINY = {"backbone": TINY_BACKBONE, "head_hidden": 32, "projector_hidden": 32}
VOCAB = ["yes", "no", "happy", "sad", "really", "wow", "okay", "hmm"]


def random_clip(
    rng: np.random.Generator, clip_id: str, frames: int, fps: float = 25.0, features: int = 0
) -> Clip:
    """A clip whose listener loosely follows its speaker, with a few timed words."""
    speaker = np.cumsum(rng.normal(scale=0.1, size=(frames, 56)), axis=0).astype(np.float32)
    listener = (0.5 * np.roll(speaker, 3, axis=0) + rng.normal(scale=0.05, size=(frames, 56))).astype(
        np.float32
    )
    n_words = max(1, frames // 12)
    ends = np.sort(rng.uniform(0.05, frames / fps, size=n_words))
    words = tuple(Word(float(max(0.0, e - 0.2)), float(e), str(rng.choice(VOCAB))) for e in ends)
    feats = rng.normal(size=(frames, features)).astype(np.float32) if features else None
    return Clip(clip_id=clip_id, fps=fps, speaker_motion=speaker, listener_motion=listener,
                speaker_words=words, speaker_features=feats, speaker_id="s", listener_id="l")  # fmt: skip


def make_dataset(path: Path, n_clips: int = 6, frames: int = 40, features: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    clips = [random_clip(rng, f"c{i}", frames + 3 * i, features=features) for i in range(n_clips)]
    splits = ["train"] * (n_clips - 2) + ["val", "test"]
    out = write_dataset(path, list(zip(splits, clips)), fps=25.0, expression_basis="ict-arkit", name="rand")
    tok = ActionTokenizer.fit(np.concatenate([c.listener_motion for c in clips]))
    tok.save(out / "tokenizer.json")
    return out


@pytest.fixture(scope="session")
def tiny() -> dict:
    """VLA config fields of a tiny model (a 2-layer LLaMA of width 32)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def make_tiny_model():
    """``make_tiny_model(dataset, **config_fields)``: a fresh tiny VLA (eval mode) fitted to a dataset."""
    return tiny_model


@pytest.fixture(scope="session")
def random_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("vla_data") / "rand")


@pytest.fixture(scope="session")
def dataset(random_dataset):
    return load_dataset(random_dataset)


def tiny_model(dataset, **kwargs):
    from agents.vla.factory import model_for_dataset

    return model_for_dataset(dataset, **{**TINY, **kwargs}).eval()
