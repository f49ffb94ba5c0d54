"""`dyadic bench policy` runs end to end (quick mode) and reports every figure it promises."""

from experiments.bench.policy import bench_policy


def test_bench_policy_quick_reports_latency_and_training_throughput() -> None:
    figures = bench_policy(quick=True)
    for name in ("parallel_cache", "parallel_window", "autoregressive_cache", "parallel_gestures_cache"):
        assert figures[f"{name}_p50_ms"] <= figures[f"{name}_p95_ms"] and figures[f"{name}_fps"] > 0
    assert figures["parallel_over_autoregressive_fps"] > 1
    assert figures["sft_train_frames_per_s"] > 0 and figures["params_millions"] > 0
    assert figures["batched_multinomial_frames_per_s"] > 0 and figures["batched_inverse_cdf_frames_per_s"] > 0
    assert figures["inverse_cdf_over_multinomial"] > 0 and figures["batched_over_agent_fps"] > 0
