"""Gymnasium environments. Importing this module registers them (by string entry point, so it stays cheap)."""

from __future__ import annotations

from typing import Any

import gymnasium

LISTENER_ENV_ID = "dyadic_env/Listener-v0"

if LISTENER_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=LISTENER_ENV_ID, entry_point="dyadic_env.envs.listener:ListenerEnv")

__all__ = ["LISTENER_ENV_ID", "ListenerEnv"]


def __getattr__(name: str) -> Any:
    # Lazy so `import dyadic_env` does not pay for the env module until it is used.
    if name == "ListenerEnv":
        from dyadic_env.envs.listener import ListenerEnv

        return ListenerEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
