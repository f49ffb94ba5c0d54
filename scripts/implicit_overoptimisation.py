"""Does PPO over-optimise DPO's implicit reward? Each policy's samples scored by that reward and by the oracle.

``ppo_implicit`` cells run PPO from SFT on ``beta * (log pi_dpo - log pi_sft)`` of a DPO trained on the cell's
pairs with the ``--dpo`` row's settings (its seed's ``OUT/cells/DPO/bB-sS/policy``: the same training, so the
same checkpoint, byte for byte where checked, seeds 2 and 3 at 480 groups; a row with ``reward_cell`` takes that
checkpoint itself). For each seed this samples the test clips (``--samples`` a clip at the benchmark's
temperature, sampling seed = the seed) from SFT, the DPO and each ``--ppo`` cell, and scores every trajectory
with that seed's implicit reward and with the hidden oracle. If PPO's implicit return rises past the DPO's own
while its oracle score stays below the DPO's, the reward, not the optimiser, is what stops PPO. Mean [95 %
Student-t] over seeds of each policy's difference to SFT. Writes docs/results/implicit_overoptimisation.md
(and .json).

    PYTHONPATH=. .venv/bin/python scripts/implicit_overoptimisation.py   (after scripts/alignment_results.sh)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PPO_CELLS = (
    "ppo_implicit_episode_65k:480",
    "ppo_implicit_episode_262k_kl01:480",
    "ppo_implicit_episode_262k_klquarterbeta:480",
    "ppo_implicit_episode_524k_klquarterbeta:480",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark/alignment"), help="benchmark folder")
    parser.add_argument(
        "--dpo", default="dpo_nods_weighted:480", help="ALGO:BUDGET of the reward's DPO cells"
    )
    parser.add_argument("--ppo", nargs="+", default=list(PPO_CELLS), help="ALGO:BUDGET of PPO-on-it cells")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--samples", type=int, default=4, help="samples a test clip per policy")
    parser.add_argument("--report-to", type=Path, default=Path("docs/results/implicit_overoptimisation.md"))
    args = parser.parse_args(argv)

    import torch

    from dyadic_env.data import load_dataset

    torch.set_num_threads(1)
    config = json.loads((args.out / "benchmark_config.json").read_text())["config"]
    data = load_dataset(config["dataset"])
    clip_ids = list(data.split(config["eval"]["split"]).clip_ids)[: config["eval"]["max_clips"]]
    clips = [data.clip(c) for c in clip_ids]
    rows: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        for name, (implicit, oracle) in _seed_scores(args, config, clips, data.fps, seed).items():
            row = rows.setdefault(name, {"implicit": [], "oracle": []})
            row["implicit"].append(implicit)
            row["oracle"].append(oracle)
            print(f"seed {seed} {name}: implicit return {implicit:+.2f}, oracle {oracle:.3f}", flush=True)
    command = (
        f"python scripts/implicit_overoptimisation.py --out {args.out} --dpo {args.dpo} --ppo {' '.join(args.ppo)}"
        f" --seeds {' '.join(map(str, args.seeds))} --samples {args.samples}"
    )
    args.report_to.parent.mkdir(parents=True, exist_ok=True)
    args.report_to.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    args.report_to.write_text(markdown(rows, command, args))
    print(args.report_to.read_text())
    return 0


def _seed_scores(
    args: argparse.Namespace, config: dict, clips: list, fps: float, seed: int
) -> dict[str, tuple[float, float]]:
    """Each policy's mean implicit return and mean oracle score over the test clips' samples."""
    from agents.alignment.sampling import sample_trajectories
    from agents.vla import VLAForListening
    from dyadic_env.synthetic import Oracle
    from reward_models.implicit import ImplicitReward

    ppo = {cell: _cell_policy(args.out, cell, seed) for cell in args.ppo}
    reward = ImplicitReward.from_pretrained(_cell_policy(args.out, args.dpo, seed), Path(config["sft"]))
    oracle = Oracle(fps=fps)
    scores = {}
    models = {"SFT": reward.reference, args.dpo: reward.policy}  # the reward's own two models sample too
    for name in [*models, *ppo]:
        model = models[name] if name in models else VLAForListening.from_pretrained(ppo[name])
        model = model.eval()
        tokens = sample_trajectories(
            model, clips, args.samples, temperature=config["eval"]["temperature"], seed=seed
        )
        flat_clips = [c for c, per in zip(clips, tokens) for _ in per]
        flat = [t for per in tokens for t in per]
        decode = model.processor.action_tokenizer.decode
        graded = [
            oracle.score(c.speaker_motion, decode(t), c.speaker_words)["weighted"]
            for c, t in zip(flat_clips, flat)
        ]
        scores[name] = (float(reward.score(flat_clips, flat).mean()), float(np.mean(graded)))
    return scores


def _cell_policy(out: Path, cell: str, seed: int) -> Path:
    from experiments.benchmark.protocol import Cell

    algo, budget = cell.split(":")
    path = Cell(algo, int(budget), seed).directory(out) / "policy"
    if not path.exists():
        raise SystemExit(
            f"{path} not found: run the cell first (scripts/alignment_results.sh) or drop {cell}"
        )
    return path


def markdown(rows: dict[str, dict[str, list[float]]], command: str, args: argparse.Namespace) -> str:
    from experiments.benchmark.report import student_t_interval

    def delta(name: str, base: str, key: str, digits: int) -> str:
        mean, low, high = student_t_interval(list(np.subtract(rows[name][key], rows[base][key])))
        return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"

    sft = {key: np.mean(rows["SFT"][key]) for key in ("implicit", "oracle")}
    lines = [
        "# PPO on DPO's implicit reward: the reward it climbs against the oracle",
        "",
        f"Generated by `{command}` (see its docstring). Each seed's implicit reward is `beta * (log pi_dpo - "
        f"log pi_sft)` of its `{args.dpo}` cell; every policy samples the test clips ({args.samples} a clip, "
        "T as the benchmark's) and each trajectory is scored by that reward (summed over the episode) and by "
        f"the oracle. Mean over {len(args.seeds)} seeds of the paired difference (same seed) [95 % Student-t]. "
        f"SFT's own: implicit return {sft['implicit']:+.2f}, oracle {sft['oracle']:.3f}.",
        "",
        "| policy | Δ implicit return vs SFT | Δ oracle vs SFT | implicit return - the DPO's | oracle - the DPO's |",
        "|---|---|---|---|---|",
    ]
    for name in rows:
        if name == "SFT":
            continue
        against = (
            ("", "")
            if name == args.dpo
            else (delta(name, args.dpo, "implicit", 2), delta(name, args.dpo, "oracle", 3))
        )
        lines.append(
            f"| {name} | {delta(name, 'SFT', 'implicit', 2)} | {delta(name, 'SFT', 'oracle', 3)} | "
            f"{against[0]} | {against[1]} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
