"""A trained policy's checkpoint directory as an agent, whichever model wrote it.

``dyadic train sft`` (and DPO, PPO) write VLA checkpoints; ``dyadic train lm-listener`` and ``dyadic train
mmlhg`` write the baselines' (:mod:`agents.listeners`). Their ``config.json`` says which (``model_type``, and
the baseline's ``variant``), so evaluation, rendering and the feedback campaigns load any of them the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.base import Agent

KINDS = ("vla", "lm-listener", "mmlhg")


def checkpoint_kind(path: str | Path) -> str:
    """``"vla"``, ``"lm-listener"`` or ``"mmlhg"``: the model a checkpoint (or run) directory holds."""
    from agents.listeners.agent import checkpoint_config

    directory, config = checkpoint_config(path)
    model_type = config.get("model_type")
    if model_type == "dyadic_vla":
        return "vla"
    if model_type == "dyadic_code_listener" and config.get("variant") in KINDS:
        return str(config["variant"])
    raise ValueError(
        f"{directory / 'config.json'}: model_type {model_type!r} is no listener policy of this toolkit; expected a "
        "checkpoint of `dyadic train sft`, `dyadic train lm-listener` or `dyadic train mmlhg`"
    )


def load_checkpoint_agent(
    path: str | Path, *, seed: int | None = None, mode: str | None = None, temperature: float | None = None,
    **kwargs: Any,
) -> Agent:  # fmt: skip
    """The agent of a checkpoint (or run) directory: a ``VLAAgent`` or a ``CodeListenerAgent``. ``mode`` and
    ``temperature`` override the checkpoint's decoding (each model's own modes); ``kwargs`` go to the agent."""
    if checkpoint_kind(path) == "vla":
        from agents.vla.agent import VLAAgent, resolve_checkpoint

        return VLAAgent.from_pretrained(
            resolve_checkpoint(path), temperature=temperature, seed=seed, mode=mode, **kwargs
        )
    from agents.listeners.agent import load_listener_agent

    return load_listener_agent(path, seed=seed, temperature=temperature, mode=mode, **kwargs)
