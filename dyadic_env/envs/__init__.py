"""Gymnasium environments. Importing this module registers them (by string entry point, so it stays cheap)."""

from __future__ import annotations

from typing import Any

import gymnasium

LISTENER_ENV_ID = "dyadic_env/Listener-v0"

if LISTENER_ENV_ID not in gymnasium.registry:
    # make_vec builds the batched env (dyadic_env.envs.vector, or .sharded with workers > 1) unless
    # vectorization_mode says otherwise.
    gymnasium.register(
        id=LISTENER_ENV_ID,
        entry_point="dyadic_env.envs.listener:ListenerEnv",
        vector_entry_point="dyadic_env.envs.sharded:make_listener_vector_env",
    )

__all__ = ["LISTENER_ENV_ID", "ListenerEnv", "ListenerVectorEnv", "ShardedListenerVectorEnv"]


def __getattr__(name: str) -> Any:
    # Lazy so `import dyadic_env` does not pay for the env module until it is used.
    if name == "ListenerEnv":
        from dyadic_env.envs.listener import ListenerEnv

        return ListenerEnv
    if name == "ListenerVectorEnv":
        from dyadic_env.envs.vector import ListenerVectorEnv

        return ListenerVectorEnv
    if name == "ShardedListenerVectorEnv":
        from dyadic_env.envs.sharded import ShardedListenerVectorEnv

        return ShardedListenerVectorEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
