"""Subcommands of `dyadic`; every module here defines ``register(subparsers)``."""
