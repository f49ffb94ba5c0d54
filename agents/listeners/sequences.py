"""The language model's input: the speaker's words and a slot per motion unit, interleaved in time.

As in LM-listener, a clip becomes one token sequence: the word tokens heard since the last unit, then the
unit's *slot*, whose output predicts the unit's listener code. A slot's input embedding is the previous code's
embedding plus the speaker encoder's reading of the speaker frames up to the unit's first frame
(:mod:`agents.listeners.fusion`); LM-listener gives the previous code and the speaker input positions of their
own, which we merge into one (the same information, half the positions). A word belongs to the frame in which
it ends (the env's rule), and unit ``u`` takes the words of frames ``u*U-U+1 .. u*U``: all that the listener has
heard when it decides at frame ``u*U``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

BOS = -1
"""The previous code of a clip's first unit (the model maps it to its own embedding)."""


@dataclass
class Units:
    """A clip (or a crop of one) as units: per unit its word ids, speaker window, previous code and code."""

    words: list[list[int]]
    speaker: np.ndarray  # (N, speaker_frames, 56) normalised
    previous: np.ndarray  # (N,) int64, BOS for the clip's first unit
    codes: np.ndarray | None = None  # (N,) int64 targets (None when acting)

    def __len__(self) -> int:
        return len(self.words)

    def crop(self, start: int, length: int) -> Units:
        end = start + length
        codes = None if self.codes is None else self.codes[start:end]
        return Units(self.words[start:end], self.speaker[start:end], self.previous[start:end], codes)


def num_units(num_frames: int, unit_frames: int) -> int:
    return math.ceil(num_frames / unit_frames)


def unit_words(
    frame_ids: Sequence[Sequence[int]], unit_frames: int, count: int, max_words: int
) -> list[list[int]]:
    """Word ids per unit from word ids per frame: unit ``u`` takes frames ``u*U-U+1 .. u*U`` (its last
    ``max_words``)."""
    out = []
    for u in range(count):
        lo, hi = max(0, u * unit_frames - unit_frames + 1), min(len(frame_ids), u * unit_frames + 1)
        ids = [i for f in range(lo, hi) for i in frame_ids[f]]
        out.append(ids[-max_words:] if max_words else [])
    return out


def previous_codes(codes: np.ndarray) -> np.ndarray:
    return np.concatenate([[BOS], np.asarray(codes[:-1], np.int64)]).astype(np.int64)


def collate(units: Sequence[Units], pad_id: int) -> dict[str, torch.Tensor]:
    """A padded batch: ``input_ids`` and ``attention_mask`` (B, L), ``slot_positions``, ``previous``,
    ``unit_mask`` and ``targets`` (B, N) (-100 where padded or unknown), ``speaker`` (B, N, frames, 56)."""
    lengths = [sum(len(w) for w in u.words) + len(u) for u in units]
    width, count = max(lengths), max(len(u) for u in units)
    frames = units[0].speaker.shape[1:]
    input_ids = torch.full((len(units), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(units), width), dtype=torch.long)
    slots = torch.zeros((len(units), count), dtype=torch.long)
    previous = torch.zeros((len(units), count), dtype=torch.long)
    unit_mask = torch.zeros((len(units), count), dtype=torch.bool)
    targets = torch.full((len(units), count), -100, dtype=torch.long)
    speaker = torch.zeros((len(units), count, *frames))
    for b, item in enumerate(units):
        pos = 0
        for u, words in enumerate(item.words):
            input_ids[b, pos : pos + len(words)] = torch.tensor(words, dtype=torch.long)
            pos += len(words)
            slots[b, u] = pos
            pos += 1
        n = len(item)
        attention[b, :pos] = 1
        previous[b, :n] = torch.from_numpy(item.previous)
        unit_mask[b, :n] = True
        speaker[b, :n] = torch.from_numpy(item.speaker)
        if item.codes is not None:
            targets[b, :n] = torch.from_numpy(np.asarray(item.codes, np.int64))
    return {"input_ids": input_ids, "attention_mask": attention, "slot_positions": slots, "previous": previous,
            "unit_mask": unit_mask, "targets": targets, "speaker": speaker}  # fmt: skip
