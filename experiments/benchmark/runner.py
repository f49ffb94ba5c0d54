"""Runs the alignment benchmark's cells, in this process or as Ray tasks, resumably.

Every output is written atomically by :func:`experiments.pipelines.stages.run_stage` and skipped when it exists,
so an interrupted sweep resumes where it stopped and never recomputes a finished cell. Work is split in three
kinds of independent jobs, each a pure function of the config and its arguments (what Ray ships to workers):

1. per seed, the preference collection (rated groups of SFT samples on train clips) and the SFT's evaluation;
2. per cell, the algorithm's training on the first ``budget`` groups of its seed's collection, then evaluation;
3. once, the ceilings.

A result written before REACT's metrics were part of the evaluation gets them on the next run, from the cell's
stored policy (:func:`add_missing_react`: evaluation only, nothing retrained); ``--report-only`` runs nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.benchmark.collection import collect_seed, pool
from experiments.benchmark.protocol import (
    PROTOCOL_VERSION,
    BenchmarkConfig,
    Cell,
    cells,
    sft_eval_path,
    training_fingerprint,
)
from experiments.errors import UserError
from experiments.pipelines.stages import run_stage

Log = Callable[[str], None]


def run_benchmark(config: BenchmarkConfig, log: Log = print, *, ceilings: bool = True) -> dict[str, Any]:
    """Run (or resume) every cell and (unless ``ceilings`` is False) the ceilings; write the results table."""
    from experiments.benchmark.report import summarize, write_results

    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    _check_policies_from(config)  # before anything is written to a run it refuses
    _check_config_file(config)
    sft = resolve_sft(config, log)
    jobs = [j for j in _jobs(config, sft) if ceilings or j[0] is not run_ceilings]
    if config.ray:
        _run_on_ray(config, jobs, log)
    else:
        for job in jobs:
            job[0](config, *job[1:], log=log)
    summary = summarize(config)
    write_results(config, summary, log=log)
    return summary


def _jobs(config: BenchmarkConfig, sft: Path) -> list[tuple[Any, ...]]:
    """The jobs in dependency order. In-process, seed by seed (a finished seed is a complete row of results
    early in a long sweep); on Ray, every collection and SFT evaluation, a barrier, then every cell."""
    by_seed = {s: [c for c in cells(config) if c.seed == s] for s in config.seeds}
    if config.ray:
        first: list[tuple[Any, ...]] = [(collect_seed, str(sft), s) for s in config.seeds]
        first += [(evaluate_sft, str(sft), s) for s in config.seeds]
        rest = [(run_cell, str(sft), c.algorithm, c.budget, c.seed) for s in config.seeds for c in by_seed[s]]
        return [*first, ("barrier",), *rest, (run_ceilings, str(sft))]
    jobs: list[tuple[Any, ...]] = []
    for s in config.seeds:
        jobs += [(collect_seed, str(sft), s), (evaluate_sft, str(sft), s)]
        jobs += [(run_cell, str(sft), c.algorithm, c.budget, c.seed) for c in by_seed[s]]
    return [*jobs, (run_ceilings, str(sft))]


def resolve_sft(config: BenchmarkConfig, log: Log) -> Path:
    if config.sft:
        path = Path(config.sft)
        if not (path / "config.json").exists():
            raise UserError(
                f"sft: {path} is not a VLA checkpoint (no config.json); train one with dyadic train sft"
            )
        return path
    from experiments.pipelines.stages import train_sft_stage

    return train_sft_stage(config.sft_config, config.dataset, config.out / "sft", seed=0, log=log)


# --- jobs ------------------------------------------------------------------------------------------------------
def evaluate_sft(config: BenchmarkConfig, sft: str, seed: int, log: Log = print) -> Path:
    add_missing_react(config, Path(sft), sft_eval_path(config.out, seed), log)
    return run_stage(
        f"eval SFT s{seed}", sft_eval_path(config.out, seed),
        lambda tmp: _write_eval(config, Path(sft), seed, tmp, {"algorithm": "SFT", "seed": seed}, log), log=log,
    )  # fmt: skip


def run_cell(
    config: BenchmarkConfig, sft: str, algorithm: str, budget: int, seed: int, log: Log = print
) -> Path:
    """Train one cell's algorithm on its share of preference data, evaluate it; returns ``result.json``."""
    cell = Cell(algorithm, budget, seed)
    directory = cell.directory(config.out)
    _drop_if_stale(config, cell, directory / "result.json", log)
    add_missing_react(config, directory / "policy", directory / "result.json", log)
    with cell_lock(directory, cell.key):
        return run_stage(
            cell.key, directory / "result.json", lambda tmp: _cell(config, Path(sft), cell, tmp, log), log=log
        )


@contextmanager
def cell_lock(directory: Path, key: str) -> Iterator[None]:
    """One process per cell: a process that reaches a cell another one is running stops here, before it would
    clear that one's work folder. A lock whose process is gone (killed on this host) is taken over."""
    directory.mkdir(parents=True, exist_ok=True)
    lock, me = directory / "running.lock", f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            owner = lock.read_text().strip() if lock.exists() else ""
            host, _, pid = owner.partition(":")
            if host != socket.gethostname() or (pid.isdigit() and _alive(int(pid))):
                raise UserError(
                    f"{key}: process {owner} is running this cell (lock {lock}); give parallel runs different "
                    "seeds, or delete the lock if that process is gone"
                ) from None
            lock.unlink(missing_ok=True)  # left by a run that was killed
    else:  # another process took the freed lock first
        raise UserError(
            f"{key}: another process took this cell's lock ({lock}) as this one did; run it again"
        )
    os.write(fd, me.encode())
    os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def _cell(config: BenchmarkConfig, sft: Path, cell: Cell, tmp: Path, log: Log) -> None:
    import torch

    from dyadic_env.data import load_dataset
    from experiments.pipelines.aligners import ALGORITHM_FIGURES, AlignmentTask, BudgetLedger, load_algorithm

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    final = cell.directory(config.out) / "policy"
    trained = _trained_elsewhere(config, cell)
    if trained is not None:
        policy, meta = trained
        log(f"[{cell.key}] trained in {meta['policy_from']}: evaluating that policy")
        _write_eval(config, policy, cell.seed, tmp, meta, log)
        _replace_tree(policy, final)
        shutil.rmtree(cell.directory(config.out) / "work", ignore_errors=True)  # a killed run's, if any
        return
    spec, settings = config.spec(cell.algorithm)
    algorithm = load_algorithm(spec, settings)
    selection = config.selection(cell.algorithm)
    pairs, groups = pool(config, cell.seed, cell.budget, selection, log)
    ledger = BudgetLedger(cell.budget, spent=len(groups))
    work = cell.directory(config.out) / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dataset = load_dataset(config.dataset)
    task = AlignmentTask(
        sft=sft, pairs=pairs, groups=groups, dataset=dataset, budget=cell.budget, seed=cell.seed, out=work,
        collect=_collector(config, cell, ledger, work, log), log=log, num_threads=config.num_threads,
        other_cell=lambda row: Cell(row, cell.budget, cell.seed).directory(config.out),
    )  # fmt: skip
    upfront = getattr(algorithm, "upfront_groups", None)
    if upfront is not None:  # an on-policy algorithm collects the rest of its budget itself
        take = int(upfront(cell.budget))
        task.pairs, task.groups, ledger.spent = pairs[:take], groups[:take], take
    started = time.perf_counter()
    policy = Path(algorithm(task))
    seconds = time.perf_counter() - started
    meta = {"algorithm": cell.algorithm, "spec": spec, "settings": settings, "budget": cell.budget,
            "seed": cell.seed, "labels_spent": ledger.spent, "collections": ledger.history, "train_seconds": seconds}  # fmt: skip
    if selection.method != "random":
        meta["selection"] = asdict(selection)
    figures = policy / ALGORITHM_FIGURES
    if figures.exists():  # what the algorithm measured of itself, e.g. its reward model's accuracy
        meta["figures"] = json.loads(figures.read_text())
    _write_eval(config, policy, cell.seed, tmp, meta, log)
    _replace_tree(policy, final)
    shutil.rmtree(work, ignore_errors=True)


def _replace_tree(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _drop_if_stale(config: BenchmarkConfig, cell: Cell, result: Path, log: Log) -> None:
    """Delete a cell's result made with other algorithm settings than the config's, so it is recomputed."""
    if not result.exists():
        return
    previous = json.loads(result.read_text())
    if not _trained_as_configured(config, cell, previous):
        log(f"[{cell.key}] was trained with other settings ({previous.get('settings')}): training it again")
        result.unlink()


def _trained_as_configured(config: BenchmarkConfig, cell: Cell, result: dict[str, Any]) -> bool:
    """Whether a cell's result was trained with the algorithm, settings and query selection the config names."""
    spec, settings = config.spec(cell.algorithm)
    selection = config.selection(cell.algorithm)
    wanted = (
        spec,
        json.loads(json.dumps(settings)),
        asdict(selection) if selection.method != "random" else None,
    )
    return (result.get("spec"), result.get("settings"), result.get("selection")) == wanted


_EVALUATION_KEYS = ("protocol", "fingerprint", "row", "per_clip", "clip_ids", "eval", "react")


def _trained_elsewhere(config: BenchmarkConfig, cell: Cell) -> tuple[Path, dict[str, Any]] | None:
    """The policy ``config.policies_from`` trained for this cell with the same settings, and the training part
    of its record (labels spent, training time, the algorithm's own figures); None when it has none."""
    if config.policies_from is None:
        return None
    directory = cell.directory(config.policies_from)
    result, policy = directory / "result.json", directory / "policy"
    if not (result.exists() and (policy / "config.json").exists()):
        return None
    previous = json.loads(result.read_text())
    if not _trained_as_configured(config, cell, previous):
        return None
    meta = {k: v for k, v in previous.items() if k not in _EVALUATION_KEYS}
    return policy, {**meta, "policy_from": str(directory)}


def _collector(config: BenchmarkConfig, cell: Cell, ledger: Any, work: Path, log: Log) -> Callable[..., Any]:
    """``collect(policy, groups, tag)`` for on-policy algorithms: rates new groups, charged to the cell's budget."""

    def collect(policy: Path, groups: int, tag: str) -> tuple[list[Any], list[Any]]:
        from dyadic_env.data import load_dataset
        from experiments.pipelines.alignment import collect_preferences, load_pairs, load_rated_groups

        ledger.charge(groups, tag)
        ids = list(load_dataset(config.dataset).split("train").clip_ids)
        rng = np.random.default_rng([cell.seed, 23, len(ledger.history)])
        clip_ids = [ids[i] for i in rng.permutation(len(ids))[: min(groups, len(ids))]]
        out = work / f"collect-{tag}"
        feedback = config.feedback_config(cell.seed, 100 + len(ledger.history))
        collect_preferences(
            policy, config.dataset, out, feedback, clip_ids=clip_ids, policy_name=tag, log=log
        )
        return load_pairs(out / "preferences")[1], load_rated_groups(out)

    return collect


def _write_eval(
    config: BenchmarkConfig, policy: Path, seed: int, tmp: Path, meta: dict[str, Any], log: Log
) -> None:
    results = _evaluate(config, policy, seed, log)
    record = {
        "protocol": PROTOCOL_VERSION, "fingerprint": config.fingerprint(), **meta,
        "row": results["rows"]["policy"], "per_clip": results["per_clip"]["policy"],
        "clip_ids": results["per_clip"]["clip_ids"], "eval": asdict(config.eval), "react": _react(results),
    }  # fmt: skip
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(record, indent=1, default=_json_default))


def _evaluate(config: BenchmarkConfig, policy: Path, seed: int, log: Log) -> dict[str, Any]:
    """A policy on the protocol's evaluation clips with the seed's common random numbers."""
    from experiments.pipelines.evaluation import evaluate_quickstart

    e = config.eval
    return evaluate_quickstart(
        config.dataset, {"policy": policy}, baselines=(), split=e.split, seed=seed, max_clips=e.max_clips,
        temperature=e.temperature, samples=e.samples, mode=e.mode, react_references=False, log=log,
    )  # fmt: skip


def _react(results: dict[str, Any]) -> dict[str, Any] | None:
    """A result's REACT section: the policy's row over the K samples (None without appropriate sets)."""
    if "react_rows" not in results:
        return None
    return {"row": results["react_rows"]["policy"], "samples": results["react_samples"],
            "frdist_groups": results["frdist_groups"], "appropriate": results["appropriate"],
            "seconds": results["seconds"]["react"]}  # fmt: skip


def add_missing_react(config: BenchmarkConfig, policy: Path, result: Path, log: Log) -> None:
    """Give a result written before REACT's metrics existed its REACT section, from its stored policy.

    The policy is evaluated again as the protocol evaluates it (same clips and sampling seed; no training, no
    collection); every figure the result holds is kept, and ``react.same_samples`` says whether the new
    samples reproduce its oracle scores (they do unless the sampling code changed since). A result whose
    policy was not kept stays without REACT; delete it to rerun the cell.
    """
    if not result.exists():
        return
    record = json.loads(result.read_text())
    if "react" in record:
        return
    if not (policy / "config.json").exists():
        log(f"[{result}] has no REACT metrics and no stored policy at {policy}; delete it to rerun the cell")
        return
    log(
        f"[{result.parent.name}/{result.name}] adding REACT's metrics: evaluating {policy} again (no training)"
    )
    results = _evaluate(config, policy, int(record["seed"]), log)
    react = _react(results)
    if react is not None:
        fresh = json.loads(json.dumps(results["per_clip"]["policy"], default=_json_default))
        react.update(backfilled=True, same_samples=fresh == record["per_clip"])
        if not react["same_samples"]:
            log(
                f"[{result}] the policy's samples differ from those it was scored on; REACT reads the new ones"
            )
    partial = result.with_name(result.name + ".partial")
    partial.write_text(json.dumps({**record, "react": react}, indent=1, default=_json_default))
    partial.replace(result)


def run_ceilings(config: BenchmarkConfig, sft: str, log: Log = print) -> Path:
    """The ceilings once; the RL ceiling added (or redone) when its settings are not those measured."""
    from experiments.benchmark.ceilings import add_rl_oracle, measure_ceilings

    path = config.out / "ceilings.json"
    if path.exists() and any(
        f"best_of_{k}" not in _read_json(path)["ceilings"] for k in config.ceilings.best_of
    ):
        log(f"[ceilings] {path} lacks a best-of-N the config asks for: measuring the ceilings again")
        path.unlink()
    path = run_stage(
        "ceilings", config.out / "ceilings.json",
        lambda tmp: tmp.write_text(json.dumps(measure_ceilings(config, Path(sft), log), indent=1)), log=log,
    )  # fmt: skip
    result = json.loads(path.read_text())
    if add_rl_oracle(config, Path(sft), result, log):
        _write_json_whole(path, result)
    return path


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _write_json_whole(path: Path, record: Any) -> None:
    """Write to a file of this process's own, then rename: processes sharing a results folder (the documented way
    to use 2 cores) never read a half-written file."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record, indent=1, default=_json_default))
    partial.replace(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- bookkeeping -----------------------------------------------------------------------------------------------
def _check_config_file(config: BenchmarkConfig) -> None:
    """Refuse to resume a results folder made under another protocol version or config."""
    path = config.out / "benchmark_config.json"
    record = {"protocol": PROTOCOL_VERSION, "fingerprint": config.fingerprint(), "config": asdict(config)}
    if path.exists():
        previous = json.loads(path.read_text())
        if (previous.get("protocol"), previous.get("fingerprint")) != (
            PROTOCOL_VERSION,
            config.fingerprint(),
        ):
            raise UserError(
                f"{config.out} holds results of another protocol or config ({previous.get('protocol')}, "
                f"{previous.get('fingerprint')}); use a new --out or delete it"
            )
    _write_json_whole(path, record)


def _check_policies_from(config: BenchmarkConfig) -> None:
    """Refuse a ``policies_from`` folder whose cells were trained under another protocol than this one's."""
    other = config.policies_from
    if other is None:
        return
    if config.sft is None:
        raise UserError(
            "policies_from needs a named SFT checkpoint (--sft): without one each folder trains its own SFT"
        )
    path = Path(other) / "benchmark_config.json"
    if not path.exists():
        raise UserError(
            f"policies_from: {other} is not a results folder of dyadic benchmark alignment (no {path.name}); "
            "name the --out of an earlier run"
        )
    previous = json.loads(path.read_text())
    if (previous.get("protocol"), training_fingerprint(previous.get("config", {}))) != (
        PROTOCOL_VERSION,
        training_fingerprint(asdict(config)),
    ):
        raise UserError(
            f"policies_from: {other} trained its cells under another protocol or config than this run's (only "
            "eval may differ: same dataset, SFT, feedback and num_threads); drop --policies-from to train here"
        )


def _run_on_ray(config: BenchmarkConfig, jobs: list[tuple[Any, ...]], log: Log) -> None:
    """The same jobs as Ray tasks (one CPU each); a barrier separates collections from cells."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is in the lock
        raise UserError("--ray needs the `cluster` extra: pip install 'dyadic-listener[cluster]'") from e
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=None if config.ray == "local" else config.ray,
            include_dashboard=False,
            log_to_driver=False,
        )
    remote = ray.remote(num_cpus=1)(_ray_job)
    try:
        batch: list[Any] = []
        for job in [*jobs, ("barrier",)]:
            if job[0] == "barrier":
                for done in ray.get(batch):
                    log(f"[ray] {done}")
                batch = []
            else:
                batch.append(remote.remote(asdict(config), job[0].__name__, job[1:]))
    finally:
        if started_here:
            ray.shutdown()


def _ray_job(config_values: dict[str, Any], name: str, args: tuple[Any, ...]) -> str:
    from experiments.allocator import keep_large_allocations

    keep_large_allocations()  # a Ray worker is its own process, not started by the CLI
    config = BenchmarkConfig(**{**config_values, "ray": None})
    result = globals()[name](config, *args, log=lambda _msg: None)
    return str(result)
