"""Reference listeners for judging the oracle and the metrics: generated kinds and trivial policies on the
same speaker, and fresh listeners drawn from the benchmark's own mix (what a perfect imitation learner scores)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.metrics import evaluate
from dyadic_env.synthetic.config import POOR_KINDS, SyntheticConfig
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


def resampled_listeners(clips: Iterable[Clip], config: SyntheticConfig, seed: int = 0) -> list[np.ndarray]:
    """A fresh listener for each clip's speaker, its kind drawn from ``config``'s mix (appropriate, or a poor
    kind with probability ``poor_listener_fraction``, weighted by ``poor_kind_weights``).

    These are samples of the data distribution itself given the speaker: the best an imitation learner (SFT)
    can do is to sample like this. Different seeds give different listeners.
    """
    rng = np.random.default_rng([seed, 7])
    weights = np.array([config.poor_kind_weights.get(k, 0.0) for k in POOR_KINDS], dtype=np.float64)
    out = []
    for clip in clips:
        kind = "appropriate"
        if rng.random() < config.poor_listener_fraction:
            kind = str(rng.choice(POOR_KINDS, p=weights / weights.sum()))
        out.append(synthesize_listener(clip, kind, seed=int(rng.integers(2**31)), config=config))
    return out


def reference_metrics(
    clips: list[Clip], config: SyntheticConfig, *, oracle: Oracle | None = None, draws: int = 4, seed: int = 0
) -> dict[str, dict[str, float]]:
    """The paper's metrics against each clip's own listener, and the oracle's weighted score, for fresh
    listeners of the benchmark's mix (``resampled``) and of the appropriate kind only (``appropriate``), each
    averaged over ``draws`` draws. They bound what the metrics can ask of a policy: a perfect imitation
    learner scores like ``resampled``, so a bar set below it (e.g. a lower FD) rewards something else.
    """
    oracle = oracle or Oracle()
    gts = [np.asarray(c.listener_motion, np.float32) for c in clips]
    speakers = [np.asarray(c.speaker_motion, np.float32) for c in clips]
    appropriate = replace(config, poor_listener_fraction=0.0)
    table = {}
    for name, mix in (("resampled", config), ("appropriate", appropriate)):
        rows = []
        for draw in range(draws):
            listeners = resampled_listeners(clips, mix, seed=seed * 1000 + draw)
            row = evaluate(listeners, gts, speakers, seed=seed)
            row["oracle"] = float(np.mean(
                [oracle.weighted(oracle.score(c.speaker_motion, m, c.speaker_words)) for c, m in zip(clips, listeners)]
            ))  # fmt: skip
            rows.append(row)
        table[name] = {k: float(np.mean([r[k] for r in rows])) for k in ("L2", "FD", "P-FD", "oracle")}
    return table
