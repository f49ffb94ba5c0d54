"""`dyadic bench rl` runs end to end (quick mode) and reports every rate with its ratio to the same run's baseline."""

import pytest

from experiments.bench.rl import TARGET, bench_rl


def test_bench_rl_quick_reports_every_rate_against_the_random_policy() -> None:
    figures = bench_rl(quick=True)
    baseline = figures["env_random_steps_per_s"]
    assert baseline > 0
    names = ("vla_sampling", "teacher_forced_forward", "teacher_forced_train", "ppo_rollout", "ppo_learn",
             "recurrent_ppo_estimate")  # fmt: skip
    for name in names:
        rate = figures[f"{name}_steps_per_s"]
        assert rate > 0
        assert figures[f"{name}_vs_env_random"] == pytest.approx(rate / baseline, rel=0.01, abs=1e-4)
        assert figures[f"meets_1000_{name}"] == (rate >= TARGET)
    # A training step does a forward pass and more. (PPO's update against its rollout is no such rule: the update
    # is batched, the rollout steps envs, and which is faster changed with the CPU and the allocator.)
    assert figures["teacher_forced_train_steps_per_s"] < figures["teacher_forced_forward_steps_per_s"]
