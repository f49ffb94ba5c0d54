"""`dyadic bench env`: listener-env speed against CartPole-v1, and vector envs against one env.

Every rate is measured in this run: both envs through ``gymnasium.make`` with actions drawn in advance,
timed in interleaved repeats and the best repeat kept, so a busy machine slows both alike. Single-env rates
are given by wall clock and by this process's CPU time (``*_cpu``): on a shared machine the CPU-time rate is
the cost of a step without the time other programs held the core.

Vector envs: Gymnasium's SyncVectorEnv loops over envs in Python and merges infos key by key, and its
AsyncVectorEnv pays an inter-process round trip per env per step (tens of microseconds), several times the
listener env's own step, so with the default imitation reward 2 async workers are several times slower than
one env; they pay off only when a step does real work, which the ``oracle`` figures measure (the synthetic
oracle's shaping reward costs a few hundred microseconds a step). The batched env of
``dyadic_env.envs.vector`` (what ``gym.make_vec`` builds by default) steps 64 episodes with batched numpy
(``native64``), or splits them over 2 worker processes of 32 episodes each (``sharded64_2workers``), paying
the round trip once per shard step. Workers gain only from idle cores: on a busy machine (compare
``load_average_1min`` with ``cpus``) the sharded env is slower than the in-process one.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import gymnasium as gym

from experiments.bench import benchmark

ENV_ID = "dyadic_env/Listener-v0"


def _dataset(tmp: str) -> str:
    """synthetic:tiny when the generator is available, else a random-walk dataset in ``tmp``."""
    try:
        from dyadic_env.data import load_dataset

        return str(load_dataset("synthetic:tiny").path)
    except ImportError:
        from dyadic_env.envs.testing import write_random_walk_dataset

        return str(write_random_walk_dataset(f"{tmp}/random-walk", frames=(400, 600)))


def single_env_rate(env: gym.Env, steps: int, seed: int = 0) -> tuple[float, float]:
    """Steps per second of one env by wall clock and by CPU time, resetting at episode ends, with the
    actions drawn beforehand."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(min(steps, 4096))]
    env.reset(seed=seed)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - wall), steps / max(time.process_time() - cpu, 1e-9)


def vector_env_rate(envs: gym.vector.VectorEnv, steps: int, seed: int = 0) -> float:
    """Env steps per second (vector steps x envs) of a vector env; it resets itself at episode ends."""
    envs.action_space.seed(seed)
    actions = [envs.action_space.sample() for _ in range(min(steps, 1024))]
    envs.reset(seed=seed)
    start = time.perf_counter()
    for i in range(steps):
        envs.step(actions[i % len(actions)])
    return steps * envs.num_envs / (time.perf_counter() - start)


def best_of(repeats: int, runs: dict[str, Any]) -> dict[str, Any]:
    """Interleave ``repeats`` rounds of every zero-argument rate function; keep each one's best rate (for
    functions returning tuples, the best of each element)."""
    best: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            rate = fn()
            best[name] = rate if name not in best else _elementwise_max(best[name], rate)
    return best


def _elementwise_max(a: Any, b: Any) -> Any:
    return tuple(max(x, y) for x, y in zip(a, b)) if isinstance(a, tuple) else max(a, b)


@benchmark(
    "env",
    help="Listener-v0 steps/s vs CartPole-v1 (same run); vector envs (gymnasium's, batched, sharded) vs one env",
)
def bench_env(quick: bool = False) -> dict[str, Any]:
    import dyadic_env  # noqa: F401  (registers the env)

    steps, repeats = (3_000, 3) if quick else (10_000, 7)
    with tempfile.TemporaryDirectory() as tmp:
        path = _dataset(tmp)
        cartpole = gym.make("CartPole-v1")
        listener = gym.make(ENV_ID, dataset=path)
        oracle = _oracle_env(path)
        single = {
            "cartpole": lambda: single_env_rate(cartpole, steps),
            "listener": lambda: single_env_rate(listener, steps),
        }
        if oracle is not None:
            single["listener_oracle"] = lambda: single_env_rate(oracle, steps // 4)
        rates = best_of(repeats, single)
        vec_steps = steps // 10
        vector = {}
        for mode in ("sync", "async"):
            envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, dataset=path)
            vector[mode] = best_of(repeats, {mode: lambda envs=envs: vector_env_rate(envs, vec_steps)})[mode]
            envs.close()
            if oracle is not None:
                envs = gym.make_vec(
                    ENV_ID, num_envs=2, vectorization_mode=mode, dataset=path, reward="oracle"
                )
                key = f"{mode}_oracle"
                vector[key] = best_of(
                    repeats, {key: lambda envs=envs: vector_env_rate(envs, vec_steps // 4)}
                )[key]
                envs.close()
        # The batched env (dyadic_env.envs.vector): 64 episodes in this process, then in 2 worker shards of 32.
        for key, workers in (("native64", 1), ("sharded64_2workers", 2)):
            envs = gym.make_vec(
                ENV_ID, num_envs=64, vectorization_mode="vector_entry_point", dataset=path, workers=workers
            )
            vector[key] = best_of(
                repeats, {key: lambda envs=envs: vector_env_rate(envs, max(steps // 20, 100))}
            )[key]
            envs.close()
    (cart_wall, cart_cpu), (env_wall, env_cpu) = rates["cartpole"], rates["listener"]
    figures: dict[str, Any] = {
        "dataset": path, "steps_per_repeat": steps, "repeats": repeats, "cpus": os.cpu_count(),
        # Vector-env speed-ups need idle cores: report how busy the machine was.
        "load_average_1min": os.getloadavg()[0],
        "cartpole_steps_per_s": cart_wall, "listener_steps_per_s": env_wall, "listener_vs_cartpole": env_wall / cart_wall,
        "cartpole_steps_per_s_cpu": cart_cpu, "listener_steps_per_s_cpu": env_cpu,
        "listener_vs_cartpole_cpu": env_cpu / cart_cpu,
        "sync2_steps_per_s": vector["sync"], "async2_steps_per_s": vector["async"],
        "async2_vs_one_env": vector["async"] / env_wall,
        "native64_steps_per_s": vector["native64"], "native64_vs_one_env": vector["native64"] / env_wall,
        "sharded64_2workers_steps_per_s": vector["sharded64_2workers"],
        "sharded64_2workers_vs_one_env": vector["sharded64_2workers"] / env_wall,
    }  # fmt: skip
    if oracle is not None:
        figures.update({
            "listener_oracle_steps_per_s": rates["listener_oracle"][0],
            "async2_oracle_steps_per_s": vector["async_oracle"],
            "async2_oracle_vs_one_env": vector["async_oracle"] / rates["listener_oracle"][0],
        })  # fmt: skip
    return figures


def _oracle_env(path: str) -> gym.Env | None:
    """The env with the synthetic oracle's reward (heavier steps), or None on non-synthetic data."""
    from dyadic_env.data import load_dataset
    from dyadic_env.rewards import is_synthetic

    return gym.make(ENV_ID, dataset=path, reward="oracle") if is_synthetic(load_dataset(path)) else None
