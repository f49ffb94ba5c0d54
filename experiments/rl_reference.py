"""Reference RL results on the listener env (RL Zoo style): SB3 algorithms x rewards x seeds, next to baselines.

:func:`run_reference` trains every algorithm of an :class:`RLConfig` (Stable-Baselines3 PPO and A2C by default)
on every reward (the imitation and the oracle reward) with every seed, on the batched env through the SB3
adapter (:mod:`dyadic_env.envs.sb3`: continuous actions, a bag of words, ``phase`` instead of ``step``), records
learning curves (TensorBoard and a plot), then evaluates every trained policy closed-loop on the test split
next to the baselines and reports every row as mean ± 95 % CI over the seeds (:func:`summarize_seeds`).

What makes it learn at a small budget (each choice is a config field, see ``experiments/configs/rl_small.yaml``):
- a Gaussian over the 56 values (``actions: continuous``), not 56 categoricals of 256 bins: one small head,
  and SB3's multi-categorical costs about 13 ms a call;
- the Gaussian's mean starts at the training listeners' mean frame (``init_at_mean``), so RL starts where the
  Mean baseline is instead of at the middle of every bin range (far from any face);
- rewards normalised by a running estimate of the return's scale (``normalize_reward``): the imitation
  reward is about -0.01 a frame;
- no discounting for the imitation reward (``gamma`` 0, chosen on val over 0.9): a frame's error depends on
  that frame's action alone, and later errors only add noise to its advantage;
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

ALGORITHMS: dict[str, Any] = {"ppo": PPO, "a2c": A2C}
RESULT_COLUMNS = ("L2", "FD", "weighted")


@dataclass
class RLConfig:
    """The reference RL protocol (``dyadic rl``; defaults in ``experiments/configs/rl_small.yaml``)."""

    dataset: str = "synthetic:small"
    rewards: list[str] = field(default_factory=lambda: ["imitation", "oracle"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    total_timesteps: int = 50_000
    """Environment steps per training run (every algorithm, reward and seed)."""
    algorithms: dict[str, dict[str, Any]] = field(default_factory=lambda: {"ppo": {}, "a2c": {}})
    """SB3 constructor arguments per algorithm (``ppo``, ``a2c``)."""
    gamma: dict[str, float] = field(default_factory=dict)
    """Discount per reward (overrides the algorithm's)."""
    num_envs: int = 16
    context_frames: int = 8
    words: str = "bag"
    actions: str = "continuous"
    net_arch: list[int] = field(default_factory=lambda: [128, 128])
    log_std_init: float = -2.0
    init_at_mean: bool = True
    normalize_reward: bool = True
    baselines: list[str] = field(default_factory=lambda: ["random", "mean", "linear", "nn", "mirror"])
    eval_split: str = "test"
    max_clips: int | None = None
    out: str = "runs/rl"

    def __post_init__(self) -> None:
        unknown = set(self.algorithms) - set(ALGORITHMS)
        if unknown:
            raise ValueError(
                f"algorithms: {sorted(unknown)} are not SB3 algorithms here; choose from {ALGORITHMS}"
            )
        if not self.seeds or not self.rewards or not self.algorithms:
            raise ValueError("seeds, rewards and algorithms must each name at least one")
        if self.total_timesteps < self.num_envs:
            raise ValueError(
                f"total_timesteps ({self.total_timesteps}) must be at least num_envs ({self.num_envs})"
            )

    def env_kwargs(self, reward: str) -> dict[str, Any]:
        return {"num_envs": self.num_envs, "context_frames": self.context_frames, "words": self.words,
                "actions": self.actions, "reward": reward}  # fmt: skip


def run_reference(config: RLConfig, *, log: Any = print) -> dict[str, Any]:
    """Train every (algorithm, reward, seed), evaluate them with the baselines; the results as a dict."""
    import torch

    torch.set_num_threads(1)  # small MLPs: one thread is fastest, and kind to a shared machine
    out = Path(config.out)
    runs: dict[str, dict[str, Any]] = {}
    for reward in config.rewards:
        for algorithm in config.algorithms:
            for seed in config.seeds:
                key = run_name(algorithm, reward, seed)
                runs[key] = train_one(config, algorithm, reward, seed, out)
                curve = runs[key]["curve"]
                last = f", training reward per frame {curve[-1][1]:.4f}" if curve else ""
                log(f"trained {key}: {runs[key]['steps_per_second']:.0f} steps/s{last}")
    evaluation = evaluate_reference(config, out, log=log)
    results = {"config": asdict(config), "runs": runs, **evaluation}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def run_name(algorithm: str, reward: str, seed: int) -> str:
    return f"{algorithm}_{reward}_s{seed}"


def row_name(algorithm: str, reward: str) -> str:
    return f"{algorithm.upper()} ({reward})"


def train_one(config: RLConfig, algorithm: str, reward: str, seed: int, out: Path) -> dict[str, Any]:
    """Train one SB3 model on the train split; save it (with its data card) and its learning curve."""
    from dyadic_env.envs.sb3 import make_sb3_env

    hyper = {**config.algorithms[algorithm]}
    if reward in config.gamma:
        hyper["gamma"] = config.gamma[reward]
    env: Any = VecMonitor(make_sb3_env(config.dataset, "train", **config.env_kwargs(reward)))
    if config.normalize_reward:
        env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=hyper.get("gamma", 0.99))
    model = ALGORITHMS[algorithm](
        "MultiInputPolicy", env, seed=seed, device="cpu", tensorboard_log=str(out / "tb"), verbose=0,
        policy_kwargs={"net_arch": list(config.net_arch), "log_std_init": config.log_std_init}, **hyper,
    )  # fmt: skip
    adapter = env.unwrapped  # the ListenerSB3VecEnv under the monitor and normaliser
    if config.init_at_mean:
        _start_at_mean(model, adapter)
    curve = CurveCallback()
    start = time.perf_counter()
    model.learn(config.total_timesteps, callback=curve, tb_log_name=run_name(algorithm, reward, seed))
    seconds = time.perf_counter() - start
    model.data_card = adapter.data_card
    path = out / "models" / f"{run_name(algorithm, reward, seed)}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path, include=["data_card"])
    env.close()
    return {"model": str(path), "seconds": seconds, "steps_per_second": model.num_timesteps / seconds,
            "curve": curve.points}  # fmt: skip


def _start_at_mean(model: Any, adapter: Any) -> None:
    """Make the Gaussian's mean action the training listeners' mean frame (in the adapter's [-1, 1] units)."""
    import torch

    dataset = adapter.venv.dataset
    clips = dataset.split("train" if "train" in dataset.splits else dataset.splits[0])
    mean = np.mean([np.asarray(c.listener_motion, np.float64).mean(0) for c in clips], axis=0)
    tokenizer = adapter.tokenizer
    target = np.clip(2 * (mean - tokenizer.low) / (tokenizer.high - tokenizer.low) - 1, -1, 1)
    with torch.no_grad():
        model.policy.action_net.weight.mul_(0.01)
        model.policy.action_net.bias.copy_(torch.as_tensor(target, dtype=torch.float32))


class CurveCallback(BaseCallback):
    """(timesteps, mean reward per frame of the last 100 training episodes) after every rollout.

    Per frame, not per episode: clips differ in length and the short ones end first, so early episode returns
    would look better only for being short."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        episodes = self.model.ep_info_buffer
        if episodes:
            rates = [e["r"] / e["l"] for e in episodes]
            self.points.append((int(self.num_timesteps), float(np.mean(rates))))


def evaluate_reference(config: RLConfig, out: Path, *, log: Any = print) -> dict[str, Any]:
    """Closed-loop evaluation on ``eval_split``: per seed, the baselines and every trained policy of that seed."""
    from agents import make_agent
    from dyadic_env.envs.sb3 import SB3Agent, make_sb3_env
    from experiments.evaluation import evaluate_agents, seeds_table, summarize_seeds

    rows_per_seed = []
    for seed in config.seeds:
        agents: dict[str, Any] = {name: make_agent(name, config.dataset, seed) for name in config.baselines}
        for reward in config.rewards:
            adapter = make_sb3_env(
                config.dataset, config.eval_split, **{**config.env_kwargs(reward), "num_envs": 1}
            )
            for algorithm in config.algorithms:
                model = ALGORITHMS[algorithm].load(
                    out / "models" / f"{run_name(algorithm, reward, seed)}.zip", device="cpu"
                )
                agents[row_name(algorithm, reward)] = SB3Agent(model, adapter)
        start = time.perf_counter()
        # The env's default context (32 frames): the baselines look back further than the policies, which
        # SB3Agent cuts to their own context_frames.
        results = evaluate_agents(agents, config.dataset, config.eval_split, seed, max_clips=config.max_clips)
        log(f"evaluated seed {seed} on {results['num_clips']} clips in {time.perf_counter() - start:.0f} s")
        rows_per_seed.append(results["rows"])
    summary = summarize_seeds(rows_per_seed)
    return {"rows_per_seed": rows_per_seed, "summary": summary, "table": seeds_table(summary),
            "num_clips": results["num_clips"]}  # fmt: skip


def plot_curves(results: dict[str, Any], path: Path) -> Path:
    """Learning curves: per reward, each algorithm's training reward per frame (mean over seeds, band: min to max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = results["config"]
    fig, axes = plt.subplots(
        1, len(config["rewards"]), figsize=(5.5 * len(config["rewards"]), 3.6), squeeze=False
    )
    for ax, reward in zip(axes[0], config["rewards"]):
        for algorithm in config["algorithms"]:
            curves = [results["runs"][run_name(algorithm, reward, s)]["curve"] for s in config["seeds"]]
            length = min(len(c) for c in curves)
            if not length:
                continue
            steps = np.array([p[0] for p in curves[0][:length]])
            values = np.array([[p[1] for p in c[:length]] for c in curves])
            ax.plot(steps, values.mean(0), label=algorithm.upper())
            ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
        ax.set(title=f"{reward} reward", xlabel="environment steps", ylabel="training reward per frame")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_markdown(results: dict[str, Any], command: str, curves: str) -> str:
    """docs/results/rl.md: the setup, the table of every row with CIs, the verdicts, the curves."""
    config, runs = results["config"], results["runs"]
    speed = {
        a: np.mean([r["steps_per_second"] for k, r in runs.items() if k.startswith(f"{a}_")])
        for a in config["algorithms"]
    }
    minutes = sum(r["seconds"] for r in runs.values()) / 60
    seeds = config["seeds"]
    parts = [
        "# Reference RL results on dyadic_env/Listener-v0",
        f"Generated by `{command}`.",
        f"Stable-Baselines3 {', '.join(a.upper() for a in config['algorithms'])} on the {', '.join(config['rewards'])} "
        f"rewards of `{config['dataset']}` (train split), {config['total_timesteps']:,} environment steps per run, "
        f"{config['num_envs']} batched envs, seeds {seeds}; {len(runs)} runs trained in {minutes:.1f} min of wall time "
        "(2 CPU cores, shared with other jobs: an upper bound). Training speed, environment steps per second "
        "including the updates: " + ", ".join(f"{a.upper()} {v:,.0f}" for a, v in speed.items()) + ".",
        f"Every row is evaluated closed loop on the {config['eval_split']} split ({results['num_clips']} clips) once per "
        f"seed (the baselines rebuilt with that seed, the policies trained with it) and shown as mean ± 95 % CI "
        "(Student t over the seeds). L2 is minus the imitation reward per frame; Oracle is the synthetic oracle's "
        "weighted score (1-5) that the oracle reward pays at an episode's end.",
        results["table"],
        "## Verdicts",
        "\n".join([*verdicts(results["summary"], config), *curve_changes(results)]),
        "Mean plays the training listeners' mean frame, the constant with the least squared error: a policy beats "
        "it on L2 only by reading the speaker. Every policy here starts from that frame (`init_at_mean`), so "
        "'level with Mean' says that at this budget RL found no speaker-dependent gain over its start; the "
        "oracle reward, which pays for responses to the speaker, moves the policies away from it. A curve below is "
        "not a policy's L2: its first points come from the shortest clips, which end first and on which a constant "
        "face errs least, and every point includes the exploration noise. The linear "
        "readout, a ridge regression from the speaker context fitted in seconds, shows what reading the speaker "
        "gives on L2: the gap from a policy to it is what RL on this reward has not found at this budget.",
        "## Learning curves",
        "Training reward per frame (mean of the last 100 episodes, exploration noise included; mean over seeds, band "
        "from min to max). "
        f"TensorBoard logs: `{config['out']}/tb`.",
        f"![learning curves]({curves})",
        "## Setup",
        "```json\n" + json.dumps({k: v for k, v in config.items() if k != "out"}, indent=1) + "\n```",
    ]
    return "\n\n".join(parts) + "\n"


def verdicts(summary: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Whether each policy beats Mean on the measure its reward pays (L2 for imitation, Oracle for oracle), and
    on imitation, the linear readout: the supervised answer RL on that reward should reach."""
    lines = []
    for reward in config["rewards"]:
        key, better = ("L2", -1) if reward == "imitation" else ("weighted", 1)
        references = ["mean", "linear"] if reward == "imitation" else ["mean"]
        for algorithm, reference in ((a, r) for a in config["algorithms"] for r in references):
            if key not in summary.get(reference, {}):
                continue
            row, ref = summary[row_name(algorithm, reward)][key], summary[reference][key]
            gap = better * (row["mean"] - ref["mean"])
            apart = abs(gap) > row["ci"] + ref["ci"]
            verdict = (
                "beats"
                if gap > 0 and apart
                else "is below"
                if gap < 0 and apart
                else "is level with (CIs overlap)"
            )
            lines.append(
                f"- {row_name(algorithm, reward)} {verdict} {REFERENCE_NAMES[reference]} on "
                f"{'L2' if key == 'L2' else 'the oracle score'}: {row['mean']:.4f} ± {row['ci']:.4f} against "
                f"{ref['mean']:.4f} ± {ref['ci']:.4f}."
            )
    return lines


REFERENCE_NAMES = {"mean": "Mean", "linear": "the linear readout"}


def curve_changes(results: dict[str, Any]) -> list[str]:
    """Each run group's training reward per frame at its first and last rollout (mean over seeds)."""
    config, lines = results["config"], []
    for reward in config["rewards"]:
        for algorithm in config["algorithms"]:
            curves = [results["runs"][run_name(algorithm, reward, s)]["curve"] for s in config["seeds"]]
            if all(curves):
                first, last = np.mean([c[0][1] for c in curves]), np.mean([c[-1][1] for c in curves])
                lines.append(
                    f"- {row_name(algorithm, reward)}: training reward per frame {first:.4f} at the first rollout, "
                    f"{last:.4f} at the last."
                )
    return lines
