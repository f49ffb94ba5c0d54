"""Data cards: a checkpoint records the expression basis, frame layout and tokenizer it was trained with, and
refuses data of another basis, naming both; the nearest neighbour warns when scored on its own database."""

from __future__ import annotations

import warnings

import pytest

from agents import make_agent
from dyadic_env.data import load_dataset
from dyadic_env.envs.compatibility import (
    FRAME_LAYOUT,
    IncompatibleDataError,
    agent_data_card,
    check_data_card,
    data_card,
    tokenizer_fingerprint,
)
from dyadic_env.envs.testing import write_random_walk_dataset
from experiments.cli import main
from experiments.evaluation import evaluate_agents

TINY = {"backbone": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2}, "head_hidden": 32, "projector_hidden": 32}  # fmt: skip


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    return {
        "arkit": load_dataset(write_random_walk_dataset(root / "arkit", expression_basis="ict-arkit")),
        "arkit2": load_dataset(
            write_random_walk_dataset(root / "arkit2", expression_basis="ict-arkit", seed=5)
        ),
        "flame": load_dataset(write_random_walk_dataset(root / "flame", expression_basis="flame", seed=1)),
    }


def test_data_card_names_basis_layout_and_tokenizer(datasets):
    card = data_card(datasets["arkit"])
    assert card["expression_basis"] == "ict-arkit" and card["frame_layout"] == FRAME_LAYOUT
    assert card["tokenizer_fingerprint"] == tokenizer_fingerprint(datasets["arkit"].tokenizer())
    assert card["tokenizer_fingerprint"] != data_card(datasets["arkit2"])["tokenizer_fingerprint"]
    assert check_data_card(card, datasets["arkit"], policy="p") == []
    notes = check_data_card(card, datasets["arkit2"], policy="p")
    assert len(notes) == 1 and "decode through its own bins" in notes[0]
    with pytest.raises(IncompatibleDataError) as raised:
        check_data_card(card, datasets["flame"], policy="policy X")
    message = str(raised.value)
    assert "policy X" in message and "'ict-arkit'" in message and "'flame'" in message
    assert str(datasets["flame"].path) in message and card["tokenizer_fingerprint"] in message


def test_a_vla_checkpoint_refuses_data_of_another_basis(datasets, tmp_path, capsys):
    from agents.vla.agent import VLAAgent
    from agents.vla.factory import model_for_dataset

    model_for_dataset(datasets["arkit"], **TINY).save_pretrained(tmp_path / "vla")
    agent = VLAAgent.from_pretrained(tmp_path / "vla")
    assert agent_data_card(agent) == data_card(datasets["arkit"])  # survives save and load
    results = evaluate_agents({"vla": agent}, datasets["arkit"], "test", max_clips=1)
    assert results["num_clips"] == 1
    with pytest.raises(
        IncompatibleDataError, match="agent 'vla' was trained on expression basis 'ict-arkit'"
    ):
        evaluate_agents({"vla": agent}, datasets["flame"], "test", max_clips=1)
    flame = str(datasets["flame"].path)
    code = main(
        ["eval", "--dataset", flame, "--policy", str(tmp_path / "vla"), "--run-dir", str(tmp_path / "r")]
    )
    assert code != 0 and "expression basis 'flame'" in capsys.readouterr().err


def test_nearest_neighbour_warns_when_scored_on_its_own_clips(datasets):
    nn = make_agent("nn", datasets["arkit"], 0)
    with pytest.warns(
        UserWarning, match="retrieves listener responses from 6 of the 6 clips it is scored on"
    ):
        evaluate_agents({"nn": nn}, datasets["arkit"], "train")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        evaluate_agents({"nn": nn}, datasets["arkit"], "test")
    assert not [w for w in record if "retrieves" in str(w.message)]  # the test split is held out
