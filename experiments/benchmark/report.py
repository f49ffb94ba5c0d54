"""The alignment benchmark's results: a table with 95 % intervals over seeds and a label-efficiency plot.

Every cell is compared with the SFT policy evaluated with the same seed (common random numbers), so a row's
interval is over the per-seed differences (Student t). ``write_results`` writes ``results.md``, ``results.json``
and ``label_efficiency.png`` into the run folder; ``dyadic benchmark alignment --report-to docs/results/alignment.md``
also regenerates the documentation page from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.benchmark.protocol import PROTOCOL_VERSION, BenchmarkConfig, Cell, sft_eval_path

KEYS = ("weighted", "appropriateness", "empathy", "engagement", "naturalness", "L2", "FD", "P-FD")
RELATIVE = ("L2", "FD", "P-FD")  # reported as a change in % of SFT's value
# REACT's metrics in the table (FRCorr, FRDist: REACT's sums over the K samples) and their digits; the spreads
# (FRDiv, FRDvs, FRVar) are changes in % of SFT's value, as their scale means little by itself.
REACT_SHOWN = {"FRCorr": 3, "FRDist": 2, "FRSyn": 2, "FRDiv": 5, "FRDvs": 5, "FRVar": 5}
REACT_RELATIVE = ("FRDiv", "FRDvs", "FRVar")


def student_t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval (nan bounds for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def summarize(config: BenchmarkConfig) -> dict[str, Any]:
    """Per algorithm and budget: per-seed differences to SFT and their mean with a 95 % interval."""
    sft = {s: _read(sft_eval_path(config.out, s)) for s in config.seeds}
    rows: dict[str, dict[str, Any]] = {}
    for algorithm in config.algorithms:
        for budget in config.budgets:
            found = {
                s: _read(Cell(algorithm, budget, s).directory(config.out) / "result.json")
                for s in config.seeds
            }
            seeds = [s for s in config.seeds if found[s] and sft[s]]
            if seeds:
                rows.setdefault(algorithm, {})[str(budget)] = _cell_summary(found, sft, seeds)
                react = _react_summary(found, sft, seeds)
                if react:
                    rows[algorithm][str(budget)]["react"] = react
    ceilings = _read(config.out / "ceilings.json")
    from experiments.benchmark.ceilings import label_anatomy

    anatomy = label_anatomy(config, config.budgets[0])
    sft_scores = [sft[s]["row"]["weighted"] for s in config.seeds if sft[s]]
    return {
        "protocol": PROTOCOL_VERSION, "fingerprint": config.fingerprint(), "dataset": config.dataset, "sft_checkpoint": config.sft,
        "seeds": config.seeds, "budgets": config.budgets, "algorithms": config.algorithms, "rows": rows,
        "sft": {k: float(np.mean([sft[s]["row"][k] for s in config.seeds if sft[s]])) for k in KEYS if sft_scores},
        "ceilings": ceilings, "labels": anatomy, "eval": json.loads(json.dumps(config.eval.__dict__)),
        "sft_react": _sft_react([sft[s] for s in config.seeds if sft[s]]),
    }  # fmt: skip


def _cell_summary(found: dict[int, Any], sft: dict[int, Any], seeds: list[int]) -> dict[str, Any]:
    entry: dict[str, Any] = {"seeds": seeds, "labels_spent": [found[s]["labels_spent"] for s in seeds]}
    rows = {s: found[s]["row"] for s in seeds}
    entry.update(paired_differences(rows, {s: sft[s]["row"] for s in seeds}, KEYS, RELATIVE))
    figures = [found[s].get("figures") or {} for s in seeds]
    names = sorted({k for f in figures for k in f})
    entry["figures"] = {
        name: dict(zip(("mean", "low", "high"), student_t_interval(v)), n=len(v))
        for name in names
        if (v := [float(f[name]) for f in figures if name in f and math.isfinite(float(f[name]))])
    }
    return entry


def _react_summary(found: dict[int, Any], sft: dict[int, Any], seeds: list[int]) -> dict[str, Any] | None:
    """REACT's differences to SFT over the seeds where both the cell and SFT have REACT's metrics."""
    with_react = [s for s in seeds if found[s].get("react") and sft[s].get("react")]
    if not with_react:
        return None
    rows = {s: found[s]["react"]["row"] for s in with_react}
    base = {s: sft[s]["react"]["row"] for s in with_react}
    return {"seeds": with_react, **paired_differences(rows, base, tuple(REACT_SHOWN), REACT_RELATIVE)}


def paired_differences(
    rows: dict[int, dict[str, float]],
    base: dict[int, dict[str, float]],
    keys: Sequence[str],
    relative: Sequence[str],
) -> dict[str, Any]:
    """Per key: the per-seed differences ``rows - base`` (in % of ``base`` for ``relative`` keys), their mean
    and 95 % Student-t interval, and the rows' mean value. A key some seed lacks, or a relative key whose base
    is 0 on some seed, is left out."""
    out: dict[str, Any] = {}
    for key in keys:
        if not all(key in rows[s] and key in base[s] for s in rows):
            continue
        if key in relative and any(base[s][key] == 0 for s in rows):
            continue
        diffs = [rows[s][key] - base[s][key] for s in rows]
        if key in relative:
            diffs = [100 * d / base[s][key] for d, s in zip(diffs, rows)]
        mean, low, high = student_t_interval(diffs)
        out[key] = {"diffs": diffs, "mean": mean, "low": low, "high": high,
                    "value": float(np.mean([rows[s][key] for s in rows]))}  # fmt: skip
    return out


def _sft_react(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """SFT's REACT figures (mean over the seeds that have them) and how they were measured; ``{"missing":
    why}`` where no seed has them."""
    if not records:
        return None
    react = [r["react"] for r in records if r.get("react")]
    if not react:
        no_sets = any("react" in r for r in records)  # evaluated with REACT, and the dataset had no sets
        return {"missing": "no appropriate-reaction sets" if no_sets else "evaluated before REACT"}
    keys = [k for k in react[0]["row"] if all(k in r["row"] for r in react)]
    return {"seeds": [r["seed"] for r in records if r.get("react")], "samples": react[0]["samples"],
            "frdist_groups": react[0]["frdist_groups"], "appropriate": react[0]["appropriate"],
            "row": {k: float(np.mean([r["row"][k] for r in react])) for k in keys}}  # fmt: skip


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def markdown(summary: dict[str, Any]) -> str:
    """The results table (oracle and metric changes against SFT) and the ceilings."""
    lines = [
        f"Protocol `{summary['protocol']}` (config {summary['fingerprint']}), dataset `{summary['dataset']}`, "
        f"{summary['eval']['split']} split, {len(summary['seeds'])} seeds ({', '.join(map(str, summary['seeds']))}), "
        f"{summary['eval']['samples']} samples a clip at T={summary['eval']['temperature']}. Budgets count rated "
        "candidate groups (one best-vs-worst pair each under the paper's rule). Δ is the mean over seeds of "
        "(algorithm - SFT, same seed) with a 95 % Student-t interval; L2/FD/P-FD changes are in % of SFT's value.",
        "",
        f"SFT (`{summary.get('sft_checkpoint') or 'trained by the benchmark'}`): oracle "
        f"{summary['sft'].get('weighted', math.nan):.3f}, L2 {summary['sft'].get('L2', math.nan):.4f}, "
        f"FD {summary['sft'].get('FD', math.nan):.3f}.",
        "",
        "| Algorithm | Labels | Seeds | Oracle | Δ Oracle [95 % CI] | Δ App. | Δ Emp. | Δ Eng. | Δ Nat. | Δ L2 % "
        "| Δ FD % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for algorithm, budgets in summary["rows"].items():
        for budget, e in budgets.items():
            w = e.get("weighted", {})
            lines.append(
                f"| {algorithm} | {budget} | {len(e['seeds'])} | {w.get('value', math.nan):.3f} | {_ci(w)} | "
                + " | ".join(
                    _short(e.get(k)) for k in ("appropriateness", "empathy", "engagement", "naturalness")
                )
                + f" | {_short(e.get('L2'), 1)} | {_short(e.get('FD'), 1)} |"
            )
    lines += ["", *react_lines(summary), "", *figure_lines(summary), ""]
    lines += [*ceiling_lines(summary.get("ceilings")), "", *label_lines(summary.get("labels"))]
    return "\n".join(lines) + "\n"


def figure_lines(summary: dict[str, Any]) -> list[str]:
    """What algorithms measured of themselves (e.g. a reward model's held-out pair accuracy), over seeds."""
    lines = [
        f"- {algorithm} @ {budget}: {name} {f['mean']:.3f} [{f['low']:.3f}, {f['high']:.3f}] ({f['n']} seeds)"
        for algorithm, budgets in summary["rows"].items()
        for budget, e in budgets.items()
        for name, f in e.get("figures", {}).items()
    ]
    return (
        ["What the algorithms measured of themselves (mean [95 % CI] over seeds):", "", *lines]
        if lines
        else []
    )


def react_lines(summary: dict[str, Any]) -> list[str]:
    """REACT's table: SFT's values, then each row's difference to SFT with its 95 % interval over seeds."""
    sft = summary.get("sft_react")
    if not sft:
        return []
    if "missing" in sft:
        if sft["missing"] == "no appropriate-reaction sets":
            return [
                "REACT's metrics: the dataset has no appropriate-reaction sets (`dyadic data appropriate`)."
            ]
        return [
            "REACT's metrics: these cells were evaluated before REACT's metrics were added; a run without "
            "`--report-only` adds them from each cell's stored policy (evaluation only, nothing is retrained)."
        ]
    sets, k = sft["appropriate"], sft["samples"]
    lines = [
        f"REACT's metrics over the same {k} samples a clip, against each clip's set of appropriate reactions "
        f"({sets['method']}, {sets['mean_size']:.1f} a clip, {sets['clips_with_set']} clips; FRDist over "
        f"{sft['frdist_groups']} groups; docs/metrics.md). FRCorr and FRDist are REACT's sums over the {k} samples "
        f"(÷ {k} for one sample's). Better: FRCorr higher (concordance with the closest appropriate reaction), "
        "FRDist lower (DTW distance to it), FRSyn lower (frames of lag to the speaker). FRDiv (between a clip's "
        "samples), FRDvs (across clips) and FRVar (over time) measure spread, as changes in % of SFT's: REACT "
        "counts more as better; a drop says the samples collapsed onto fewer behaviours. Δ as above (same seed).",
        "",
        "| Algorithm | Labels | Seeds | " + " | ".join(map(_react_title, REACT_SHOWN)) + " |",
        "|---|---|---|" + "---|" * len(REACT_SHOWN),
        f"| SFT | 0 | {len(sft['seeds'])} | "
        + " | ".join(_value(sft["row"].get(key), digits) for key, digits in REACT_SHOWN.items())
        + " |",
    ]
    for algorithm, budgets in summary["rows"].items():
        for budget, e in budgets.items():
            react = e.get("react")
            if react:
                cells = [_ci(react.get(key, {}), 1 if key in REACT_RELATIVE else digits)
                         for key, digits in REACT_SHOWN.items()]  # fmt: skip
                lines.append(
                    f"| {algorithm} | {budget} | {len(react['seeds'])} | " + " | ".join(cells) + " |"
                )
    return [*lines, "", "(The SFT row shows values, the others differences to SFT.)"]


def _react_title(key: str) -> str:
    return f"Δ {key}{' %' * (key in REACT_RELATIVE)} [95 % CI]"


def _value(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def ceiling_lines(ceilings: dict[str, Any] | None) -> list[str]:
    if not ceilings:
        return ["Ceilings: not measured in this run."]
    lines = [
        f"Ceilings on the same clips (difference to the SFT policy's mean of {ceilings['sft']:.3f}, 95 % bootstrap "
        f"interval over {ceilings['clips']} clips):",
        "",
        "| Ceiling | Oracle | Δ [95 % CI] |",
        "|---|---|---|",
    ]
    for name, c in ceilings["ceilings"].items():
        label = {"ground_truth": "recorded listeners", "appropriate": "appropriate listeners (set mean)"}.get(
            name, name
        )
        if name == "rl_oracle":
            label = f"PPO on the oracle reward ({c['env_steps']:,} env steps)"
        lines.append(
            f"| {label} | {c['score']:.3f} | {c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] |"
        )
    return lines


def label_lines(labels: dict[str, Any] | None) -> list[str]:
    if not labels:
        return []
    lines = [
        f"What the labels say: over {labels['pairs']} best-vs-worst pairs (the first {labels['budget']} rated groups "
        f"of each seed), the hidden oracle prefers the chosen trajectory in {100 * labels['agreement']:.0f} % of "
        "pairs; chosen - rejected per criterion (95 % bootstrap over pairs):",
        "",
        "| Criterion | chosen - rejected [95 % CI] |",
        "|---|---|",
    ]
    for key in ("engagement", "empathy", "appropriateness", "naturalness", "weighted"):
        e = labels[key]
        lines.append(f"| {key} | {e['diff']:+.3f} [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}] |")
    return lines


def _ci(e: dict[str, Any], digits: int = 3) -> str:
    if not e:
        return ""
    if math.isnan(e["low"]):
        return f"{e['mean']:+.{digits}f} (1 seed)"
    return f"{e['mean']:+.{digits}f} [{e['low']:+.{digits}f}, {e['high']:+.{digits}f}]"


def _short(e: dict[str, Any] | None, digits: int = 2) -> str:
    return "" if not e else f"{e['mean']:+.{digits}f}"


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Oracle score against rated groups, one line per algorithm (95 % intervals), ceilings as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algorithm, budgets in summary["rows"].items():
        xs = [int(b) for b in budgets]
        ys = [budgets[b]["weighted"]["value"] for b in budgets]
        err = [budgets[b]["weighted"]["high"] - budgets[b]["weighted"]["mean"] for b in budgets]
        ax.errorbar(xs, ys, yerr=np.nan_to_num(err), marker="o", capsize=3, label=algorithm)
    sft = summary["sft"].get("weighted")
    if sft is not None:
        ax.axhline(sft, color="black", lw=1, label="SFT")
    ceilings = (summary.get("ceilings") or {}).get("ceilings", {})
    for k, (name, c) in enumerate(ceilings.items()):  # each drawn as SFT plus its paired difference
        ax.axhline(sft + c["diff"] if sft is not None else c["score"], ls="--", lw=1, color=f"C{k + 5}",
                   label=f"ceiling: {name}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(summary["budgets"], [str(b) for b in summary["budgets"]])
    ax.minorticks_off()
    ax.set_xlabel("rated candidate groups (labels)")
    ax.set_ylabel("oracle score (eq. 10), test split")
    ax.set_title("error bars: 95 % interval of the paired difference to SFT over seeds", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(
    config: BenchmarkConfig,
    summary: dict[str, Any],
    *,
    docs: Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """``results.md``/``results.json``/``label_efficiency.png`` in the run folder (and ``docs`` when given)."""
    out = config.out
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    text = markdown(summary)
    (out / "results.md").write_text(text)
    if summary["rows"]:
        plot(summary, out / "label_efficiency.png")
    log(text)
    return out / "results.md"


REGENERATED_BY = {"test": "scripts/alignment_results.sh", "val": "scripts/alignment_tuning.sh"}
"""The committed scripts that write the docs pages, by evaluation split."""
SPLIT_NOTES = {
    "val": "Settings are chosen on this split, never on the test split; docs/results/alignment.md reports the "
    "chosen ones on the test split."
}


def write_docs(config: BenchmarkConfig, summary: dict[str, Any], page: Path) -> Path:
    """The results page for ``docs/``: how it was made, the table, and the plot next to it."""
    import shutil

    page.parent.mkdir(parents=True, exist_ok=True)
    figure = page.with_name(page.stem + "_label_efficiency.png")
    if (config.out / "label_efficiency.png").exists():
        shutil.copyfile(config.out / "label_efficiency.png", figure)
    split = config.eval.split
    text = [
        f"# Alignment benchmark results ({split} split)",
        "",
        "Generated by `dyadic benchmark alignment --report-to` (protocol and interface: docs/alignment.md); do not "
        f"edit by hand. `{REGENERATED_BY.get(split, 'dyadic benchmark alignment')}` runs the cells and regenerates "
        f"this page. A row at fewer seeds than the config's {len(config.seeds)} is a run that did not finish (or "
        "was stopped); read its interval with that in mind.",
        "",
        *([SPLIT_NOTES[split], ""] if split in SPLIT_NOTES else []),
        markdown(summary),
    ]
    if figure.exists():
        text += [f"![label efficiency]({figure.name})", ""]
    page.write_text("\n".join(text))
    return page
