"""How much of best-of-N can a DPO policy's implicit reward find, among SFT's samples and among its own?

For each seed's DPO cell of the alignment benchmark (``OUT/cells/ALGO/bB-sS/policy``), N closed-loop samples a
clip of the evaluation split (T and N as the benchmark evaluates) are drawn from the SFT checkpoint and from the
DPO policy (with the seed the benchmark evaluated it with). Each set is reranked twice: by the oracle (the
best-of-N ceiling) and by DPO's implicit reward ``beta * (log pi - log pi_sft)`` (what the cell's rated groups
taught). Figures are gains over the set's own mean
oracle score, per clip, averaged over clips; then mean and 95 % Student-t interval over seeds. If the implicit
reward finds little among the policy's own samples while the oracle still finds much, the labels' signal is
spent: a further round that ranks the policy's samples with it (self-rewarding DPO, best-of-N distillation) has
little to learn from. Writes docs/results/implicit_rerank_480.md (and .json) unless told otherwise.

    PYTHONPATH=. .venv/bin/python scripts/implicit_rerank.py   (after scripts/alignment_results.sh's cells)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

KINDS = ("sft", "policy")


def rerank_gains(oracle: np.ndarray, reward: np.ndarray) -> dict[str, float]:
    """Mean over clips of the oracle gain over each clip's mean when picking by ``reward`` and by ``oracle``.

    Args:
        oracle: (clips, n) oracle scores of n samples a clip.
        reward: (clips, n) the scores a learned reward gives the same samples.
    """
    if oracle.shape != reward.shape or oracle.ndim != 2:
        raise ValueError(f"oracle {oracle.shape} and reward {reward.shape} must be the same (clips, n) shape")
    mean = oracle.mean(axis=1)
    picked = oracle[np.arange(len(oracle)), reward.argmax(axis=1)]
    best = oracle.max(axis=1)
    correlation = [np.corrcoef(o, r)[0, 1] for o, r in zip(oracle, reward) if o.std() > 0 and r.std() > 0]
    return {
        "mean": float(mean.mean()),
        "by_reward": float((picked - mean).mean()),
        "by_oracle": float((best - mean).mean()),
        "within_clip_correlation": float(np.mean(correlation)) if correlation else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark/alignment"), help="benchmark folder")
    parser.add_argument("--sft", type=Path, default=None, help="the cells' SFT (default: the benchmark's)")
    parser.add_argument("--cell", default="dpo_nods_weighted:480", help="ALGO:BUDGET of a one-round DPO row")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--report-to", type=Path, default=Path("docs/results/implicit_rerank_480.md"))
    args = parser.parse_args(argv)
    if args.cell.count(":") != 1 or not args.cell.partition(":")[2].isdigit():
        parser.error(f"--cell {args.cell!r}: expected ALGO:BUDGET, e.g. dpo_nods_weighted:480")

    import torch

    from agents.alignment.sampling import sample_trajectories
    from agents.vla import VLAForListening
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import Oracle
    from experiments.benchmark.report import student_t_interval
    from experiments.errors import UserError
    from reward_models.implicit import ImplicitReward, ImplicitRewardConfig

    torch.set_num_threads(1)
    config = json.loads((args.out / "benchmark_config.json").read_text())["config"]
    data, evaluation = load_dataset(config["dataset"]), config["eval"]
    clips = [
        data.clip(c) for c in list(data.split(evaluation["split"]).clip_ids)[: evaluation.get("max_clips")]
    ]
    oracle, n, temperature = Oracle(fps=data.fps), evaluation["samples"], evaluation["temperature"]
    sft_dir = Path(args.sft or config["sft"] or args.out / "sft" / "final")
    if not sft_dir.exists():
        raise UserError(f"SFT checkpoint {sft_dir} not found: pass the cells' SFT with --sft")
    sft = VLAForListening.from_pretrained(sft_dir).eval()
    algo, _, budget = args.cell.partition(":")

    def samples(model: object, seed: int) -> tuple[list[list[np.ndarray]], np.ndarray]:
        tokens = sample_trajectories(model, clips, n, temperature=temperature, seed=seed)
        decode = sft.processor.action_tokenizer.decode
        scores = [[oracle.score(c.speaker_motion, decode(t), c.speaker_words)["weighted"] for t in per]
                  for c, per in zip(clips, tokens)]  # fmt: skip
        return tokens, np.array(scores)

    sft_samples = samples(sft, 0)  # as the best-of-N ceiling samples
    per_seed: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for seed in args.seeds:
        policy_dir = args.out / "cells" / algo / f"b{budget}-s{seed}" / "policy"
        if not policy_dir.exists():
            raise UserError(
                f"{policy_dir} not found: run the {args.cell} cell of seed {seed} first, or pass --seeds"
            )
        policy = VLAForListening.from_pretrained(policy_dir).eval()
        reward = ImplicitReward(policy, sft, ImplicitRewardConfig.from_dpo_checkpoint(policy_dir))
        for kind, (tokens, scores) in zip(KINDS, (sft_samples, samples(policy, seed))):
            flat = reward.score(
                [c for c, per in zip(clips, tokens) for _ in per], [t for per in tokens for t in per]
            )
            per_seed[kind].append(rerank_gains(scores, flat.reshape(scores.shape)))
            print(f"seed {seed} {kind} samples: {per_seed[kind][-1]}", flush=True)
    rows = {
        kind: {key: student_t_interval([r[key] for r in runs]) for key in runs[0]} | {"per_seed": runs}
        for kind, runs in per_seed.items()
    }
    command = (
        f"python scripts/implicit_rerank.py --out {args.out} --sft {sft_dir} --cell {args.cell} --seeds "
    )
    command += " ".join(map(str, args.seeds))
    args.report_to.parent.mkdir(parents=True, exist_ok=True)
    args.report_to.with_suffix(".json").write_text(json.dumps({"cell": args.cell, "n": n, **rows}, indent=1))
    args.report_to.write_text(markdown(rows, command, args.cell, n, len(clips), evaluation["split"]))
    print(args.report_to.read_text())
    return 0


def markdown(rows: dict, command: str, cell: str, n: int, clips: int, split: str) -> str:
    def ci(v: tuple[float, float, float], sign: str = "+") -> str:
        return f"{v[0]:{sign}.3f} [{v[1]:{sign}.3f}, {v[2]:{sign}.3f}]"

    seeds = len(rows["sft"]["per_seed"])
    lines = [
        f"# Best of {n} by DPO's implicit reward, among SFT's samples and among the DPO policy's own",
        "",
        f"Generated by `{command}` (see its docstring). {cell}'s policy per seed; {n} samples a clip on {clips} "
        f"{split} clips; gains are oracle points over the sample set's own mean; mean [95 % CI] over {seeds} seeds. "
        "SFT's samples are the same for every seed (sampling seed 0, as the best-of-N ceiling), so in its row only "
        "the implicit reward varies with the seed.",
        "",
        "| samples from | their mean oracle | best by implicit reward | best by oracle | within-clip correlation |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        r = rows[kind]
        lines.append(f"| {'SFT' if kind == 'sft' else 'the DPO policy'} | {ci(r['mean'], '')} | "
                     f"{ci(r['by_reward'])} | {ci(r['by_oracle'])} | {ci(r['within_clip_correlation'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
