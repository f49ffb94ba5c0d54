"""The alignment benchmark's protocol: which cells exist, what each spends and where its results live.

A *cell* is (algorithm, label budget, seed). Every cell starts from one named SFT checkpoint, spends at most its
budget of rated candidate groups (each group: ``feedback.samples`` SFT samples of one train clip, rated by
simulated annotators through the annotation API; one best-vs-worst pair under the paper's rule), and is
evaluated on the test split with the seed's common random numbers. Preference data is collected once per seed
(the largest budget) and a cell at budget b uses its first b groups, so the curves over budgets are nested.

The protocol is versioned: results record :data:`PROTOCOL_VERSION` and the config they ran under, and a run
refuses to mix cells from another version or config into one table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.errors import UserError

PROTOCOL_VERSION = "alignment-v1"
DEFAULT_ALGORITHMS = [
    "dpo",
    "random_prefer",
    "sft_preferred",
    "iterated_dpo",
    "ppo_rm",
]  # built-ins (no specs needed)


@dataclass
class EvalSettings:
    """How every policy is evaluated (the same for all cells)."""

    split: str = "test"
    samples: int = 8
    temperature: float = 0.7
    mode: str = "sample"
    max_clips: int | None = None


@dataclass
class CeilingSettings:
    """What the ceilings measure (:mod:`experiments.benchmark.ceilings`)."""

    best_of: list[int] = field(default_factory=lambda: [8, 32])
    rl_oracle_steps: int = 0
    """Env steps of SB3 PPO on the env's ``oracle`` reward (0: skip; it is the slowest ceiling)."""
    rl_oracle: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchmarkConfig:
    """Arguments of ``dyadic benchmark alignment`` (``experiments/configs/benchmark_alignment_small.yaml``)."""

    out: Path = Path("runs/benchmark/alignment")
    dataset: str = "synthetic:small"
    sft: str | None = None
    """The named SFT checkpoint every cell starts from; None trains ``sft_config`` into ``out/sft``."""
    sft_config: str = "sft_small.yaml"
    algorithms: list[str] = field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    """Row names: keys of ``algorithm_specs`` or built-ins (``dpo``, ...) or ``package.module:Name``."""
    algorithm_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per row: ``{algorithm: BUILTIN or module:Name, settings: {...}}``."""
    budgets: list[int] = field(default_factory=lambda: [60, 120, 480])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    feedback: dict[str, Any] = field(default_factory=dict)
    eval: EvalSettings = field(default_factory=EvalSettings)
    ceilings: CeilingSettings = field(default_factory=CeilingSettings)
    ray: str | None = None
    """None: cells run in this process; ``auto`` or an address: cells run as Ray tasks."""
    num_threads: int = 0
    policies_from: Path | None = None
    """A results folder whose protocol differs from this one in ``eval`` only (e.g. the val folder in which the
    settings were chosen): a cell it trained with the same settings is evaluated here, not trained again
    (training never sees the evaluation split, so it would make the same policy)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.policies_from is not None:
            self.policies_from = Path(self.policies_from)
        if isinstance(self.eval, dict):
            self.eval = EvalSettings(**self.eval)
        if isinstance(self.ceilings, dict):
            self.ceilings = CeilingSettings(**self.ceilings)
        if not self.algorithms or len(set(self.algorithms)) != len(self.algorithms):
            raise UserError(f"algorithms: expected distinct names, found {self.algorithms}")
        if not self.budgets or min(self.budgets) < 1:
            raise UserError(f"budgets: expected rated-group counts >= 1, found {self.budgets}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds: expected distinct seeds, found {self.seeds}")
        if self.eval.split == "train":
            raise UserError("eval.split: the preference data comes from train; evaluate on val or test")
        self.budgets = sorted(self.budgets)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BenchmarkConfig:
        from dyadic_env.config import config_from_dict

        return config_from_dict(cls, values, "benchmark config")

    def spec(self, name: str) -> tuple[str, dict[str, Any]]:
        """The algorithm and settings behind row ``name``."""
        entry = self.algorithm_specs.get(name, {})
        unknown = sorted(set(entry) - {"algorithm", "settings", "selection"})
        if unknown:
            raise UserError(
                f"algorithm_specs.{name}: unknown keys {unknown}; use algorithm, settings and selection"
            )
        return str(entry.get("algorithm", name)), dict(entry.get("settings", {}))

    def selection(self, name: str) -> Any:
        """Row ``name``'s query selection (:class:`~experiments.benchmark.selection.Selection`; random by default)."""
        from experiments.benchmark.selection import Selection

        return Selection.from_dict(self.algorithm_specs.get(name, {}).get("selection"))

    def collection_groups(self) -> int:
        """Rated groups each seed's collection holds: the largest budget, or an active row's larger pool."""
        return max(self.selection(a).pool_size(b) for a in self.algorithms for b in self.budgets)

    def feedback_config(self, seed: int, part: int = 0) -> Any:
        from experiments.pipelines.alignment import FeedbackConfig

        return FeedbackConfig(**{**self.feedback, "seed": seed * 1000 + part, "clips": 0})

    def fingerprint(self) -> str:
        """A hash of everything shared by the cells' results (not out, ray, the lists of cells, the algorithms'
        settings or the ceilings: each cell and the RL ceiling record their own settings and are redone when
        they change, so a new row or ceiling joins a folder)."""
        return _digest(asdict(self), _PER_CELL)


def training_fingerprint(config_values: dict[str, Any]) -> str:
    """:meth:`BenchmarkConfig.fingerprint` without the evaluation: equal for folders whose cells train alike."""
    return _digest(config_values, (*_PER_CELL, "eval"))


_PER_CELL = ("out", "ray", "algorithms", "algorithm_specs", "budgets", "seeds", "ceilings", "policies_from")


def _digest(values: dict[str, Any], skip: tuple[str, ...]) -> str:
    relevant = {k: v for k, v in values.items() if k not in skip}
    text = json.dumps({"protocol": PROTOCOL_VERSION, **relevant}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    algorithm: str
    budget: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.algorithm}/b{self.budget}-s{self.seed}"

    def directory(self, out: Path) -> Path:
        return out / "cells" / self.algorithm / f"b{self.budget}-s{self.seed}"


def cells(config: BenchmarkConfig) -> list[Cell]:
    return [Cell(a, b, s) for s in config.seeds for b in config.budgets for a in config.algorithms]


def sft_eval_path(out: Path, seed: int) -> Path:
    return out / "cells" / "SFT" / f"s{seed}.json"


def collection_dir(out: Path, seed: int) -> Path:
    return out / "feedback" / f"s{seed}"
