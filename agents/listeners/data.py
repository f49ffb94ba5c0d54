"""Training batches of both stages, each a function of ``(seed, step)`` so a resumed run replays the same ones."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agents.listeners.config import ListenerTrainConfig
from agents.listeners.fusion import speaker_windows
from agents.listeners.modeling import CodeListenerModel, pad_to_units, reconstruction_errors
from agents.listeners.sequences import Units, collate, num_units, previous_codes, unit_words
from agents.vla.text import WordEncoder
from dyadic_env.data import Clip


@dataclass
class _ClipData:
    listener: np.ndarray  # (T', 56) normalised, padded to whole units: what the VQ-VAE reconstructs
    encoded: np.ndarray  # (T', 56) what the VQ-VAE encodes (CodeListenerModel.encoder_input)
    raw: np.ndarray  # (T, 56) in the data's units
    length: int  # T, the real frames
    words: list[list[int]]  # word ids per unit
    speaker: np.ndarray  # (N, speaker_frames, 56) normalised speaker windows
    listener_id: str


class ListenerBatches:
    """The clips of one split, prepared once; crops of listener motion (VQ-VAE) and of units (LM) by step."""

    def __init__(self, clips: Sequence[Clip], model: CodeListenerModel, config: ListenerTrainConfig) -> None:
        self.config, self.model = config, model
        cfg = model.config
        self.unit = cfg.unit_frames
        self.pad_id = int(model.word_tokenizer.pad_token_id or 0)
        words = WordEncoder(model.word_tokenizer, max_tokens_per_frame=cfg.max_words_per_unit)
        mean, std = np.asarray(cfg.listener_mean, np.float32), np.asarray(cfg.listener_std, np.float32)
        s_mean, s_std = np.asarray(cfg.speaker_mean, np.float32), np.asarray(cfg.speaker_std, np.float32)
        self.clips: list[_ClipData] = []
        for clip in clips:
            n = num_units(clip.num_frames, self.unit)
            frame_ids = words.frame_ids(clip.speaker_words, clip.num_frames, clip.fps)
            padded = pad_to_units(clip.listener_motion, self.unit)
            with torch.no_grad():
                encoded = model.encoder_input(torch.from_numpy(padded), clip.listener_id).numpy()
            self.clips.append(_ClipData(
                listener=(padded - mean) / std, encoded=encoded, raw=padded[: clip.num_frames],
                length=clip.num_frames, words=unit_words(frame_ids, self.unit, n, cfg.max_words_per_unit),
                speaker=speaker_windows(clip.speaker_motion, n, cfg, s_mean, s_std), listener_id=clip.listener_id,
            ))  # fmt: skip
        self.by_listener: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(self.clips):
            self.by_listener[c.listener_id].append(i)
        self.codes: list[np.ndarray] | None = None

    # --- the VQ-VAE stage ---------------------------------------------------------------------------------
    def vq_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Crops (B, crop_frames, 56) to encode, the same crops to reconstruct, and for identity models reference
        crops of the same listeners, taken from another of their clips where they have one."""
        rng = np.random.default_rng([self.config.seed, step, 1])
        size, crop = self.config.vq.batch_size, self.config.vq.crop_frames
        picks = rng.integers(len(self.clips), size=size)
        starts = [self._start(len(self.clips[i].listener), crop, rng) for i in picks]
        inputs = np.stack([self._crop(self.clips[i].encoded, s, crop) for i, s in zip(picks, starts)])
        targets = np.stack([self._crop(self.clips[i].listener, s, crop) for i, s in zip(picks, starts)])
        if not self.model.config.style_dim:
            return torch.from_numpy(inputs), torch.from_numpy(targets), None
        references = []
        for i in picks:
            same = self.by_listener[self.clips[i].listener_id]
            others = [j for j in same if j != i] or same
            other = self.clips[others[rng.integers(len(others))]]
            references.append(self._crop(other.listener, self._start(len(other.listener), crop, rng), crop))
        return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(np.stack(references))

    @staticmethod
    def _start(frames: int, length: int, rng: np.random.Generator) -> int:
        return int(rng.integers(frames - length + 1)) if frames > length else 0

    @staticmethod
    def _crop(frames: np.ndarray, start: int, length: int) -> np.ndarray:
        """``length`` frames from ``start``, the last frame repeated past the end."""
        rows = np.minimum(np.arange(start, start + length), len(frames) - 1)
        return frames[rows]

    def vq_error(self) -> dict[str, float]:
        """:func:`~agents.listeners.modeling.reconstruction_errors` of every clip's listener."""
        return reconstruction_errors(self.model, [c.raw for c in self.clips])

    # --- the language-model stage -------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self) -> None:
        """The codes of every clip's listener (the language model's targets), with the trained VQ-VAE."""
        self.model.eval()
        self.codes = [self.model.encode_frames(c.raw, c.listener_id) for c in self.clips]

    def units(self, i: int) -> Units:
        assert self.codes is not None, "call encode() first"
        c, codes = self.clips[i], self.codes[i]
        return Units(c.words, c.speaker, previous_codes(codes), codes)

    def lm_batch(self, step: int) -> dict[str, torch.Tensor]:
        """Crops of ``lm.crop_units`` units of random clips (whole clips when shorter)."""
        rng = np.random.default_rng([self.config.seed, step, 2])
        length, items = self.config.lm.crop_units, []
        for i in rng.integers(len(self.clips), size=self.config.lm.batch_size):
            units = self.units(int(i))
            start = int(rng.integers(len(units) - length + 1)) if len(units) > length else 0
            items.append(units.crop(start, length))
        return collate(items, self.pad_id)

    def eval_batches(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """Every clip's first ``lm.crop_units`` units, in order, in batches (validation)."""
        length = self.config.lm.crop_units
        items = [self.units(i).crop(0, length) for i in range(len(self.clips))]
        return [collate(items[s : s + batch_size], self.pad_id) for s in range(0, len(items), batch_size)]

    def identity_table(self) -> torch.Tensor:
        """Each training listener's identity vector (rows in ``config.identities`` order), read from all their
        frames at once."""
        rows = []
        for name in self.model.config.identities:
            style = self.model.reference_style(
                np.concatenate([self.clips[i].raw for i in self.by_listener[name]])
            )
            assert style is not None
            rows.append(style[0])
        return torch.stack(rows)
