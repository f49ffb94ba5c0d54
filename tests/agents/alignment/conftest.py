"""Tiny datasets and VLA checkpoints for the alignment tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dyadic_env.data import load_dataset
from dyadic_env.envs.testing import write_random_walk_dataset

TINY_VLA = {
    "backbone": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "num_key_value_heads": 2},
    "head_hidden": 32, "projector_hidden": 32, "context_frames": 8,
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_vla_kwargs() -> dict:
    return dict(TINY_VLA)


@pytest.fixture(scope="session")
def walk_dataset_path(tmp_path_factory) -> Path:
    return write_random_walk_dataset(
        tmp_path_factory.mktemp("align") / "walk", splits={"train": 4, "val": 1, "test": 1}, frames=(24, 32)
    )


@pytest.fixture(scope="session")
def tiny_vla_path(tmp_path_factory, walk_dataset_path) -> Path:
    """A randomly initialised tiny VLA checkpoint (with its processor) for the walk dataset."""
    from agents.vla.factory import model_for_dataset

    torch.manual_seed(0)
    model = model_for_dataset(load_dataset(walk_dataset_path), seed=0, **TINY_VLA)
    path = tmp_path_factory.mktemp("align") / "tiny_vla"
    model.save_pretrained(path)
    return path
