"""Reference listeners for judging the oracle: ground-truth kinds and trivial policies on the same speaker."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.synthetic.generator import synthesize_listener
from dyadic_env.synthetic.oracle import CRITERIA, Oracle
from dyadic_env.tokenizer import ActionTokenizer

GROUND_TRUTH_KINDS: tuple[str, ...] = (
    "appropriate",
    "generic_positive",
    "inattentive_frozen",
    "inattentive_drifting",
)
TRIVIAL_POLICIES: tuple[str, ...] = (
    "frozen_neutral",
    "copy_speaker",
    "shifted_copy",
    "random_tokens",
    "mean_listener",
)


def ground_truth_listeners(clip: Clip, seed: int = 0) -> dict[str, np.ndarray]:
    """Every generated listener kind answering ``clip``'s speaker (from the clip's generator truth)."""
    return {
        "appropriate": synthesize_listener(clip, "appropriate", seed=seed),
        "generic_positive": synthesize_listener(clip, "generic_positive", seed=seed),
        "inattentive_frozen": synthesize_listener(clip, "inattentive", seed=seed, mode="frozen"),
        "inattentive_drifting": synthesize_listener(clip, "inattentive", seed=seed, mode="drifting"),
    }


def trivial_listeners(
    clip: Clip,
    tokenizer: ActionTokenizer,
    mean_frame: np.ndarray,
    rng: np.random.Generator,
    shift_s: float = 0.5,
) -> dict[str, np.ndarray]:
    """Trivial policies, each passed through ``tokenizer`` as an agent's actions would be.

    ``frozen_neutral``: the all-zero (neutral) face; ``copy_speaker``: the speaker's own frames;
    ``shifted_copy``: the speaker delayed by ``shift_s``; ``random_tokens``: uniform random tokens;
    ``mean_listener``: the mean training listener frame held still.
    """
    speaker = np.asarray(clip.speaker_motion, dtype=np.float32)
    frames = speaker.shape[0]
    shift = min(frames - 1, round(shift_s * clip.fps))
    shifted = np.concatenate([np.repeat(speaker[:1], shift, axis=0), speaker[: frames - shift]])
    raw = {
        "frozen_neutral": np.zeros((frames, FRAME_DIM), np.float32),
        "copy_speaker": speaker,
        "shifted_copy": shifted,
        "mean_listener": np.repeat(np.asarray(mean_frame, np.float32)[None], frames, axis=0),
    }
    out = {name: tokenizer.decode(tokenizer.encode(m)) for name, m in raw.items()}
    out["random_tokens"] = tokenizer.decode(rng.integers(0, tokenizer.num_bins, size=(frames, FRAME_DIM)))
    return {name: out[name] for name in TRIVIAL_POLICIES}


def oracle_table(
    clips: Iterable[Clip], tokenizer: ActionTokenizer, mean_frame: np.ndarray, *, oracle: Oracle | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Mean oracle scores per listener (dataset ground truth, each generated kind, each trivial policy)."""
    oracle = oracle or Oracle()
    rng = np.random.default_rng(seed)
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for clip in clips:
        candidates = {
            f"dataset_{clip.meta.get('listener_kind', 'listener')}": np.asarray(clip.listener_motion)
        }
        candidates.update(ground_truth_listeners(clip, seed=seed))
        candidates.update(trivial_listeners(clip, tokenizer, mean_frame, rng))
        for name, motion in candidates.items():
            scores = oracle.score(clip.speaker_motion, motion, clip.speaker_words)
            acc = sums.setdefault(name, dict.fromkeys((*CRITERIA, "weighted"), 0.0))
            for key in acc:
                acc[key] += scores[key]
            counts[name] = counts.get(name, 0) + 1
    return {
        name: {k: v / counts[name] for k, v in acc.items()} | {"clips": counts[name]}
        for name, acc in sums.items()
    }
