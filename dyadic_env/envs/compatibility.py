"""What a policy was trained on, recorded with it, and checked against the data it is run on.

A policy's tokens mean frame values only through its tokenizer, and frame values mean a face only through
the dataset's expression basis: a policy trained on ``ict-arkit`` blendshape weights (its tokenizer spans
about [0, 1]) runs on FLAME codes (about [-3.5, 3.7]) without a single error and produces nonsense. So a
checkpoint carries a *data card* (:func:`data_card`): the expression basis, the frame layout and the
fingerprint of its action tokenizer; :func:`check_data_card` refuses a dataset of another basis or layout,
naming both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from dyadic_env.data import DyadicDataset
from dyadic_env.expression_basis import EXPRESSION, JAW_POSE, NECK_POSE
from dyadic_env.tokenizer import ActionTokenizer

CARD_VERSION = 1
FRAME_LAYOUT = (
    f"expression[{EXPRESSION.start}:{EXPRESSION.stop}] neck[{NECK_POSE.start}:{NECK_POSE.stop}] "
    + (f"jaw[{JAW_POSE.start}:{JAW_POSE.stop}]")
)
"""The 56-value frame as this toolkit lays it out (FLAME's order: expression, neck, jaw, axis-angle)."""


class IncompatibleDataError(ValueError):
    """A policy was trained on data of another expression basis or frame layout than the data it is given."""


def tokenizer_fingerprint(tokenizer: ActionTokenizer) -> str:
    """A short hash of the tokenizer's bins (equal fingerprints: identical tokens)."""
    text = json.dumps(tokenizer.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_card(dataset: DyadicDataset, tokenizer: ActionTokenizer | None = None) -> dict[str, Any]:
    """What a policy trained on ``dataset`` with ``tokenizer`` (default the dataset's) must be run on."""
    tokenizer = tokenizer or dataset.tokenizer()
    return {
        "version": CARD_VERSION,
        "dataset": dataset.name,
        "expression_basis": dataset.expression_basis,
        "frame_layout": FRAME_LAYOUT,
        "fps": dataset.fps,
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer) if tokenizer is not None else None,
    }


def check_data_card(card: Mapping[str, Any] | None, dataset: DyadicDataset, *, policy: str) -> list[str]:
    """Raise :class:`IncompatibleDataError` when ``policy`` (its card) cannot run on ``dataset``; return notes
    on what differs but is allowed (another tokenizer: tokens decode through the policy's own), or that the
    policy records no card (written before cards existed: nothing can be checked)."""
    if not card:
        return [
            f"{policy} records no data card (expression basis, tokenizer): its fit to {dataset.path} is unchecked"
        ]
    here = data_card(dataset)
    for key, what in (("expression_basis", "expression basis"), ("frame_layout", "frame layout")):
        if card.get(key) != here[key]:
            raise IncompatibleDataError(
                f"{policy} was trained on {what} {card.get(key)!r} (dataset {card.get('dataset')!r}, tokenizer "
                f"{card.get('tokenizer_fingerprint')}), but {dataset.path} is {what} {here[key]!r} (tokenizer "
                f"{here['tokenizer_fingerprint']}): its actions would drive the wrong face. Run it on data of "
                f"basis {card.get('expression_basis')!r}, or train a policy on this dataset"
            )
    notes = []
    if card.get("tokenizer_fingerprint") != here["tokenizer_fingerprint"]:
        notes.append(
            f"{policy}'s tokenizer ({card.get('tokenizer_fingerprint')}) differs from {dataset.path}'s "
            f"({here['tokenizer_fingerprint']}); its tokens decode through its own bins"
        )
    return notes


def agent_data_card(agent: Any) -> dict[str, Any] | None:
    """The data card an agent carries: its own ``data_card``, or its model config's (a VLA checkpoint's)."""
    card = getattr(agent, "data_card", None)
    if card is None:
        config = getattr(getattr(agent, "model", None), "config", None)
        card = getattr(config, "data_card", None)
    return dict(card) if card else None
