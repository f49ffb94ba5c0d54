"""The paper's learned baselines: LM-listener (Ng et al., ICCV 2023) and MMLHG (Lai et al., CVPR 2025).

Both turn listener motion into discrete codes with a VQ-VAE and train a small causal language model to predict
the listener's codes from the speaker's words and motion; docs/baselines.md says what each takes from its
paper and where we had to choose.

- ``names``: the two names; ``configuration``: :class:`CodeListenerConfig`; ``vqvae``: the motion VQ-VAE (MMLHG's identity-free codes);
  ``fusion``: how each reads the speaker; ``sequences``: words and unit slots as one token sequence;
  ``modeling``: :class:`CodeListenerModel`; ``factory``: a fresh model for a dataset;
- ``config``, ``data``, ``training``: ``dyadic train lm-listener`` / ``dyadic train mmlhg``;
- ``agent``: :class:`CodeListenerAgent`, the closed-loop policy.

Importing this package is light (no torch): it registers the agents ``lm-listener`` and ``mmlhg`` with
:func:`agents.make_agent`; each needs a trained checkpoint (``checkpoint=DIR``, ``dyadic eval --agent lm-listener
--policy DIR``).
"""

from __future__ import annotations

from typing import Any

from agents.baselines import register_agent
from agents.listeners.names import VARIANTS

__all__ = ["VARIANTS"]


def _factory(variant: str) -> Any:
    def make(dataset: Any, seed: int, tokenizer: Any, *, checkpoint: str | None = None, **kwargs: Any) -> Any:
        if checkpoint is None:
            raise ValueError(
                f"agent {variant!r} runs a trained checkpoint: pass it (dyadic eval --agent {variant} --policy DIR); "
                f"train one with `dyadic train {variant}`"
            )
        from agents.listeners.agent import load_listener_agent

        return load_listener_agent(checkpoint, variant, seed=seed, **kwargs)

    return make


for _variant in VARIANTS:
    register_agent(_variant, _factory(_variant), overwrite=True)
