"""The quickstart's Markdown report, plots and sample video."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TABLE_II = ("GT", "random", "nn", "mean", "SFT", "SFT+DPO", "SFT+PPO")
TABLE_IV = (("Full (SFT+DPO)", "SFT+DPO"), ("Random-Prefer", "Random-Prefer"), ("SFT-Preferred", "SFT-Preferred"),
            ("SFT-Only", "SFT"))  # fmt: skip
PAPER_II = (("L2 ↓", "L2", 1.0), ("FD ↓", "FD", 1.0), ("Variation", "Variation", 1.0),
            ("Diversity", "Diversity", 1.0), ("P-FD ↓", "P-FD", 1.0), ("L2 Affect(10^2) ↓", "L2 Affect", 100.0))  # fmt: skip
PAPER_IV = (
    ("L2 ↓", "L2", 1.0),
    ("FD ↓", "FD", 1.0),
    ("P-FD ↓", "P-FD", 1.0),
    ("L2 Affect(10^2) ↓", "L2 Affect", 100.0),
)
ORACLE = (("Emp. ↑", "empathy", 1.0), ("App. ↑", "appropriateness", 1.0), ("Eng. ↑", "engagement", 1.0),
          ("Nat. ↑", "naturalness", 1.0), ("Oracle ↑", "weighted", 1.0))  # fmt: skip
NAMES = {"random": "Random", "nn": "NN", "mean": "Mean"}
_MEAN_NOTE = (
    "Mean plays the training listeners' mean frame whatever the speaker does. L2, FD and P-FD compare each clip "
    "with its one recorded listener, so they reward a listener that hedges between the responses people give; "
    "a policy shows that it reads the speaker by beating Mean there while the oracle scores it far higher.",
    "",
)


def table(
    rows: Mapping[str, Mapping[str, float]],
    order: Sequence[tuple[str, str]],
    columns: Sequence[tuple[str, str, float]],
) -> str:
    """A Markdown table of ``rows`` (``order``: (shown name, row key)) over ``columns`` (title, key, scale)."""
    lines = ["| Method | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for shown, key in order:
        if key not in rows:
            continue
        cells = [f"{rows[key][k] * s:.4f}" if k in rows[key] else "" for _, k, s in columns]
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_difference(
    per_clip: Mapping[str, Any], a: str, b: str, key: str = "weighted", seed: int = 0
) -> dict[str, float]:
    """Mean per-clip difference ``a - b`` of an oracle criterion with a 95 % bootstrap interval over clips."""
    x = np.array([s[key] for s in per_clip[a]]) - np.array([s[key] for s in per_clip[b]])
    rng = np.random.default_rng(seed)
    boot = rng.choice(x, size=(2000, len(x)), replace=True).mean(1)
    low, high = np.quantile(boot, [0.025, 0.975])
    return {"mean": float(x.mean()), "low": float(low), "high": float(high), "n": len(x)}


def write_quickstart_report(
    config: Any,
    results: Mapping[str, Any],
    out: Path,
    timings: Mapping[str, float],
    *,
    log: Callable[[str], None] = print,
) -> Path:
    """Write ``out/report.md`` (and ``plots/``, ``sample.mp4``); returns the report's path."""
    rows = results["rows"]
    feedback = _read_json(out / "feedback" / "summary.json")
    rm = _read_json(out / "sft_ppo.work" / "rm" / "training.json")
    lines = [
        "# Quickstart report",
        "",
        f"Synthetic benchmark `{config.preset}` (seed {config.seed}), `{results['split']}` split: "
        f"{results['num_clips']} clips, {results['num_frames']} frames, closed-loop rollouts. VLA policies decode "
        f"({results.get('mode', 'sample')}) at temperature {results.get('temperature', 1.0)} with common random "
        f"numbers, {results.get('samples', 1)} samples a clip (the paper's metrics score the first; the oracle's "
        "averages all); the oracle columns are the hidden oracle's criteria (1-5) and its weighted score (paper "
        "eq. 10), which never fed training except through the simulated annotators' ratings.",
        "",
        *_headline(config, results),
        "## Comparison (shaped like paper Table II)",
        "",
        table(rows, [(NAMES.get(k, k), k) for k in TABLE_II], PAPER_II),
        "",
        *_MEAN_NOTE * ("mean" in rows),
        "## Ablation (shaped like paper Table IV)",
        "",
        table(rows, TABLE_IV, PAPER_IV),
        "",
        "## The oracle's criteria (what the preferences were about)",
        "",
        table(rows, [(NAMES.get(k, k), k) for k in rows], ORACLE),
        "",
        *_react_lines(results),
    ]
    per_clip = results.get("per_clip", {})
    if per_clip.get("SFT"):
        lines += [
            "Paired per-clip difference of the oracle's weighted score against SFT (95 % bootstrap over clips):",
            "",
        ]
        lines += ["| Policy | Δ weighted | 95 % CI |", "|---|---|---|"]
        for name in rows:
            if name in per_clip and per_clip[name] and name not in ("SFT", "GT"):
                d = paired_difference(per_clip, name, "SFT")
                lines.append(
                    f"| {NAMES.get(name, name)} | {d['mean']:+.3f} | [{d['low']:+.3f}, {d['high']:+.3f}] |"
                )
        lines.append("")
    lines += _dpo_vs_ppo(rows, feedback, rm, out)
    plots = _plots(results, out)
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in plots] + [""]
    video = _sample_video(config, results, out, log) if getattr(config, "render", True) else None
    if video is not None:
        lines += [
            "## Sample",
            "",
            f"`{video.relative_to(out)}`: speaker | SFT+DPO listener on a test clip.",
            "",
        ]
    lines += [
        "## Stages",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in timings.items()],
        "",
        "TensorBoard: `tensorboard --logdir " + str(out) + "` (SFT, DPO, reward model, PPO).",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def _headline(config: Any, results: Mapping[str, Any]) -> list[str]:
    """The headline aligner's paired gain over SFT on the oracle, with its 95 % bootstrap interval over clips."""
    per_clip = results.get("per_clip", {})
    name = getattr(config, "headline", "") or next(iter(getattr(config, "aligners", {}) or {}), "")
    if not name or not per_clip.get(name) or not per_clip.get("SFT"):
        return []
    d = paired_difference(per_clip, name, "SFT")
    verdict = "excludes zero" if d["low"] > 0 or d["high"] < 0 else "includes zero: no measurable change"
    return [
        f"**{name} against SFT on the hidden oracle (paper eq. 10): {d['mean']:+.3f} "
        f"[{d['low']:+.3f}, {d['high']:+.3f}]** (mean per-clip difference over {d['n']} test clips, 95 % bootstrap "
        f"interval, which {verdict}). One seed of one collection; `dyadic benchmark alignment` gives every aligner "
        "over 5 seeds and label budgets (docs/results/alignment.md).",
        "",
    ]


def _react_lines(results: Mapping[str, Any]) -> list[str]:
    """REACT's table over every row's K samples (:func:`experiments.pipelines.evaluation.react_section`)."""
    from dyadic_env.metrics.table import REACT_COLUMNS
    from experiments.scoring import GT_ROW, HELD_OUT_ROW

    if "react_samples" not in results:
        if "react_rows" not in results:
            return []  # the dataset has no appropriate-reaction sets
        return ["REACT's metrics: this eval.json predates them; delete it and rerun to evaluate again.", ""]
    react, k, sets = results["react_rows"], results["react_samples"], results["appropriate"]
    names = list(dict.fromkeys([GT_ROW, HELD_OUT_ROW, *results["rows"]]))  # references first, each once
    columns = [c for c in REACT_COLUMNS if c[1] != "weighted"]  # the oracle has its own table above
    return [
        "## REACT's metrics (several fitting answers to one speaker)",
        "",
        f"Each row's {k} samples a clip against the clip's set of appropriate reactions ({sets['method']}, "
        f"{sets['mean_size']:.1f} a clip; docs/metrics.md). FRCorr and FRDist are REACT's sums over the {k} samples, "
        "`/pred` one sample's. Better: FRCorr higher (concordance with the closest appropriate reaction), FRDist "
        "lower (DTW distance to it), FRSyn lower (frames of lag to the speaker); FRDiv (between a clip's samples), "
        "FRDvs (across clips) and FRVar (over time) measure spread. GT plays the recorded listener as every "
        f"sample; {HELD_OUT_ROW} are fresh appropriate listeners in no set: what answering well scores.",
        "",
        table(react, [(NAMES.get(n, n), n) for n in names], columns),
        "",
    ]


def _dpo_vs_ppo(rows: Mapping[str, Any], feedback: dict | None, rm: dict | None, out: Path) -> list[str]:
    if not feedback:
        return []
    lines = [
        "## DPO and PPO at the same preference labels",
        "",
        f"Both start from the same SFT checkpoint and learn from the same {feedback['pairs']} preference pairs "
        f"({feedback['groups']} groups of {feedback['candidates_per_group']} candidates, {feedback['ratings']} "
        "simulated ratings). DPO trains on the pairs directly; PPO trains on a Bradley-Terry reward-model "
        "ensemble fitted to the same pairs"
        + (_rm_figures(rm["figures"]) if rm else "")
        + ", with a per-step KL penalty to the SFT policy.",
        "",
        "| Method | labels (pairs) | Oracle ↑ | L2 ↓ | FD ↓ |",
        "|---|---|---|---|---|",
    ]
    for name in ("SFT", "SFT+DPO", "SFT+PPO"):
        if name in rows:
            r = rows[name]
            labels = 0 if name == "SFT" else feedback["pairs"]
            lines.append(
                f"| {name} | {labels} | {r.get('weighted', float('nan')):.4f} | {r['L2']:.4f} | {r['FD']:.4f} |"
            )
    return [*lines, ""]


def _rm_figures(figures: dict[str, float]) -> str:
    text = f" (held-out pair accuracy {figures['val_accuracy']:.3f}, train {figures['train_accuracy']:.3f}"
    mae = figures.get("val_criteria_mae", float("nan"))
    if not np.isnan(mae):  # the criteria head had held-out ratings to predict
        text += f"; its criteria head predicts held-out mean ratings within {mae:.2f} points"
    return text + ")"


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _plots(results: Mapping[str, Any], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    made = []
    rows, per_clip = results["rows"], results.get("per_clip", {})
    names = [n for n in rows if per_clip.get(n)]
    if names:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        means = [rows[n]["weighted"] for n in names]
        errs = [
            1.96 * np.std([s["weighted"] for s in per_clip[n]]) / np.sqrt(len(per_clip[n])) for n in names
        ]
        ax.bar([NAMES.get(n, n) for n in names], means, yerr=errs, color="tab:blue", alpha=0.8, capsize=3)
        ax.set_ylabel("oracle weighted score (1-5)")
        ax.set_title("Test split, mean over clips (95 % CI)")
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(plots / "oracle_scores.png", dpi=110)
        plt.close(fig)
        made.append(plots / "oracle_scores.png")
    log_file = out / "sft_dpo" / "dpo_log.jsonl"
    if log_file.exists():
        entries = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
        entries = [e for e in entries if "rewards/margins" in e]
        if entries:
            fig, ax = plt.subplots(figsize=(7, 3.5))
            steps = [e["step"] for e in entries]
            for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
                ax.plot(steps, [e[key] for e in entries], label=key)
            ax.set_xlabel("DPO step")
            ax.legend()
            ax.set_title("DPO implicit rewards (trl)")
            fig.tight_layout()
            fig.savefig(plots / "dpo_rewards.png", dpi=110)
            plt.close(fig)
            made.append(plots / "dpo_rewards.png")
    return made


def _sample_video(
    config: Any, results: Mapping[str, Any], out: Path, log: Callable[[str], None]
) -> Path | None:
    """Render SFT+DPO's listener on the first test clip beside the speaker (skipped without a renderer)."""
    policy = out / "sft_dpo"
    video = out / "sample.mp4"
    if video.exists():
        return video
    if not policy.exists():
        return None
    try:
        from dyadic_env.data import load_dataset
        from dyadic_env.render import render_video
        from experiments.pipelines.evaluation import vla_trajectories

        data = load_dataset(out / "data")
        clip = data.clip(results["per_clip"]["clip_ids"][0])
        decoding = {"temperature": results.get("temperature", 1.0), "mode": results.get("mode", "sample")}
        frames = vla_trajectories(policy, [clip], seed=config.seed, **decoding)[0][0]
        words = sorted(clip.speaker_words, key=lambda w: w[1])
        captions = [
            " ".join(w[2] for w in words if t / clip.fps - 3.0 < w[1] <= t / clip.fps)[-40:]
            for t in range(clip.num_frames)
        ]
        render_video(video, np.asarray(clip.speaker_motion), frames, clip.fps, captions=captions,
                     expression_basis=data.expression_basis)  # fmt: skip
        return video
    except Exception as e:  # the report must not fail for want of an OpenGL driver
        log(f"[report] no sample video ({type(e).__name__}: {e})")
        return None
