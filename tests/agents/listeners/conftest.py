"""Tiny LM-listener and MMLHG settings, small random datasets, and tiny trained runs shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dyadic_env.envs.testing import write_random_walk_dataset

TINY_MODEL: dict[str, Any] = {
    "backbone": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "num_key_value_heads": 2},
    "vq_width": 32, "codebook_size": 32, "code_dim": 16, "unit_frames": 8,
}  # fmt: skip


def tiny_config(variant: str, dataset: str | Path, out: Path, **fields: Any) -> Any:
    """A ListenerTrainConfig of a tiny model and a few steps of each stage (``fields`` override it)."""
    from agents.listeners.config import ListenerTrainConfig

    model = dict(TINY_MODEL, **({"style_dim": 8} if variant == "mmlhg" else {}), **fields.pop("model", {}))
    values: dict[str, Any] = {
        "dataset": str(dataset), "output_dir": str(out), "model": model,
        "vq": {"steps": 6, "batch_size": 4, "crop_frames": 32}, "lm": {"steps": 6, "batch_size": 2, "crop_units": 6},
        "log_every": 2, "eval_every": 3, "save_every": 3, "num_threads": 1,
    }  # fmt: skip
    for key, value in fields.items():
        values[key] = {**values[key], **value} if isinstance(value, dict) and key in values else value
    return ListenerTrainConfig.from_dict(values, variant)


@pytest.fixture(scope="session")
def make_config():
    """``make_config(variant, dataset, out, **fields)``: :func:`tiny_config`."""
    return tiny_config


@pytest.fixture(scope="session")
def walk_data(tmp_path_factory) -> Path:
    """6 train, 2 val and 2 test clips of 40-80 frames with words."""
    return write_random_walk_dataset(tmp_path_factory.mktemp("listeners") / "walk", affect=True)


@pytest.fixture(scope="session", params=["lm-listener", "mmlhg"])
def trained(request, walk_data, tmp_path_factory) -> tuple[str, Path]:
    """``(variant, final checkpoint)`` of a tiny run of each baseline on ``walk_data``."""
    from agents.listeners.training import train_listener

    out = tmp_path_factory.mktemp(request.param) / "run"
    return request.param, train_listener(tiny_config(request.param, walk_data, out), progress=False)
