"""The CLI keeps large tensors in glibc's heap (experiments/allocator.py), unless the user says otherwise."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from experiments import allocator, cli
from experiments.bench.dpo import bench_dpo

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") != "libc.so.6", reason="glibc only"
)


@glibc
def test_thresholds_are_raised_unless_the_user_opts_out_or_sets_glibcs_own(monkeypatch) -> None:
    for name in (allocator.OPT_OUT, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    assert allocator.keep_large_allocations()
    monkeypatch.setenv(allocator.OPT_OUT, "1")
    assert not allocator.keep_large_allocations()
    monkeypatch.setenv(allocator.OPT_OUT, "0")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert not allocator.keep_large_allocations()


def test_the_cli_sets_the_allocator_before_its_command_runs(monkeypatch, capsys) -> None:
    calls: list[str] = []
    monkeypatch.setattr(allocator, "keep_large_allocations", lambda: calls.append("set") or True)
    assert cli.main(["bench"]) == 0
    assert calls == ["set"] and "dpo" in capsys.readouterr().out


@glibc
def test_bench_dpo_measures_both_allocators_in_fresh_processes() -> None:
    figures = bench_dpo(quick=True)
    for name in ("default_malloc", "cli_malloc"):
        assert figures[f"{name}_step_s"] > 0 and figures[f"{name}_peak_rss_mib"] > 0
    assert figures["default_over_cli_step_s"] == pytest.approx(
        figures["default_malloc_step_s"] / figures["cli_malloc_step_s"], abs=0.01
    )
