"""``CodeListenerAgent``: LM-listener or MMLHG acting in closed loop, one motion unit at a time.

At the first frame of every unit (``t = u * unit_frames``) the agent adds the unit's slot (the words heard
since the last unit and the speaker frames up to ``t``) to its sequence, runs the language model over the last
``max_context_units`` units, draws the unit's code, and decodes the codes so far with the causal VQ-VAE
decoder into the unit's frames; the frames of the unit are then placed one step at a time (or as chunks of
``chunk_size`` frames, a divisor of ``unit_frames``). The decoder reads back at most ``DECODE_UNITS`` codes,
more than its receptive field, so window-by-window decoding equals decoding the whole clip at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import FrameAgent, Observation
from agents.listeners.configuration import CodeListenerConfig
from agents.listeners.modeling import CodeListenerModel
from agents.listeners.sequences import BOS, Units, collate
from agents.vla.agent import torch_threads
from agents.vla.text import WordEncoder, new_words, split_words

TOLD = "told"
"""The identity of an MMLHG agent that answers as whoever the evaluation names (:meth:`CodeListenerAgent.meet_listener`)."""

DECODE_UNITS = 32
"""Codes the decoder reads back (its receptive field is about 19 units at 8 frames a unit)."""


def checkpoint_config(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint directory of ``path`` (itself, or a run directory's ``final/`` or latest checkpoint) and
    its ``config.json``."""
    from agents.vla.agent import resolve_checkpoint

    directory = resolve_checkpoint(path)
    try:
        return directory, json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{directory / 'config.json'}: cannot read the checkpoint's config ({e})") from None


def load_listener_agent(path: str | Path, variant: str | None = None, **kwargs: Any) -> CodeListenerAgent:
    """The agent of an LM-listener or MMLHG checkpoint (or run) directory; with ``variant``, refuse another."""
    directory, config = checkpoint_config(path)
    found = config.get("variant") if config.get("model_type") == CodeListenerConfig.model_type else None
    if found is None or (variant is not None and found != variant):
        kind = found or ("vla" if config.get("model_type") == "dyadic_vla" else config.get("model_type"))
        raise ValueError(
            f"{path} is a {kind} checkpoint, not {'a ' + variant if variant else 'an LM-listener or MMLHG'} one"
        )
    return CodeListenerAgent.from_pretrained(directory, **kwargs)


class CodeListenerAgent(FrameAgent):
    """A trained :class:`~agents.listeners.CodeListenerModel` as an :class:`agents.Agent`.

    Args:
        model: the model with its tokenizers attached (``CodeListenerModel.from_pretrained`` attaches them).
        seed: seeds the code sampling; ``reset(seed=...)`` reseeds.
        temperature: sampling temperature (None: the checkpoint's ``decode_temperature``).
        greedy: take the most likely code instead of sampling (same as ``mode="greedy"``).
        mode: ``"sample"`` or ``"greedy"`` (None: the checkpoint's ``decode_mode``).
        identity: MMLHG's listener identity, ``"mean"`` or a training listener's id (None: the checkpoint's), or
            ``"told"``: the listener the evaluation names before each clip (:meth:`meet_listener`), as MMLHG's
            paper is given the identity to animate. The env says nobody's identity, so a told agent knows more
            than every other row.
        chunk_size: frames per env step, a divisor of ``unit_frames``.
        num_threads: torch CPU threads while acting (one is fastest at batch 1; None keeps torch's setting).
    """

    def __init__(
        self, model: CodeListenerModel, *, seed: int | None = None, temperature: float | None = None,
        greedy: bool = False, mode: str | None = None, identity: str | None = None, chunk_size: int = 1,
        num_threads: int | None = 1,
    ) -> None:  # fmt: skip
        if model.action_tokenizer is None or model.word_tokenizer is None:
            raise ValueError("model has no tokenizers; load it with CodeListenerModel.from_pretrained(dir)")
        config = model.config
        if config.unit_frames % chunk_size:
            raise ValueError(
                f"chunk_size: expected a divisor of the model's unit_frames ({config.unit_frames}), found {chunk_size}"
            )
        super().__init__(model.action_tokenizer, chunk_size=chunk_size)
        self.model = model.eval()
        self.data_card = config.data_card
        self.mode = "greedy" if greedy else (mode or config.decode_mode)
        if self.mode not in ("sample", "greedy"):
            raise ValueError(f"mode: expected 'sample' or 'greedy', found {self.mode!r}")
        self.temperature = float(config.decode_temperature if temperature is None else temperature)
        self.told = identity == TOLD
        if self.told and not config.style_dim:
            raise ValueError(
                f"identity: {TOLD!r} needs an MMLHG checkpoint (identity vectors); this is {config.variant}"
            )
        self.style = None if self.told else model.identity_style(identity)
        self.listener: str | None = None  # whom a told agent answers as
        self.num_threads = num_threads
        self.words = WordEncoder(model.word_tokenizer, max_tokens_per_frame=config.max_words_per_unit)
        self.pad_id = int(model.word_tokenizer.pad_token_id or 0)
        self._speaker_stats = (
            np.asarray(config.speaker_mean, np.float32),
            np.asarray(config.speaker_std, np.float32),
        )
        self.generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self.reset()

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> CodeListenerAgent:
        """Load a checkpoint directory (``dyadic train lm-listener`` / ``mmlhg`` write ``OUTPUT_DIR/final``)."""
        return cls(CodeListenerModel.from_pretrained(path), **kwargs)

    def meet_listener(self, listener_id: str) -> None:
        """Be told who listens in the coming episodes (evaluation calls it before each clip); only an agent made
        with ``identity="told"`` uses it, answering as that training listener."""
        if not self.told:
            return
        if listener_id not in self.model.config.identities:
            raise ValueError(
                f"meet_listener: {listener_id!r} is not one of the model's {len(self.model.config.identities)} "
                "training listeners, so it has no identity vector for them; a told agent answers as a training "
                "listener only (use identity='mean' for others)"
            )
        self.style, self.listener = self.model.identity_style(listener_id), listener_id

    def reset(self, *, seed: int | None = None) -> None:
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self._heard: list[str] = []
        self._pending: list[str] = []  # words heard since the last unit's slot
        self._units: list[tuple[list[int], np.ndarray]] = []  # per unit: word ids, speaker window
        self._codes: list[int] = []
        self._frames = np.zeros((0, 56), np.float32)  # decoded frames of the current unit
        self._next_step = 0

    def act_frames(self, observation: Observation) -> np.ndarray:
        step = int(np.asarray(observation["step"]).reshape(-1)[0])
        if self.told and self.listener is None:
            raise ValueError(
                f"{type(self).__name__}(identity={TOLD!r}) was not told who listens: call "
                "agent.meet_listener(listener_id) before the episode (`dyadic eval --tell-listener ROW` does)"
            )
        if step == 0 and self._next_step:
            self.reset()  # a new episode began without reset()
        if step != self._next_step:
            raise ValueError(
                f"{type(self).__name__}.act: observation of frame {step} but the episode is at frame {self._next_step}; "
                "call agent.reset() at the start of every episode"
            )
        words = split_words(str(observation.get("words", "")))
        self._pending += new_words(self._heard, words)
        self._heard = words
        unit = self.model.config.unit_frames
        if step % unit == 0:
            self._decide(observation)
        offset = step % unit
        self._next_step = step + self.chunk_size
        return self._frames[offset : offset + self.chunk_size].astype(np.float64)

    @torch.no_grad()
    def _decide(self, observation: Observation) -> None:
        """Draw the code of the unit starting now and decode its frames."""
        config = self.model.config
        speaker = np.asarray(observation["speaker_motion"], np.float32)
        if len(speaker) < config.speaker_frames:
            raise ValueError(
                f"{config.variant} reads {config.speaker_frames} speaker frames a unit, the env gives {len(speaker)}; "
                f"create the env with context_frames >= {config.speaker_frames}"
            )
        # The env's frames before the clip's start are zeros, as speaker_windows pads them in training.
        mean, std = self._speaker_stats
        window = ((speaker[-config.speaker_frames :] - mean) / std).astype(np.float32)
        self._units.append((self.words.ids(self._pending)[-config.max_words_per_unit :], window))
        self._pending = []
        first = max(0, len(self._units) - config.max_context_units)
        kept = self._units[first:]
        previous = [BOS if u == 0 else self._codes[u - 1] for u in range(first, len(self._units))]
        units = Units([w for w, _ in kept], np.stack([s for _, s in kept]), np.asarray(previous, np.int64))
        with torch_threads(self.num_threads):
            logits = self.model.slot_logits(collate([units], self.pad_id))[0, -1]
            code = self._draw(logits)
            self._codes.append(code)
            codes = torch.tensor(self._codes[-DECODE_UNITS:])[None]
            frames = self.model.decode_codes(codes, self.style)[0, -config.unit_frames :]
        self._frames = frames.numpy()

    def _draw(self, logits: torch.Tensor) -> int:
        if self.mode == "greedy":
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def __repr__(self) -> str:
        return f"CodeListenerAgent({self.model.config.variant}, {self.mode}, chunk_size={self.chunk_size})"
