"""A key-value cache that writes each frame's keys in place instead of concatenating the whole cache.

``transformers``' ``DynamicCache`` appends with ``torch.cat``: every decoded frame copies every layer's whole
cache, which was the largest single cost of batched closed-loop sampling (about a third of
``sample_trajectories``' time with 64 rows, measured with torch's profiler for episode PPO). Here each layer's
keys and values are views of a buffer with room to spare; new tokens are written into it, and frames evicted
from the front (:meth:`agents.vla.decoding.DecodeState.keep_last_frames` slices ``layer.keys``) are simply
left behind until the buffer is full, when the live part moves to a fresh buffer twice its size. Attention sees
the same keys in the same order, so outputs are identical (a test compares it with ``DynamicCache``).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys``/``values`` are views of a larger buffer, written in place."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None
        self._end = 0  # one past the last written slot of the buffers

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.keys is not None and self.values is not None
        # The live slots are what `keys` still shows: eviction slices it from the front.
        live = 0 if self._key_buffer is None else self.keys.shape[-2]
        start, new = self._end - live, key_states.shape[-2]
        if self._key_buffer is None or self._end + new > self._key_buffer.shape[-2]:
            self._key_buffer = self._grow(self.keys, key_states, live + new)
            self._value_buffer = self._grow(self.values, value_states, live + new)
            start, self._end = 0, live
        assert self._value_buffer is not None
        self._key_buffer[:, :, self._end : self._end + new] = key_states
        self._value_buffer[:, :, self._end : self._end + new] = value_states
        self._end += new
        self.keys = self._key_buffer[:, :, start : self._end]
        self.values = self._value_buffer[:, :, start : self._end]
        return self.keys, self.values

    @staticmethod
    def _grow(live: torch.Tensor, states: torch.Tensor, needed: int) -> torch.Tensor:
        """A fresh buffer with room for twice ``needed`` slots, holding the live slots first."""
        shape = (*states.shape[:-2], max(2 * needed, 64), states.shape[-1])
        buffer = states.new_empty(shape)
        if live.numel():
            buffer[:, :, : live.shape[-2]] = live
        return buffer


class PreallocatedCache(DynamicCache):
    """A ``DynamicCache`` of :class:`PreallocatedLayer` (one per model layer, made on first use)."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=PreallocatedLayer)
