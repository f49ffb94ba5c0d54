"""``VLAAgent``: the VLA as an :class:`agents.Agent` for ``dyadic_env/Listener-v0``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.vla.decoding import DecodeState, Sampler, decode_frames
from agents.vla.text import new_words, split_words
from dyadic_env.data import Clip

if TYPE_CHECKING:
    from agents.vla.modeling import VLAForListening


class VLAAgent:
    """The listener VLA acting in closed loop.

    With ``use_cache`` (default) each step feeds only the new frame (the words heard since the last step, the
    current speaker frame and the agent's own last frame from ``observation["listener_motion"][-1]``) and
    reuses the key-value cache, so the policy conditions on the whole episode so far; its log-probabilities
    are exactly :meth:`log_probs` of the trajectory. Without the cache each step recomputes the observation
    window (K frames), the stateless policy ``VLAForListening.window_logits`` evaluates (used by PPO).

    Args:
        model: a :class:`~agents.vla.VLAForListening` with its processor attached (``model.processor``).
        temperature: sampling temperature (``mode="sample"``); None: the checkpoint's ``decode_temperature``.
        greedy: take the most likely bin of every dimension (same as ``mode="greedy"``).
        seed: seeds sampling (``reset(seed=...)`` reseeds).
        use_cache: carry the key-value cache across steps (default) or recompute the window each step.
        device: torch device for the model.
        mode: ``"sample"``, ``"greedy"``, ``"mean"`` or ``"mean_expression"`` (None: the checkpoint's
            ``decode_mode``); see :class:`~agents.vla.decoding.Sampler`.
        max_context_frames: with the cache, keep at most this many past frames in it (None: the checkpoint's
            ``max_context_frames``, set by SFT on crops; 0: the whole episode).
        num_threads: torch CPU threads while acting (restored after). A frame is two or three tokens at batch
            1, too little work to split: one thread is fastest, and on a busy machine avoids OpenMP spinning
            (latencies: ``dyadic bench policy``). None keeps torch's setting.
    """

    def __init__(
        self,
        model: VLAForListening,
        *,
        temperature: float | None = None,
        greedy: bool = False,
        seed: int | None = None,
        use_cache: bool = True,
        device: str | torch.device = "cpu",
        num_threads: int | None = 1,
        mode: str | None = None,
        max_context_frames: int | None = None,
    ) -> None:
        if getattr(model, "processor", None) is None:
            raise ValueError(
                "model has no processor (tokenizers); load it with VLAForListening.from_pretrained(dir)"
            )
        self.model = model.eval()
        self.model.to(torch.device(device))  # in place: a module's .to returns itself
        self.processor = model.processor
        self.device = torch.device(device)
        self.use_cache = use_cache
        self.num_threads = num_threads if self.device.type == "cpu" else None
        self.generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        config = model.config
        window = config.max_context_frames if max_context_frames is None else max_context_frames
        self.max_context_frames = int(window or 0)
        self.sampler = Sampler(
            temperature=float(config.decode_temperature if temperature is None else temperature), greedy=greedy,
            generator=self.generator, mode=config.decode_mode if mode is None else mode,
            expression_dim=config.expression_dim,
        )  # fmt: skip
        self.last_log_prob: float | None = None
        self.reset()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        temperature: float | None = None,
        greedy: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> VLAAgent:
        """Load a checkpoint directory (``dyadic train sft`` writes ``OUTPUT_DIR/final``; a run directory works
        too and resolves to its ``final/`` or latest checkpoint)."""
        from agents.vla.modeling import VLAForListening

        model = VLAForListening.from_pretrained(resolve_checkpoint(path))
        return cls(model, temperature=temperature, greedy=greedy, seed=seed, **kwargs)

    # --- Agent protocol ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None) -> None:
        """Start an episode (clears the cache); ``seed`` reseeds sampling."""
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self._state, self._next_step = DecodeState(), 0
        self._heard: list[str] = []
        self._prev: np.ndarray | None = None  # the listener frame fed at the last step (the next one's prev2)

    def act(self, observation: Mapping[str, Any]) -> np.ndarray:
        """Tokens (56,) int64 for the observation's current frame."""
        step = int(np.asarray(observation.get("step", [self._next_step])).reshape(-1)[0])
        if step == 0 and self._next_step != 0:
            self.reset()  # a new episode began without reset(); start over rather than mix episodes
        if self.use_cache and step != self._next_step:
            raise ValueError(
                f"VLAAgent.act: observation of frame {step} but the cached episode is at frame {self._next_step}; "
                "call agent.reset() at the start of every episode (or use use_cache=False)"
            )
        inputs = self._cached_inputs(observation) if self.use_cache else self._window_inputs(observation)
        state = self._state if self.use_cache else DecodeState()
        with torch_threads(self.num_threads):
            tokens, logp, state = decode_frames(self.model, inputs, state, self.sampler)
        if self.use_cache:
            if self.max_context_frames:
                state.keep_last_frames(self.max_context_frames)
            self._state = state
        self._next_step = step + 1
        self.last_log_prob = float(logp[0])
        return tokens[0].cpu().numpy().astype(np.int64)

    def _cached_inputs(self, observation: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        words = split_words(str(observation.get("words", "")))
        ids = self.processor.words.ids(new_words(self._heard, words))
        self._heard = words
        speaker = self.processor.observation_speaker(observation)[-1]
        prev = np.asarray(observation["listener_motion"], np.float32)[-1]
        prev2 = np.zeros_like(prev) if self._prev is None else self._prev
        self._prev = prev
        w = len(ids)
        return {
            "prev2_listener": torch.from_numpy(prev2)[None, None].to(self.device),
            "speaker_inputs": torch.from_numpy(speaker)[None, None].to(self.device),
            "prev_listener": torch.from_numpy(prev)[None, None].to(self.device),
            "word_ids": torch.tensor(ids, dtype=torch.long).view(1, 1, w).to(self.device),
            "word_mask": torch.ones(1, 1, w, dtype=torch.bool, device=self.device),
        }  # fmt: skip

    def _window_inputs(self, observation: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        window = self.processor.observation_batch([observation])
        inputs = {k: v.to(self.device) for k, v in window.items() if k != "window_actions"}
        if self.model.vla.autoregressive:
            inputs["actions"] = window["window_actions"].to(self.device)
        return inputs

    # --- log-probabilities for DPO and PPO ---------------------------------------------------------------------
    @torch.no_grad()
    def log_probs(self, clip: Clip, tokens: np.ndarray) -> np.ndarray:
        """Per-step log pi(a_t | s_1..t, a_1..t-1) (T,) of a closed-loop trajectory ``tokens`` (T, 56).

        The cached agent's sampling distribution (temperature 1) factorises exactly into these terms. With
        nod gestures (``gesture_frames > 0``) each step also holds the nod decision's log-probability, with
        the nods found in ``tokens`` (:func:`agents.vla.gestures.nod_onsets`) standing in for the ones the
        agent drew; the two agree where the detector recovers the drawn nods.
        """
        batch = {k: v.to(self.device) for k, v in self.processor.clips_batch([clip], [tokens]).items()}
        return self.model.step_logprobs(batch)[0].cpu().numpy()

    def trajectory_log_prob(self, clip: Clip, tokens: np.ndarray) -> float:
        """log pi(A_1:T | S_1:T) of a trajectory: the sum of :meth:`log_probs` (paper eq. 11's terms)."""
        return float(self.log_probs(clip, tokens).sum())

    def __repr__(self) -> str:
        mode = (
            f"temperature={self.sampler.temperature}" if self.sampler.mode == "sample" else self.sampler.mode
        )
        return f"VLAAgent({self.model.config.decoding}, {mode}, use_cache={self.use_cache})"


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run a block with ``count`` torch CPU threads (None: unchanged)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_checkpoint(path: str | Path) -> Path:
    """A VLA checkpoint directory from a checkpoint or a run directory (its ``final/``, else latest checkpoint)."""
    from agents.vla.processing import ACTION_TOKENIZER_FILE
    from agents.vla.sft import FINAL_DIR, latest_checkpoint

    path = Path(path)
    if (path / "config.json").exists() and (path / ACTION_TOKENIZER_FILE).exists():
        return path
    if (path / FINAL_DIR / "config.json").exists():
        return path / FINAL_DIR
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    raise FileNotFoundError(
        f"{path}: not a VLA checkpoint (no config.json and {ACTION_TOKENIZER_FILE}) nor a run directory with "
        "final/ or checkpoint-*; train one with `dyadic train sft`"
    )
