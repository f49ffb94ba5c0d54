"""The baselines' names, importable without torch (the agent registry and ``dyadic eval`` read them)."""

VARIANTS = ("lm-listener", "mmlhg")
"""``lm-listener``: Ng et al., "Can language models learn to listen?", ICCV 2023; ``mmlhg``: Lai et al.,
"LLM-driven multimodal and multi-identity listening head generation", CVPR 2025."""
