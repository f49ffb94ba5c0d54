"""Fingerprint of the synthetic generator and oracle on fixed seeds, to compare two revisions byte for byte.

Hashes of every generated array (``tiny`` and the first 40 ``small`` clips, seeds 0 and 3), the oracle's scores
(``repr``) of the recorded and of three synthesized listeners, the stepper's per-frame rewards and episode scores,
and every file ``write_synthetic`` writes for ``tiny``. Run it at each revision (``PYTHONPATH`` at its tree) and
``cmp`` the two outputs: ``python scripts/refactor_check/synthetic_fingerprint.py OUT.json``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dyadic_env.synthetic import PRESETS, Oracle, generate_clips, synthesize_listener, write_synthetic
from dyadic_env.synthetic.generator import SpeakerPlan

KINDS = ("appropriate", "generic_positive", "inattentive")


def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.tobytes() + f"{array.dtype}{array.shape}".encode()).hexdigest()[:16]


def clip_entries(seed: int, oracle: Oracle) -> dict[str, Any]:
    out: dict[str, Any] = {}
    clips = generate_clips(PRESETS["tiny"], seed=seed) + generate_clips(PRESETS["small"], seed=seed)[:40]
    for split, c in clips:
        key = f"{seed}/{c.clip_id}"
        out[key] = [split, digest(c.speaker_motion), digest(c.listener_motion), digest(c.speaker_affect),
                    digest(c.listener_affect), repr(c.speaker_words), json.dumps(c.meta, sort_keys=True),
                    c.speaker_id, c.listener_id]  # fmt: skip
        out[f"{key}/score"] = repr(oracle.score(c.speaker_motion, c.listener_motion, c.speaker_words))
        for kind in KINDS:
            listener = synthesize_listener(c, kind, seed=seed)
            out[f"{key}/{kind}"] = [
                digest(listener),
                repr(oracle.score(c.speaker_motion, listener, c.speaker_words)),
            ]
        stepper = oracle.stepper(c.speaker_motion, c.speaker_words)
        rewards = [stepper.step(frame) for frame in c.listener_motion]
        out[f"{key}/stepper"] = [
            digest(np.array(rewards)),
            repr(stepper.episode_scores()),
            repr(stepper.total),
        ]
        out[f"{key}/plan"] = repr(SpeakerPlan.from_clip(c))
    weights = {"empathy": 0.1, "appropriateness": 0.2, "engagement": 0.3, "naturalness": 0.4}
    stepper = Oracle(fps=25.0, weights=weights).stepper(clips[0][1].speaker_motion)  # no words, other weights
    frames = clips[1][1].listener_motion[: stepper.num_frames]
    out[f"{seed}/stepper_without_words"] = digest(np.array([stepper.step(f) for f in frames]))
    return out


def file_entries() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d"
        write_synthetic(PRESETS["tiny"], root, name="tiny")
        return {
            f"file/{p.relative_to(root)}": hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }


def main(out: str) -> None:
    oracle = Oracle(fps=PRESETS["small"].fps)
    entries = {**clip_entries(0, oracle), **clip_entries(3, oracle), **file_entries()}
    Path(out).write_text(json.dumps(entries, indent=0, sort_keys=True))
    print(f"{len(entries)} entries -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
