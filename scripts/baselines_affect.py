"""Why a baseline loses to Random on L2 Affect: the metric's error split into its parts.

L2 Affect is the squared error of 30-frame valence means, so over a split's windows it is (up to how clips of
different lengths are weighted) ``bias^2 + sd_pred^2 + sd_gt^2 - 2 corr sd_pred sd_gt``
(:func:`dyadic_env.metrics.l2_affect_parts`): a row scores well by tracking the recorded listener's
valence (``corr``) or by not moving it (``sd_pred`` near 0: Random's noise and Mean's still face both average
to a neutral valence). ``linear`` (a ridge regression from the speaker context) shows what reading the speaker
gives without sampling. Where a code model loses it: ``... VQ round trip`` rows put the recorded listener through
the model's VQ-VAE (MMLHG's decoded with the identity read from the clip itself, and with the average identity
its policy answers with); ``recorded, level unknown`` is the recorded valence with each listener's own level
(their mean over their training frames) replaced by the average listener's: the most a policy that is not told
who listens can follow. For a given ``corr`` the best spread is ``corr * sd_gt``; the page prints it beside each
row's spread. It also prints how much of the recorded valence is each listener's own level (variance between
listeners' means), which no agent can know: the env does not say who the listener is.

    python scripts/baselines_affect.py [--runs runs/baselines] [--seeds 0 1 2 3 4] [--samples 10]

Reads the checkpoints scripts/baselines_results.sh trains; writes docs/results/baselines_affect.md.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from agents.baselines import LinearReadoutAgent, MeanAgent, RandomAgent
from agents.checkpoints import load_checkpoint_agent
from dyadic_env.data import load_dataset
from dyadic_env.metrics import l2_affect, l2_affect_parts
from dyadic_env.metrics.core import _window_means
from dyadic_env.rewards import listener_affect_estimator
from experiments.evaluation import rollout_agents, summarize_seeds

PARTS = ["L2 Affect", "bias^2", "sd_pred", "best sd_pred", "corr"]


def window_valence(estimator, frames: np.ndarray) -> np.ndarray:
    return _window_means(estimator(np.asarray(frames))[:, 0])


def decompose(estimator, predictions: list[list[np.ndarray]], true: list[np.ndarray]) -> dict[str, float]:
    """L2 Affect (x100, the paper's unit) and its parts (:func:`l2_affect_parts`) over every prediction, against
    each clip's recorded valence ``true``."""
    valences = [[estimator(np.asarray(p))[:, 0] for p in samples] for samples in predictions]
    return decompose_valence(valences, true)


def decompose_valence(predictions: list[list[np.ndarray]], true: list[np.ndarray]) -> dict[str, float]:
    """:func:`decompose` on valence tracks (T,) rather than frames."""
    pairs = [(p, t) for samples, t in zip(predictions, true) for p in samples]
    parts = l2_affect_parts([p for p, _ in pairs], [g for _, g in pairs])
    return {"L2 Affect": 100 * float(np.mean([l2_affect(p, g) for p, g in pairs])), "bias^2": 100 * parts["bias2"],
            "sd_pred": parts["sd_pred"], "best sd_pred": parts["best_sd_pred"], "corr": parts["corr"]}  # fmt: skip


def round_trips(lm_listener, mmlhg, gts: list[np.ndarray]) -> dict[str, list[list[np.ndarray]]]:
    """Each recorded track through each VQ-VAE (encode, quantise, decode), one prediction a clip."""

    def through(model, identity=None):
        return [[model.reconstruct(np.asarray(g, np.float32), identity)[: len(g)]] for g in gts]

    return {"LM-listener VQ round trip": through(lm_listener),
            "MMLHG VQ round trip (clip's identity)": through(mmlhg),
            "MMLHG VQ round trip (mean identity)": through(mmlhg, "mean")}  # fmt: skip


def level_unknown(data, estimator, clip_ids: list[str], true: list[np.ndarray]) -> list[np.ndarray]:
    """Each clip's recorded valence ``true`` with its listener's mean over their training frames replaced by the
    average training listener's."""
    by_listener: dict[str, list[np.ndarray]] = defaultdict(list)
    for c in data.split("train").clip_ids:
        clip = data.clip(c)
        by_listener[clip.listener_id].append(estimator(np.asarray(clip.listener_motion))[:, 0])
    levels = {k: float(np.concatenate(v).mean()) for k, v in by_listener.items()}
    overall = float(np.mean(list(levels.values())))
    return [v - levels[data.clip(c).listener_id] + overall for c, v in zip(clip_ids, true)]


def between_listener_share(data, estimator, split: str) -> tuple[float, float]:
    """Variance of the split's window valences, and the share of it between listeners' own means."""
    by_listener: dict[str, list[np.ndarray]] = defaultdict(list)
    for clip_id in data.split(split).clip_ids:
        clip = data.clip(clip_id)
        by_listener[clip.listener_id].append(window_valence(estimator, clip.listener_motion))
    windows = [np.concatenate(v) for v in by_listener.values()]
    every = np.concatenate(windows)
    between = np.concatenate([np.full(len(w), w.mean()) for w in windows])
    return float(every.var()), float(between.var() / every.var())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs/baselines")
    parser.add_argument("--dataset", default="synthetic:small")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--out", default="docs/results/baselines_affect.md")
    args = parser.parse_args()
    data = load_dataset(args.dataset)
    estimator = listener_affect_estimator(data)
    clip_ids = data.split(args.split).clip_ids
    gts = [data.clip(c).listener_motion for c in clip_ids]
    truth = [estimator(np.asarray(g))[:, 0] for g in gts]  # once, for every row and seed
    unknown = level_unknown(data, estimator, clip_ids, truth)
    per_seed = []
    for seed in args.seeds:
        agents = {"random": RandomAgent(seed=seed), "mean": MeanAgent(data, data.tokenizer()),
                  "linear": LinearReadoutAgent(data),
                  "LM-listener": load_checkpoint_agent(Path(args.runs, f"lm_listener_s{seed}", "final")),
                  "MMLHG": load_checkpoint_agent(Path(args.runs, f"mmlhg_s{seed}", "final"))}  # fmt: skip
        predictions, _ = rollout_agents(
            agents, data, args.split, seed, clip_ids=clip_ids, samples=args.samples
        )
        predictions.update(round_trips(agents["LM-listener"].model, agents["MMLHG"].model, gts))
        per_seed.append({name: decompose(estimator, p, truth) for name, p in predictions.items()})
        per_seed[-1]["recorded, level unknown"] = decompose_valence([[v] for v in unknown], truth)
        print(f"seed {seed}: " + "; ".join(f"{n} {r['L2 Affect']:.2f}" for n, r in per_seed[-1].items()))
    Path(args.out).write_text(page(args, per_seed, data, estimator))


def page(args, per_seed, data, estimator) -> str:
    summary = summarize_seeds(per_seed)
    rows = ["| Row | " + " | ".join(PARTS) + " |", "|---" * (len(PARTS) + 1) + "|"]
    for name, cells in summary.items():
        rows.append(
            f"| {name} | "
            + " | ".join(f"{cells[k]['mean']:.3f} ± {cells[k]['ci']:.3f}" for k in PARTS)
            + " |"
        )
    shares = [(split, *between_listener_share(data, estimator, split)) for split in ("train", args.split)]
    seeds = " ".join(map(str, args.seeds))
    return (
        "\n\n".join(
            [
                "# L2 Affect, taken apart",
                f"Generated by `python scripts/baselines_affect.py --seeds {seeds} --samples {args.samples}`: "
                f"{args.dataset}, {args.split} split, {args.samples} predictions per clip, the checkpoints of "
                "scripts/baselines_results.sh (one per seed); mean ± 95 % CI (Student t) over the seeds. The script's "
                "docstring gives the formula; `best sd_pred` is the spread that would minimise the error at the row's "
                "correlation. The last rows are references, not policies: the recorded listener through each "
                "VQ-VAE, and the recorded valence with each listener's own level replaced by the average "
                "listener's (what following the speaker perfectly without knowing who listens would give).",
                "\n".join(rows),
                "Each listener's own valence level, which no agent is told: "
                + "; ".join(
                    f"{split}, {100 * share:.0f} % of the window valences' variance ({var:.4f})"
                    for split, var, share in shares
                )
                + ".",
            ]
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
