"""Writing synthetic datasets: named presets, the on-disk cache, and the calibration table."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.data.writer import write_dataset
from dyadic_env.expression_basis import EXPRESSION, JAW_POSE, NECK_POSE, ict_index
from dyadic_env.synthetic.appropriate import DEFAULT_SET_SIZE, SETS_VERSION, SetDraw, iter_clips_with_sets
from dyadic_env.synthetic.config import PRESETS, SyntheticConfig
from dyadic_env.synthetic.generator import GENERATOR_VERSION, generate_clips, iter_clips

DEFAULT_CACHE = Path("~/.cache/dyadic")


def preset_config(name: str) -> SyntheticConfig:
    """The configuration of a named preset (raises ValueError naming the presets for an unknown name)."""
    if name not in PRESETS:
        raise ValueError(f"unknown synthetic preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def cache_root() -> Path:
    """``$DYADIC_CACHE`` or ``~/.cache/dyadic``."""
    return Path(os.environ.get("DYADIC_CACHE") or DEFAULT_CACHE).expanduser()


def write_synthetic(
    config: SyntheticConfig, out: str | os.PathLike, *, seed: int | None = None, name: str = "synthetic",
    appropriate: int = DEFAULT_SET_SIZE,
) -> Path:  # fmt: skip
    """Generate ``config`` and write it as a dataset directory (with a tokenizer fitted on its train split).

    ``appropriate``: the size K of the appropriate-reaction set drawn for every val and test clip
    (:mod:`dyadic_env.synthetic.appropriate`; 0 for none). The sets come from their own random streams, so
    the clips are the same bytes whatever K is. ``write_dataset`` writes atomically, so ``out`` never holds
    a half-written dataset.
    """
    seed = config.seed if seed is None else int(seed)
    if appropriate < 0:
        raise ValueError(f"appropriate: expected a set size >= 0 (0: no sets), found {appropriate}")
    report: dict = {}
    items = (
        iter_clips_with_sets(config, seed, SetDraw(k=appropriate), report)
        if appropriate
        else iter_clips(config, seed)
    )
    extra = {"synthetic": {"preset": name, "seed": seed, "generator_version": GENERATOR_VERSION,
                           "config": config.to_dict()}}  # fmt: skip
    return write_dataset(
        out, items, fps=config.fps, expression_basis="ict-arkit", name=name, extra_manifest=extra,
        appropriate_info=report if appropriate else None,
    )  # fmt: skip


def write_preset(
    name: str, out: str | os.PathLike, seed: int | None = None, *, appropriate: int = DEFAULT_SET_SIZE
) -> Path:
    """Generate preset ``name`` (tiny, small, full) into ``out``; ``seed`` overrides the preset's seed;
    ``appropriate`` is the size of the val and test clips' appropriate sets (0: none)."""
    config = preset_config(name)
    return write_synthetic(config, out, seed=seed, name=f"synthetic-{name}", appropriate=appropriate)


def cached_preset(name: str, seed: int | None = None) -> Path:
    """The directory of preset ``name`` in the cache, generated on first use.

    The cache is ``$DYADIC_CACHE/synthetic/<name>-seed<seed>-v<generator version>-sets<sets version>``, with
    appropriate sets of the default size. Concurrent callers
    each write a private temporary directory and rename it into place; a caller that loses the race
    uses the winner's copy.
    """
    config = preset_config(name)
    seed = config.seed if seed is None else int(seed)
    path = cache_root() / "synthetic" / f"{name}-seed{seed}-v{GENERATOR_VERSION}-sets{SETS_VERSION}"
    if (path / "manifest.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_synthetic(config, tmp, seed=seed, name=f"synthetic-{name}")
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "manifest.json").exists():
                raise OSError(
                    f"{path} exists but holds no dataset (no manifest.json); delete it and retry"
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


# ---------------------------------------------------------------------------------------- calibration

# Real figures: DESIGN.md (two real 25 fps conversation clips) and, where noted, measured here on the same
# DualTalk demo clips (frame-to-frame change of the poses); speech rate and blink rate are common values.
REAL_FIGURES: dict[str, tuple[float, float, str]] = {
    "neck rotation std (rad)": (0.03, 0.12, "DESIGN.md"),
    "jaw rotation std (rad)": (0.01, 0.06, "DESIGN.md"),
    "expression per-dim std (active dims)": (0.05, 0.4, "target in blendshape weights (FLAME: 0.17-1.5)"),
    "expression max abs": (0.0, 1.0, "blendshape weights lie in [0, 1] (FLAME: about 4.3)"),
    "neck frame-to-frame change std (rad)": (0.004, 0.017, "DualTalk demo, measured"),
    "jaw frame-to-frame change std (rad)": (0.003, 0.032, "DualTalk demo, measured"),
    "speech rate while talking (words/s)": (2.3, 3.3, "conversational English, 140-200 wpm"),
    "blink rate (per s)": (0.15, 0.45, "typical spontaneous blinking"),
}


def calibration(clips: list[Clip] | None = None) -> list[dict[str, Any]]:
    """Real against synthetic statistics: rows of ``figure, real, speaker, listener, source``.

    Statistics are per clip, then the range (5th-95th percentile over clips and dims) is reported.
    ``clips`` defaults to the ``small`` preset's clips.
    """
    if clips is None:
        clips = [clip for _, clip in generate_clips(PRESETS["small"])]
    rows = []
    for figure, (low, high, source) in REAL_FIGURES.items():
        row: dict[str, Any] = {"figure": figure, "real": [low, high], "source": source}
        for role in ("speaker", "listener"):
            row[role] = _figure(figure, clips, role)
        rows.append(row)
    return rows


def _figure(figure: str, clips: list[Clip], role: str) -> list[float]:
    motions = [np.asarray(getattr(c, f"{role}_motion"), dtype=np.float64) for c in clips]
    values: list[np.ndarray] = []
    for clip, m in zip(clips, motions):
        if figure.startswith("neck rotation"):
            values.append(m[:, NECK_POSE].std(axis=0))
        elif figure.startswith("jaw rotation"):
            values.append(m[:, JAW_POSE].std(axis=0))
        elif figure.startswith("expression per-dim"):
            std = m[:, EXPRESSION].std(axis=0)
            values.append(std[std > 0.02])
        elif figure.startswith("expression max"):
            values.append(np.abs(m[:, EXPRESSION]).max(keepdims=True))
        elif figure.startswith("neck frame"):
            values.append(np.diff(m[:, NECK_POSE], axis=0).std(axis=0))
        elif figure.startswith("jaw frame"):
            values.append(np.diff(m[:, JAW_POSE], axis=0).std(axis=0))
        elif figure.startswith("speech rate"):
            talking = sum(b - a for a, b in clip.meta.get("phrases", [])) if role == "speaker" else 0
            values.append(np.array([len(clip.speaker_words) / talking]) if talking > 0 else np.zeros(0))
        elif figure.startswith("blink"):
            closed = m[:, ict_index("eyeBlink_L")] > 0.5
            onsets = np.count_nonzero(np.diff(closed.astype(int)) == 1)
            values.append(np.array([onsets / clip.duration]))
    flat = np.concatenate(values) if values else np.zeros(0)
    if flat.size == 0:
        return []
    return [round(float(np.percentile(flat, 5)), 4), round(float(np.percentile(flat, 95)), 4)]


def calibration_markdown(rows: list[dict[str, Any]]) -> str:
    """The calibration rows as a Markdown table."""
    lines = [
        "| figure | real | synthetic speaker | synthetic listener | real source |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        shown = [f"{a:g}-{b:g}" if len(v) == 2 else "-" for v in (r["real"], r["speaker"], r["listener"])
                 for a, b in [v if len(v) == 2 else (0, 0)]]  # fmt: skip
        lines.append(f"| {r['figure']} | {shown[0]} | {shown[1]} | {shown[2]} | {r['source']} |")
    return "\n".join(lines)
