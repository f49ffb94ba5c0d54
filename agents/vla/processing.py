"""Turning clips and environment observations into VLA input tensors (text and action tokenizers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.vla.configuration import VLAConfig
from agents.vla.text import WordEncoder, split_words
from dyadic_env.data import Clip
from dyadic_env.tokenizer import ActionTokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ACTION_TOKENIZER_FILE = "action_tokenizer.json"
TEXT_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class VLAProcessor:
    """Text tokenizer + action tokenizer + batching rules of one VLA checkpoint.

    Args:
        text_tokenizer: a Hugging Face tokenizer for the speaker's words.
        action_tokenizer: the fitted :class:`~dyadic_env.tokenizer.ActionTokenizer`.
        config: the model's config (speaker input kind, fps, context frames).
        max_words_per_frame: text tokens kept per frame.
    """

    def __init__(
        self,
        text_tokenizer: PreTrainedTokenizerBase,
        action_tokenizer: ActionTokenizer,
        config: VLAConfig,
        max_words_per_frame: int = 16,
    ) -> None:
        self.text_tokenizer = text_tokenizer
        self.action_tokenizer = action_tokenizer
        self.config = config
        self.words = WordEncoder(text_tokenizer, max_words_per_frame)

    # --- persistence ---------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.text_tokenizer.save_pretrained(path)
        self.action_tokenizer.save(path / ACTION_TOKENIZER_FILE)

    @staticmethod
    def exists(path: str | Path) -> bool:
        return (Path(path) / ACTION_TOKENIZER_FILE).exists()

    @classmethod
    def from_pretrained(cls, path: str | Path, config: VLAConfig | None = None) -> VLAProcessor:
        from transformers import AutoTokenizer

        path = Path(path)
        if not cls.exists(path):
            raise FileNotFoundError(
                f"{path}: no {ACTION_TOKENIZER_FILE}; is this a VLA checkpoint written by `dyadic train sft`?"
            )
        config = config or VLAConfig.from_pretrained(path)
        return cls(
            AutoTokenizer.from_pretrained(path), ActionTokenizer.load(path / ACTION_TOKENIZER_FILE), config
        )

    # --- clips ---------------------------------------------------------------------------------------------
    def speaker_inputs(self, clip: Clip) -> np.ndarray:
        """(T, speaker_dim) float32: the clip's visual features, or its speaker motion."""
        if self.config.speaker_input == "features":
            if clip.speaker_features is None:
                raise ValueError(
                    f"clip {clip.clip_id!r} has no speaker_features but the model was trained on features; use a "
                    "dataset with features (`dyadic data features`) or a model trained on motion"
                )
            x = clip.speaker_features
        else:
            x = clip.speaker_motion
        if x.shape[1] != self.config.speaker_dim:
            raise ValueError(
                f"clip {clip.clip_id!r}: speaker inputs have width {x.shape[1]}, the model expects "
                f"{self.config.speaker_dim} ({self.config.speaker_input})"
            )
        return np.asarray(x, dtype=np.float32)

    def clip_example(
        self, clip: Clip, tokens: np.ndarray | None = None, start: int = 0, length: int | None = None
    ) -> dict[str, Any]:
        """One training example: speaker inputs, words per frame and listener tokens of frames [start, end).

        ``tokens`` (T, 56) default to the clip's listener encoded with the action tokenizer. The first frame of a
        crop keeps its real previous listener frame as state (``prev_frame``), so crops are exact.
        """
        if tokens is None:
            tokens = self.action_tokenizer.encode(np.asarray(clip.listener_motion))
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.shape != (clip.num_frames, self.config.action_dim):
            raise ValueError(
                f"tokens for clip {clip.clip_id!r}: expected shape ({clip.num_frames}, {self.config.action_dim}), "
                f"found {tokens.shape}"
            )
        end = clip.num_frames if length is None else min(clip.num_frames, start + length)
        words = self.words.frame_ids(clip.speaker_words, clip.num_frames, clip.fps)[start:end]
        prev = self.action_tokenizer.decode(tokens[start - 1]) if start > 0 else None
        return {
            "speaker_inputs": self.speaker_inputs(clip)[start:end], "words": words,
            "actions": tokens[start:end], "prev_frame": prev,
        }  # fmt: skip

    def collate(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad examples into a frame-structured batch (keys as :meth:`VLAForListening.forward` takes them)."""
        b = len(examples)
        t = max(len(e["actions"]) for e in examples)
        w = max([len(ids) for e in examples for ids in e["words"]] + [0])
        d, n = self.config.speaker_dim, self.config.action_dim
        speaker = np.zeros((b, t, d), np.float32)
        actions = np.zeros((b, t, n), np.int64)
        prev = np.zeros((b, t, n), np.float32)
        word_ids = np.full((b, t, w), self.words.pad_id, np.int64)
        word_mask = np.zeros((b, t, w), bool)
        frame_mask = np.zeros((b, t), bool)
        for i, e in enumerate(examples):
            k = len(e["actions"])
            speaker[i, :k], actions[i, :k], frame_mask[i, :k] = e["speaker_inputs"], e["actions"], True
            decoded = self.action_tokenizer.decode(e["actions"])
            prev[i, 1:k] = decoded[: k - 1]
            if e.get("prev_frame") is not None:
                prev[i, 0] = e["prev_frame"]
            for j, ids in enumerate(e["words"]):
                word_ids[i, j, : len(ids)] = ids
                word_mask[i, j, : len(ids)] = True
        return {
            "speaker_inputs": torch.from_numpy(speaker), "prev_listener": torch.from_numpy(prev),
            "word_ids": torch.from_numpy(word_ids), "word_mask": torch.from_numpy(word_mask),
            "frame_mask": torch.from_numpy(frame_mask), "actions": torch.from_numpy(actions),
        }  # fmt: skip

    def clips_batch(
        self, clips: Sequence[Clip], tokens: Sequence[np.ndarray] | None = None
    ) -> dict[str, torch.Tensor]:
        """A teacher-forced batch of whole clips (with given listener tokens, default the clips' own)."""
        given: Sequence[np.ndarray | None] = tokens if tokens is not None else [None] * len(clips)
        return self.collate([self.clip_example(c, tok) for c, tok in zip(clips, given)])

    # --- environment observations --------------------------------------------------------------------------
    def observation_speaker(self, observation: Mapping[str, Any]) -> np.ndarray:
        """(K, speaker_dim) speaker inputs of an observation window."""
        key = "speaker_features" if self.config.speaker_input == "features" else "speaker_motion"
        if key not in observation:
            raise KeyError(
                f"observation has no {key!r} but the model reads {self.config.speaker_input}; make the env on a "
                "dataset with speaker features"
                if key == "speaker_features"
                else f"observation has no {key!r}"
            )
        return np.asarray(observation[key], dtype=np.float32)

    def observation_batch(self, observations: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """A batch of independent observation windows, for stateless policies (e.g. Stable-Baselines3).

        Window frame ``i`` gets speaker frame ``i`` and, as state, ``listener_motion[i]`` (the env gives frames
        t-K..t-1, so the state of the current frame is the last action). Invalid frames (``mask`` 0) take no
        tokens. The observation's ``words`` have no timing, so all of them are placed at the current frame.
        Autoregressive models also get ``window_actions`` (B, K, 56): the tokens of every window frame but the
        last (re-encoded from the decoded listener frames).
        """
        b = len(observations)
        first = self.observation_speaker(observations[0])
        k = first.shape[0]
        speaker = np.stack([self.observation_speaker(o) for o in observations])
        prev = np.stack([np.asarray(o["listener_motion"], np.float32) for o in observations])
        mask = np.stack([np.asarray(o["mask"]).astype(bool) for o in observations])
        mask[:, -1] = True  # the current frame is always valid
        ids = [self.words.ids(split_words(str(o.get("words", "")))) for o in observations]
        w = max([len(x) for x in ids] + [0])
        word_ids = np.full((b, k, w), self.words.pad_id, np.int64)
        word_mask = np.zeros((b, k, w), bool)
        for i, x in enumerate(ids):
            word_ids[i, -1, : len(x)], word_mask[i, -1, : len(x)] = x, True
        window_actions = np.zeros((b, k, self.config.action_dim), np.int64)
        window_actions[:, :-1] = self.action_tokenizer.encode(prev[:, 1:])
        return {
            "speaker_inputs": torch.from_numpy(speaker), "prev_listener": torch.from_numpy(prev),
            "word_ids": torch.from_numpy(word_ids), "word_mask": torch.from_numpy(word_mask),
            "frame_mask": torch.from_numpy(mask), "window_actions": torch.from_numpy(window_actions),
        }  # fmt: skip
