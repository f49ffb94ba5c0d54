"""The alignment benchmark's protocol on the tiny preset: cells, budgets, resumption, plug-ins and Ray."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from experiments.benchmark.protocol import BenchmarkConfig, cells
from experiments.errors import UserError
from experiments.pipelines.aligners import BudgetLedger, load_algorithm


class KeepSFT:
    """A plug-in algorithm (as a researcher would write one): returns the SFT checkpoint unchanged."""

    def __init__(self, note: str = "") -> None:
        self.note = note

    def __call__(self, task):
        assert len(task.pairs) <= task.budget and task.seed in (0, 1)
        return task.sft


class CopyWithFigures:
    """A plug-in that leaves a figure of its own in its checkpoint (as PPO on a reward model leaves its accuracy)."""

    def __call__(self, task):
        import shutil

        from experiments.pipelines.aligners import write_algorithm_figures

        policy = shutil.copytree(task.sft, task.out / "policy")
        write_algorithm_figures(policy, {"pairs_seen": len(task.pairs)})
        return policy


def _tiny(tmp_path: Path) -> tuple[Path, Path]:
    from agents.vla.factory import model_for_dataset
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import write_preset

    data = write_preset("tiny", tmp_path / "data")
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 2}  # fmt: skip
    model = model_for_dataset(load_dataset(data), backbone=tiny, head_hidden=32, projector_hidden=32)
    model.save_pretrained(tmp_path / "sft")
    return data, tmp_path / "sft"


def _config(tmp_path: Path, data: Path, sft: Path, **changes) -> BenchmarkConfig:
    values = dict(
        out=tmp_path / "run", dataset=str(data), sft=str(sft), seeds=[0], budgets=[2, 3],
        algorithms=["dpo", f"{__name__}:KeepSFT"], num_threads=1,
        algorithm_specs={"dpo": {"algorithm": "dpo", "settings": {"num_epochs": 1, "batch_size": 2}},
                         "iterated_dpo": {"algorithm": "iterated_dpo",
                                          "settings": {"rounds": 2, "num_epochs": 1, "batch_size": 2}}},
        feedback={"samples": 2, "annotators": 2, "ratings_per_group": 2, "temperature": 1.0},
        eval={"samples": 1, "max_clips": 2}, ceilings={"best_of": [2]},
    )  # fmt: skip
    values.update(changes)
    return BenchmarkConfig.from_dict(values)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="unknown fields"):
        BenchmarkConfig.from_dict({"budget": [1]})
    with pytest.raises(UserError, match="budgets"):
        BenchmarkConfig(budgets=[0])
    with pytest.raises(UserError, match=r"eval\.split"):
        BenchmarkConfig(eval={"split": "train"})
    with pytest.raises(UserError, match="unknown; built-ins"):
        load_algorithm("nope")
    with pytest.raises(UserError, match="cannot import"):
        load_algorithm("no_such_module:Thing")
    with pytest.raises(ValueError, match="totl_steps"):
        load_algorithm("ppo_rm", {"episode_ppo": {"totl_steps": 8}})
    with pytest.raises(UserError, match="not both"):
        load_algorithm("ppo_rm", {"ppo": {"total_timesteps": 8}, "episode_ppo": {"total_steps": 8}})
    with pytest.raises(UserError, match="ppo_rm pairing"):
        load_algorithm("ppo_rm", {"pairing": "all"})


def test_budget_ledger_refuses_overspending() -> None:
    ledger = BudgetLedger(10, spent=6)
    ledger.charge(4, "round1")
    with pytest.raises(UserError, match="budget of 10"):
        ledger.charge(1, "round2")


def test_all_pairs_ranks_every_scored_pair_of_a_group_and_skips_ties() -> None:
    import numpy as np

    from experiments.pipelines.aligners import all_pairs
    from experiments.pipelines.alignment import RatedCandidate, RatedGroup

    tokens = [np.full((2, 56), k, np.int64) for k in range(3)]
    group = RatedGroup(
        "g", "clip", tuple(RatedCandidate(f"c{k}", tokens[k], s, {}) for k, s in enumerate([3.0, 4.5, 3.0]))
    )
    pairs = all_pairs([group])
    assert [(int(p.chosen_tokens[0, 0]), int(p.rejected_tokens[0, 0]), p.margin) for p in pairs] == [
        (1, 0, 1.5),
        (1, 2, 1.5),
    ]
    assert all(p.clip_id == "clip" for p in pairs)


def test_cell_pairs_follow_the_pairing() -> None:
    import numpy as np

    from experiments.pipelines.aligners import AlignmentTask, cell_pairs
    from experiments.pipelines.alignment import RatedCandidate, RatedGroup

    scores = [3.0, 4.5, 2.0, 3.5]
    group = RatedGroup("g", "clip", tuple(
        RatedCandidate(f"c{k}", np.full((2, 56), k, np.int64), s, {}) for k, s in enumerate(scores)
    ))  # fmt: skip
    task = AlignmentTask(
        sft=Path("sft"), pairs=["the export's pair"], groups=[group], dataset=None, budget=1, seed=0,
        out=Path("out"), collect=lambda *_: ([], []),
    )  # fmt: skip
    assert cell_pairs(task, "best-worst") == ["the export's pair"]
    first = [
        (int(p.chosen_tokens[0, 0]), int(p.rejected_tokens[0, 0])) for p in cell_pairs(task, "top-bottom", 2)
    ]
    assert first == [(1, 2), (3, 0)]
    assert len(cell_pairs(task, "all-pairs")) == 6


def test_cells_cover_algorithms_budgets_and_seeds() -> None:
    config = BenchmarkConfig(algorithms=["dpo", "sft_preferred"], budgets=[120, 60], seeds=[0, 1])
    assert config.budgets == [60, 120]
    assert len(cells(config)) == 8


@pytest.mark.slow
def test_protocol_end_to_end_resumes_and_takes_plugins(tmp_path: Path) -> None:
    from experiments.benchmark.runner import run_benchmark

    data, sft = _tiny(tmp_path)
    ppo = {"total_timesteps": 32, "n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1}
    config = _config(
        tmp_path, data, sft, algorithms=["dpo", f"{__name__}:KeepSFT", "iterated_dpo", f"{__name__}:CopyWithFigures"],
        ceilings={"best_of": [2], "rl_oracle_steps": 32, "rl_oracle": ppo},
    )  # fmt: skip
    summary = run_benchmark(config, log=lambda _msg: None)
    assert set(summary["rows"]) == {
        "dpo",
        f"{__name__}:KeepSFT",
        "iterated_dpo",
        f"{__name__}:CopyWithFigures",
    }
    measured = summary["rows"][f"{__name__}:CopyWithFigures"]["3"]["figures"]["pairs_seen"]
    pairs_at_3 = json.loads(
        (config.out / "cells" / f"{__name__}:CopyWithFigures" / "b3-s0" / "result.json").read_text()
    )
    assert measured["n"] == 1 and measured["mean"] == pairs_at_3["figures"]["pairs_seen"] > 0
    assert "CopyWithFigures @ 3: pairs_seen" in (config.out / "results.md").read_text()
    iterated = json.loads((config.out / "cells" / "iterated_dpo" / "b3-s0" / "result.json").read_text())
    assert iterated["labels_spent"] == 3 and iterated["collections"] == [
        ["round1", 1]
    ]  # 2 up front + 1 on-policy
    assert set(summary["rows"]["dpo"]) == {"2", "3"}
    keep = summary["rows"][f"{__name__}:KeepSFT"]["2"]["weighted"]
    assert keep["mean"] == pytest.approx(0.0)  # the SFT checkpoint scored with the SFT row's sampling seed
    ceilings = summary["ceilings"]["ceilings"]
    assert {"best_of_2", "ground_truth", "appropriate", "rl_oracle"} <= set(ceilings)
    assert ceilings["best_of_2"]["diff"] >= 0 and ceilings["rl_oracle"]["env_steps"] == 32
    assert (config.out / "label_efficiency.png").exists()
    # Resuming recomputes nothing finished: every result file keeps its bytes and mtime.
    results = sorted(config.out.glob("cells/**/result.json"))
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in results}
    messages: list[str] = []
    run_benchmark(config, log=messages.append)
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == stamps[p] for p in results)
    assert not any("running" in m for m in messages)
    # A larger RL-ceiling budget joins the folder: only that ceiling is measured again.
    run_benchmark(dataclasses.replace(config, ceilings=dataclasses.replace(config.ceilings, rl_oracle_steps=64)),
                  log=messages.append)  # fmt: skip
    again = json.loads((config.out / "ceilings.json").read_text())["ceilings"]
    assert again["rl_oracle"]["env_steps"] == 64 and again["best_of_2"] == ceilings["best_of_2"]
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == stamps[p] for p in results)
    # Another config may not be mixed into the same results folder.
    with pytest.raises(UserError, match="another protocol or config"):
        run_benchmark(_config(tmp_path, data, sft, eval={"samples": 2, "max_clips": 2}), log=lambda _m: None)


@pytest.mark.slow
def test_ray_run_equals_in_process_run(tmp_path: Path) -> None:
    from experiments.benchmark.runner import run_benchmark

    data, sft = _tiny(tmp_path)
    local = run_benchmark(
        _config(tmp_path, data, sft, out=tmp_path / "local", budgets=[2]), log=lambda _m: None
    )
    on_ray = run_benchmark(
        _config(tmp_path, data, sft, out=tmp_path / "ray", budgets=[2], ray="local"), log=lambda _m: None
    )
    for name in ("local", "ray"):
        assert (tmp_path / name / "results.json").exists()
    assert json.dumps(local["rows"], sort_keys=True) == json.dumps(on_ray["rows"], sort_keys=True)


@pytest.mark.slow
def test_react_table_and_resuming_an_older_folder_adds_react_without_training(
    tmp_path: Path, monkeypatch
) -> None:
    from experiments.benchmark.report import summarize, write_docs, write_results
    from experiments.benchmark.runner import run_benchmark

    data, sft = _tiny(tmp_path)
    keep = f"{__name__}:KeepSFT"
    config = _config(tmp_path, data, sft, seeds=[0, 1], budgets=[2], eval={"samples": 2, "max_clips": 3})
    summary = run_benchmark(config, log=lambda _m: None, ceilings=False)
    text = (config.out / "results.md").read_text()
    assert "Δ FRCorr [95 % CI]" in text and "| SFT | 0 | 2 |" in text and "| dpo | 2 | 2 |" in text
    assert "Δ FRCorr [95 % CI]" in write_docs(config, summary, tmp_path / "docs" / "alignment.md").read_text()
    react = summary["rows"][keep]["2"]["react"]
    assert react["seeds"] == [0, 1]
    # KeepSFT is the SFT checkpoint sampled with the SFT row's seed: the same samples, so no difference at all.
    assert all(react[k]["mean"] == 0 for k in ("FRCorr", "FRDist", "FRDiv", "FRSyn"))
    results = sorted([*config.out.glob("cells/SFT/s*.json"), *config.out.glob("cells/*/b*/result.json")])
    assert len(results) == 6  # 2 SFT evaluations + 2 algorithms x 2 seeds
    first = {p: json.loads(p.read_text()) for p in results}
    assert all(r["react"]["row"]["FRCorr"] > 0 and r["react"]["samples"] == 2 for r in first.values())

    # A folder from before REACT: results without it. --report-only runs nothing and says how to get it.
    for path, record in first.items():
        path.write_text(json.dumps({k: v for k, v in record.items() if k != "react"}, indent=1))
    stored = [p for d in ("cells", "feedback") for p in (config.out / d).rglob("*") if p.is_file()]
    stamps = {p: p.stat().st_mtime_ns for p in stored}
    write_results(config, summarize(config), log=lambda _m: None)
    assert "evaluated before REACT's metrics were added" in (config.out / "results.md").read_text()
    assert all(p.stat().st_mtime_ns == stamps[p] for p in stamps)

    # The next run evaluates the stored policies again, trains and collects nothing, and keeps every figure.
    def refuse(*_args, **_kwargs):
        raise AssertionError("resuming must not train or collect")

    monkeypatch.setattr("experiments.pipelines.aligners.load_algorithm", refuse)
    monkeypatch.setattr("experiments.pipelines.alignment.collect_preferences", refuse)
    run_benchmark(config, log=lambda _m: None, ceilings=False)
    for path, record in first.items():
        now = json.loads(path.read_text())
        assert {k: v for k, v in now.items() if k != "react"} == {
            k: v for k, v in record.items() if k != "react"
        }
        assert now["react"]["row"] == record["react"]["row"]
        assert now["react"]["backfilled"] and now["react"]["same_samples"]
    policies = [p for p in stamps if "/policy/" in str(p) or "/feedback/" in str(p)]
    assert policies and all(p.stat().st_mtime_ns == stamps[p] for p in policies)
    assert (config.out / "results.md").read_text() == text


def _small_rm() -> dict:
    return {"model": {"ensemble_size": 2, "hidden_sizes": [8]}, "training": {"epochs": 2, "batch_size": 2}}


def test_active_selection_reads_only_the_groups_it_buys(tmp_path: Path) -> None:
    import numpy as np

    from agents.alignment.dpo import TrajectoryPair
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import write_preset
    from experiments.benchmark.selection import Selection, select_groups

    dataset = load_dataset(write_preset("tiny", tmp_path / "data"))
    rng = np.random.default_rng(0)
    ids = list(dataset.split("train").clip_ids)
    pool = [
        (cid, [rng.integers(0, 256, (dataset.clip(cid).num_frames, 56)) for _ in range(3)])
        for cid in (ids * 3)[:8]
    ]
    selection = Selection(method="disagreement", pool=2, rounds=2, rm=_small_rm())

    def run() -> tuple[list[int], list[int]]:
        read: list[int] = []

        def label(i: int) -> TrajectoryPair:
            read.append(i)
            return TrajectoryPair(pool[i][0], pool[i][1][0], pool[i][1][1])

        return select_groups(selection, pool, label, 4, 0, dataset, log=lambda _m: None), read

    bought, read = run()
    assert len(set(bought)) == 4 and sorted(read) == sorted(bought)
    assert run()[0] == bought  # seeded
    with pytest.raises(UserError, match="pool holds 8 groups, 10 are needed"):
        select_groups(selection, pool, lambda i: None, 5, 0, dataset)
    with pytest.raises(UserError, match=r"selection\.method"):
        Selection(method="uncertainty")
    with pytest.raises(UserError, match="unknown keys"):
        Selection.from_dict({"size": 3})
    with pytest.raises(UserError, match="ensemble_size >= 2"):
        Selection(method="disagreement", rm={"model": {"ensemble_size": 1}})
    with pytest.raises(ValueError, match="first groups"):
        select_groups(Selection(), pool, lambda i: None, 4, 0, dataset)


class _Members:
    """Fixed per-member returns ``(members, candidates)``, whatever the features: what :func:`disagreement` reads."""

    def __init__(self, returns):
        from reward_models import StepFeatureConfig

        self.returns_table, self.feature_config = returns, StepFeatureConfig()

    def returns(self, x):
        import torch

        assert x.shape[0] == self.returns_table.shape[1]  # one row per candidate
        return torch.as_tensor(self.returns_table)


def test_disagreement_ignores_a_members_shift_and_counts_a_reordering(tmp_path: Path) -> None:
    import numpy as np

    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import write_preset
    from experiments.benchmark.selection import disagreement

    dataset = load_dataset(write_preset("tiny", tmp_path / "data"))
    clip = dataset.clip(next(iter(dataset.split("train").clip_ids)))
    group = [(clip.clip_id, [np.zeros((clip.num_frames, 56), np.int64)] * 2)]
    shifted = disagreement(_Members(np.array([[1.0, 2.0], [11.0, 12.0]])), group, dataset)
    reordered = disagreement(_Members(np.array([[1.0, 2.0], [2.0, 1.0]])), group, dataset)
    assert shifted[0] == pytest.approx(0.0) and reordered[0] == pytest.approx(0.5)


@pytest.mark.slow
def test_an_active_row_buys_its_budget_from_a_larger_pool(tmp_path: Path) -> None:
    from experiments.benchmark.collection import finished_parts, pool
    from experiments.benchmark.runner import run_benchmark

    data, sft = _tiny(tmp_path)
    active = {"algorithm": f"{__name__}:CopyWithFigures",
              "selection": {"method": "disagreement", "pool": 2, "rounds": 2, "rm": _small_rm()}}  # fmt: skip
    config = _config(tmp_path, data, sft, algorithms=["active"], budgets=[2], algorithm_specs={"active": active},
                     ceilings={"best_of": [2]})  # fmt: skip
    assert config.collection_groups() == 4
    run_benchmark(config, log=lambda _m: None, ceilings=False)
    result = json.loads((config.out / "cells" / "active" / "b2-s0" / "result.json").read_text())
    assert result["labels_spent"] == 2 and result["selection"]["method"] == "disagreement"
    random_groups = pool(config, 0, 2)[1]
    active_pairs, active_groups = pool(config, 0, 2, config.selection("active"), log=lambda _m: None)
    assert result["figures"]["pairs_seen"] == len(active_pairs)  # the cell trained on what selection buys
    assert len({g.group_id for g in active_groups}) == 2 and len(finished_parts(config.out, 0)) == 1
    assert {g.group_id for g in active_groups} <= {g.group_id for g in pool(config, 0, 4)[1]}
    first = [g.group_id for g in pool(config, 0, 4)[1][:2]]
    assert [g.group_id for g in random_groups] == first  # random rows keep the first groups of the collection


def test_reward_model_curve_learns_a_learnable_preference(tmp_path: Path) -> None:
    import numpy as np

    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import write_preset
    from experiments.benchmark.reward_curve import markdown, reward_model_curve
    from experiments.pipelines.alignment import RatedCandidate, RatedGroup

    dataset = load_dataset(write_preset("tiny", tmp_path / "data"))
    rng = np.random.default_rng(0)
    ids = list(dataset.split("train").clip_ids)
    groups = []
    for g in range(24):  # people prefer listeners whose first value is high: a linear, learnable preference
        clip = dataset.clip(ids[g % len(ids)])
        levels = rng.permutation(4) * 60
        cands = []
        for k, level in enumerate(levels):
            tokens = rng.integers(0, 256, (clip.num_frames, 56))
            tokens[:, 0] = level
            cands.append(RatedCandidate(f"{g}-{k}", tokens, float(level), {}))
        groups.append(RatedGroup(f"g{g}", clip.clip_id, tuple(cands)))
    rm = {"model": {"ensemble_size": 2, "hidden_sizes": [8]}, "training": {"epochs": 20, "batch_size": 4}}
    result = reward_model_curve(groups, dataset, [4, 16], 8, [0, 1], rm, log=lambda _m: None)
    small, large = (row["best_worst"]["mean"] for row in result["rows"])
    assert (
        0.0 <= small <= 1.0
        and large >= 0.9
        and result["held_out_pairs"] == {"best_worst": 8, "all_pairs": 48}
    )
    assert "| 16 | 16 |" in markdown(result, "cmd")
    # The hidden oracle orders the same held-out pairs (the last 8 groups) by its own score.
    from experiments.benchmark.reward_curve import oracle_accuracy
    from experiments.pipelines.aligners import all_pairs, extreme_pairs

    oracle, held = result["oracle"], groups[-8:]
    assert oracle == {
        "best_worst": oracle_accuracy(extreme_pairs(held, 1), dataset),
        "all_pairs": oracle_accuracy(all_pairs(held), dataset),
    }
    assert (
        f"| the hidden oracle (the ceiling against these labels) | - | {oracle['best_worst']:.3f} |"
        in markdown(result, "cmd")
    )
    with pytest.raises(UserError, match="need more"):
        reward_model_curve(groups, dataset, [20], 8, [0], rm)
    # Another collection held out whole: every training group may be learned from.
    result = reward_model_curve(
        groups[:20], dataset, [20], 8, [0], rm, log=lambda _m: None, test_groups=groups[20:]
    )
    assert result["held_out_pairs"]["best_worst"] == 4 and result["rows"][0]["best_worst"]["mean"] >= 0.75
    assert "the test collection's 4 are held out" in markdown(result, "cmd")


def test_the_oracle_ceiling_orders_pairs_by_the_hidden_score(tmp_path: Path) -> None:
    import numpy as np

    from agents.alignment.dpo import TrajectoryPair
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import write_preset
    from experiments.benchmark.reward_curve import oracle_accuracy

    dataset = load_dataset(write_preset("tiny", tmp_path / "data"))
    tokenizer, rng = dataset.tokenizer(), np.random.default_rng(0)
    pairs = []
    for clip_id in list(dataset.split("train").clip_ids)[:4]:  # the recorded listener against uniform noise
        clip = dataset.clip(clip_id)
        noise = rng.integers(0, 256, (clip.num_frames, 56))
        pairs.append(TrajectoryPair(clip_id, tokenizer.encode(clip.listener_motion), noise))
    assert oracle_accuracy(pairs, dataset) == 1.0
    swapped = [TrajectoryPair(p.clip_id, p.rejected_tokens, p.chosen_tokens) for p in pairs]
    assert oracle_accuracy(swapped + pairs, dataset) == 0.5 and oracle_accuracy([], dataset) is None


def test_a_cell_runs_in_one_process_at_a_time(tmp_path: Path) -> None:
    """A second process reaching a running cell stops before it clears that cell's work; a killed run's lock
    is taken over."""
    import socket
    import subprocess

    from experiments.benchmark.runner import cell_lock
    from experiments.errors import UserError

    cell = tmp_path / "cells" / "dpo" / "b8-s0"
    with cell_lock(cell, "dpo/b8-s0"):
        assert (cell / "running.lock").read_text().endswith(f":{os.getpid()}")
        with pytest.raises(UserError, match=r"x: process .* is running this cell"), cell_lock(cell, "x"):
            pass
    assert not (cell / "running.lock").exists()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (cell / "running.lock").write_text(f"{socket.gethostname()}:{gone.pid}")
    with cell_lock(cell, "dpo/b8-s0"):  # its process is gone: taken over
        assert (cell / "running.lock").read_text().endswith(f":{os.getpid()}")
    (cell / "running.lock").write_text("another-host:1")
    with pytest.raises(UserError, match="delete the lock if that process is gone"), cell_lock(cell, "x"):
        pass


def _check_config_many_times(config: BenchmarkConfig, times: int) -> None:
    from experiments.benchmark.runner import _check_config_file

    for _ in range(times):
        _check_config_file(config)


def test_processes_starting_together_on_one_folder_both_run(tmp_path: Path) -> None:
    """Two processes that share a results folder (the way to use 2 cores) check and write its config file at
    once: neither may read the other's half-written file (a second process once died of it at start)."""
    import multiprocessing

    config = _config(tmp_path, tmp_path / "data", tmp_path / "sft")
    config.out.mkdir(parents=True)
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_check_config_many_times, args=(config, 300)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    written = json.loads((config.out / "benchmark_config.json").read_text())
    assert written["fingerprint"] == config.fingerprint()
    assert not list(config.out.glob("*.partial"))


@pytest.mark.slow
def test_policies_trained_for_the_val_split_are_evaluated_on_test_not_retrained(
    tmp_path: Path, monkeypatch
) -> None:
    from experiments.benchmark.protocol import Cell
    from experiments.benchmark.runner import _trained_elsewhere, run_benchmark

    data, sft = _tiny(tmp_path)
    val = _config(tmp_path, data, sft, out=tmp_path / "val", budgets=[2], eval={"split": "val", "samples": 1})
    run_benchmark(val, log=lambda _m: None, ceilings=False)

    def refuse(*_args, **_kwargs):
        raise AssertionError("a cell the val folder trained must not be trained again")

    monkeypatch.setattr("experiments.pipelines.aligners.load_algorithm", refuse)
    test = _config(tmp_path, data, sft, out=tmp_path / "test", budgets=[2], policies_from=val.out)
    test.out.mkdir()
    # The same collections, linked (as scripts/alignment_tuning.sh links the test folder's).
    (test.out / "feedback").symlink_to(val.out / "feedback")
    run_benchmark(test, log=lambda _m: None, ceilings=False)
    for cell in cells(test):
        here = json.loads((cell.directory(test.out) / "result.json").read_text())
        there = json.loads((cell.directory(val.out) / "result.json").read_text())
        assert here["policy_from"] == str(cell.directory(val.out)) and here["eval"]["split"] == "test"
        assert {k: here[k] for k in ("settings", "labels_spent", "train_seconds")} == {
            k: there[k] for k in ("settings", "labels_spent", "train_seconds")
        }
        assert here["clip_ids"] != there["clip_ids"]  # evaluated on the test clips
    trained = Cell("dpo", 2, 0)
    assert (trained.directory(test.out) / "policy" / "model.safetensors").read_bytes() == (
        trained.directory(val.out) / "policy" / "model.safetensors"
    ).read_bytes()
    # A cell trained with other settings is not taken; a folder trained otherwise (other feedback) is refused.
    other = dataclasses.replace(
        test, algorithm_specs={"dpo": {"settings": {"num_epochs": 2, "batch_size": 2}}}
    )
    assert _trained_elsewhere(other, trained) is None and _trained_elsewhere(test, trained) is not None
    refused = dataclasses.replace(test, out=tmp_path / "refused", feedback={**test.feedback, "samples": 3})
    with pytest.raises(UserError, match=r"policies_from: .* another protocol or config"):
        run_benchmark(refused, log=lambda _m: None, ceilings=False)
    assert not (refused.out / "benchmark_config.json").exists()  # a refused run writes nothing
    with pytest.raises(UserError, match="not a results folder"):
        run_benchmark(dataclasses.replace(test, policies_from=tmp_path / "data"), log=lambda _m: None)
    with pytest.raises(UserError, match="needs a named SFT checkpoint"):
        run_benchmark(dataclasses.replace(test, out=tmp_path / "own_sft", sft=None), log=lambda _m: None)
