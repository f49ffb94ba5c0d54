"""Deterministic SFT batches: clips (or random crops) as a function of ``(seed, step)``, sharded by process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.vla.sft.config import SFTConfig

if TYPE_CHECKING:
    from agents.vla.processing import VLAProcessor
    from dyadic_env.data import Clip


class ClipBatcher:
    """Deterministic batches of clips (or crops) as a function of ``(seed, step)``; shards by process, so a
    resumed run replays exactly the batches an uninterrupted one would."""

    def __init__(
        self, clips: Sequence[Clip], processor: VLAProcessor, config: SFTConfig, rank: int = 0, world: int = 1
    ) -> None:
        self.clips, self.processor, self.config = clips, processor, config
        self.rank, self.world = rank, world
        self._examples: dict[int, dict[str, Any]] = {}
        self._orders: dict[int, np.ndarray] = {}

    def _clip_example(self, i: int) -> dict[str, Any]:
        # Tokens and words per clip are cached; speaker inputs stay memory-mapped until a crop is taken.
        if i not in self._examples:
            self._examples[i] = self.processor.clip_example(self.clips[i])
        return self._examples[i]

    def indices(self, step: int) -> list[int]:
        """The clips of step ``step`` that this process trains on."""
        n, bs = len(self.clips), self.config.batch_size
        first = step * bs
        out = []
        for pos in range(first, first + bs):
            epoch, offset = divmod(pos, n)
            if epoch not in self._orders:
                self._orders = {epoch: np.random.default_rng([self.config.seed, epoch]).permutation(n)}
            out.append(int(self._orders[epoch][offset]))
        return out[self.rank :: self.world]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The collated batch of step ``step`` (crops of ``max_frames`` when set)."""
        rng = np.random.default_rng([self.config.seed, step, 1])
        examples = []
        for i in self.indices(step):
            full = self._clip_example(i)
            t, crop = len(full["actions"]), self.config.max_frames
            start = int(rng.integers(0, t - crop + 1)) if crop and t > crop else 0
            end = start + crop if crop else t
            examples.append({
                "speaker_inputs": full["speaker_inputs"][start:end], "words": full["words"][start:end],
                "actions": full["actions"][start:end],
                "prev_frame": self.processor.action_tokenizer.decode(full["actions"][start - 1]) if start else None,
            })  # fmt: skip
        return self.processor.collate(examples)

    def eval_batches(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """Every clip whole, in order, in batches (validation)."""
        idx = list(range(len(self.clips)))
        return [self.processor.collate([self._clip_example(i) for i in idx[s : s + batch_size]])
                for s in range(0, len(idx), batch_size)]  # fmt: skip
