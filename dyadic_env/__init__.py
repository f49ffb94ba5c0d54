"""Dyadic listener environment: data, synthetic benchmark, action tokenizer, Gymnasium env, metrics.

Importing this package registers ``dyadic_env/Listener-v0`` with Gymnasium; it imports neither torch nor
the renderer.
"""

__version__ = "0.1.0"

# Registers dyadic_env/Listener-v0 with Gymnasium (a string entry point: the env module loads on make).
import dyadic_env.envs  # noqa: F401
