"""Dyadic listener environment: data, synthetic benchmark, action tokenizer, Gymnasium env, metrics.

Importing this package registers ``dyadic_env/Listener-v0`` with Gymnasium; it imports neither torch nor
the renderer.
"""

__version__ = "0.1.0"

# Registers dyadic_env/Listener-v0 with Gymnasium (a string entry point: the env module loads on make).
import dyadic_env.envs  # noqa: F401
from dyadic_env.data.specs import register_scheme

# `load_dataset("synthetic:small")`: the data layer resolves specs through this registry, so it never
# imports the synthetic package (which builds on it); the generator loads on first use.
register_scheme("synthetic", "dyadic_env.synthetic.presets:cached_preset")
