"""`dyadic baselines report`: the results page of the paper's learned baselines (docs/results/baselines.md).

``scripts/baselines_results.sh`` trains LM-listener and MMLHG over several seeds and evaluates them beside
Random, NN, Mean, SFT (and SFT+DPO) with ``dyadic eval``; this command turns that run directory into one page:
the paper's metrics and the oracle's, REACT's metrics, each as mean ± 95 % CI over the seeds; the VQ-VAEs'
reconstruction error on held-out listeners against the action tokenizer's; the training times (with the
machine's load); which learned rows fail to beat Random where; and the FD ordering against the paper's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.errors import UserError

LOWER_IS_BETTER = ("L2", "FD", "P-FD", "L2 Affect", "FRDist", "FRDist/pred", "FRSyn")
HIGHER_IS_BETTER = ("empathy", "appropriateness", "engagement", "naturalness", "weighted", "FRCorr", "FRCorr/pred")  # fmt: skip
CLOSER_TO_GT = ("Variation", "Diversity", "FRVar")
"""Metrics with no better direction, where a method should match the recorded listeners (the GT row)."""
REFERENCE_ROWS = (
    "GT",
    "Appropriate (held-out)",
    "random",
    "nn",
    "mean",
    "meanfr",
    "meanseq",
    "neutral",
    "mime",
)
"""Rows that are references or untrained baselines, not learned models to hold against Random."""
PAPER_FD_ORDER = ("LM-listener", "MMLHG", "SFT")
"""The paper's Tables I and II: FD falls from LM-listener to MMLHG to SFT."""


TITLE = "The paper's learned baselines on the synthetic benchmark"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baselines", help="the results page of the paper's learned baselines (LM-listener, MMLHG)",
        description="Summarise a run of scripts/baselines_results.sh into a Markdown page.",
    )  # fmt: skip
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report", help="write the page from a run directory",
        description="Read ROOT/eval-seed*/results.json (one `dyadic eval --run-dir` per seed) and the trained "
        "runs ROOT/*/final (`dyadic train lm-listener` / `mmlhg`), and write the page.",
    )  # fmt: skip
    report.add_argument("root", type=Path, help="the run directory of scripts/baselines_results.sh")
    report.add_argument("--out", type=Path, default=None, help="write the page here (default: print it)")
    report.add_argument(
        "--command",
        default="bash scripts/baselines_results.sh",
        help="the command the page names as its source",
    )
    report.add_argument("--title", default=TITLE, help="the page's heading")
    report.add_argument(
        "--trained",
        type=Path,
        default=None,
        help="the folder of the trained runs DIR/*/final (default: ROOT)",
    )
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    evals = sorted(args.root.glob("eval-seed*/results.json"))
    if not evals:
        raise UserError(f"{args.root}: no eval-seed*/results.json; run scripts/baselines_results.sh (or `dyadic eval "
                        f"--run-dir {args.root}/eval-seed0 ...`) first")  # fmt: skip
    runs = [json.loads(path.read_text()) for path in evals]
    trained = _trained_runs(args.trained or args.root)
    errors = _reconstruction(trained, runs[0]["dataset_path"], runs[0]["split"])
    page = report_page(runs, trained, errors, args.command, args.title)
    if args.out is None:
        print(page)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"baselines: wrote {args.out} ({len(runs)} seeds, {len(trained)} trained runs)")
    return 0


def _trained_runs(root: Path) -> list[dict[str, Any]]:
    """Every ``ROOT/*/final`` with a training record: its variant, seed, directory and record."""
    from agents.listeners.training import TRAINING_RECORD

    found = []
    for record in sorted(root.glob(f"*/final/{TRAINING_RECORD}")):
        run = record.parent.parent
        config = json.loads((run / "train_config.json").read_text())
        found.append({"variant": config["variant"], "seed": config["seed"], "final": record.parent,
                      "record": json.loads(record.read_text())})  # fmt: skip
    return found


def _reconstruction(trained: Sequence[Mapping[str, Any]], dataset: str, split: str) -> list[dict[str, float]]:
    """:func:`agents.listeners.modeling.reconstruction_errors` of each trained run on ``split``'s listeners."""
    from agents.listeners.modeling import CodeListenerModel, reconstruction_errors
    from dyadic_env.data import load_dataset

    tracks = [clip.listener_motion for clip in load_dataset(dataset).split(split)]
    errors = []
    for run in trained:
        model = CodeListenerModel.from_pretrained(run["final"])
        errors.append(reconstruction_errors(model, tracks))
        if model.config.style_dim:  # the identity a policy answers with when the listener is unknown
            errors[-1]["vq_mse_mean_identity"] = reconstruction_errors(model, tracks, "mean")["vq_mse"]
    return errors


def report_page(
    runs: Sequence[Mapping[str, Any]], trained: Sequence[Mapping[str, Any]], errors: Sequence[Mapping[str, float]],
    command: str, title: str = TITLE,
) -> str:  # fmt: skip
    """The Markdown page (see the module docstring)."""
    from dyadic_env.metrics.table import REACT_COLUMNS
    from experiments.evaluation import seeds_table, summarize_seeds

    first = runs[0]
    seeds = [run["seed"] for run in runs]
    paper = summarize_seeds([run["rows"] for run in runs])
    parts = [
        f"# {title}",
        f"Generated by `{command}`: {first['dataset']} ({first['split']} split, {first['num_clips']} clips), "
        f"{first['samples']} predictions per clip, evaluation seeds {seeds}; each trained row is one model per "
        "seed. Cells are mean ± 95 % CI (Student t) over the seeds. docs/baselines.md describes the two baselines.",
        "## The paper's metrics and the oracle's",
        seeds_table(paper),
    ]
    if all(run.get("react_rows") for run in runs):
        react = summarize_seeds([run["react_rows"] for run in runs])
        parts += [
            "## REACT's metrics (against each clip's appropriate reactions)",
            seeds_table(react, columns=REACT_COLUMNS),
        ]
        paper = {name: {**paper.get(name, {}), **react[name]} for name in react} | {
            n: r for n, r in paper.items() if n not in react
        }
    parts += [_reconstruction_section(trained, errors), _training_section(trained), _random_section(paper),
              _order_section(paper)]  # fmt: skip
    return "\n\n".join(parts) + "\n"


def _reconstruction_section(
    trained: Sequence[Mapping[str, Any]], errors: Sequence[Mapping[str, float]]
) -> str:
    lines = [
        "## The VQ-VAEs on held-out listeners",
        "",
        "Squared error per value of each model's VQ-VAE round trip (its codes, decoded) on the evaluation split's "
        "listeners, against the action tokenizer's 256-bin quantization of the same frames, and against the "
        "frames' variance (what one constant face scores). MMLHG reads each clip's identity from the clip itself; "
        "its last column decodes with the average training identity instead, as its policy does.",
        "",
        "| Model | seed | VQ-VAE MSE | tokenizer MSE | VQ-VAE / tokenizer | VQ-VAE / variance | MMLHG, average identity |",
        "|---|---|---|---|---|---|---|",
    ]
    for run, e in zip(trained, errors):
        average = f"{e['vq_mse_mean_identity']:.5f}" if "vq_mse_mean_identity" in e else ""
        lines.append(
            f"| {run['variant']} | {run['seed']} | {e['vq_mse']:.5f} | {e['tokenizer_mse']:.6f} | "
            f"{e['vq_mse'] / e['tokenizer_mse']:.1f} | {e['vq_mse'] / e['variance']:.3f} | {average} |"
        )
    return "\n".join(lines)


def _training_section(trained: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "## Training time",
        "",
        "Wall time of `dyadic train` (both stages, every resumed session), its CPU time (one thread: what it costs "
        "on a free core), the step whose language model was kept (lowest validation loss), and the machine's load "
        "average (1, 5, 15 minutes) when it finished: the machine was shared, so wall times are upper bounds.",
        "",
        "| Model | seed | steps | kept step | wall minutes | CPU minutes | threads | load average at the end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in trained:
        r = run["record"]
        load = ", ".join(f"{v:.1f}" for v in r["load_average_at_end"])
        lines.append(
            f"| {run['variant']} | {run['seed']} | {r['steps']} | {r['selected_step']} | {r['seconds'] / 60:.1f} | "
            f"{r['cpu_seconds'] / 60:.1f} | {r['num_threads']} | {load} |"
        )
    return "\n".join(lines)


def _random_section(summary: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """For each learned row, the metrics (means over seeds) on which it does not beat the random row."""
    if "random" not in summary:
        return "## Against Random\n\nNo random row was evaluated."
    random, gt = summary["random"], summary.get("GT", {})
    lines = ["## Against Random", "",
             f"Lower is better for {', '.join(LOWER_IS_BETTER)}; higher for {', '.join(HIGHER_IS_BETTER)} (the "
             f"oracle's criteria and REACT's FRCorr); for {', '.join(CLOSER_TO_GT)}, closer to the recorded "
             "listeners (GT). Means over the seeds.", ""]  # fmt: skip
    for name, row in summary.items():
        if name in REFERENCE_ROWS:
            continue
        worse = [key for key in row if key in random and not _beats(key, row, random, gt)]
        verdict = f"does not beat Random on {', '.join(worse)}" if worse else "beats Random on every metric"
        lines.append(f"- {name}: {verdict}")
    return "\n".join(lines)


def _beats(key: str, row: Mapping[str, Any], random: Mapping[str, Any], gt: Mapping[str, Any]) -> bool:
    mine, theirs = row[key]["mean"], random[key]["mean"]
    if key in LOWER_IS_BETTER:
        return mine < theirs
    if key in HIGHER_IS_BETTER:
        return mine > theirs
    if key in CLOSER_TO_GT and key in gt:
        return abs(mine - gt[key]["mean"]) < abs(theirs - gt[key]["mean"])
    return True  # a spread without a better direction (FRDiv, FRDvs)


def _order_section(summary: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    present = [name for name in PAPER_FD_ORDER if "FD" in summary.get(name, {})]
    if len(present) < 2:
        return "## FD ordering\n\nFewer than two of LM-listener, MMLHG and SFT were evaluated."
    ours = sorted(present, key=lambda name: -summary[name]["FD"]["mean"])
    shown = " > ".join(f"{name} ({summary[name]['FD']['mean']:.4f})" for name in ours)
    verdict = "the same as" if ours == list(present) else "not the same as"
    return (f"## FD ordering\n\nMean FD from highest to lowest: {shown}; {verdict} the paper's "
            f"({' > '.join(present)}). docs/baselines.md discusses why; the oracle's ranking is in the tables above.")  # fmt: skip
