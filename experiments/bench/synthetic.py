"""`dyadic bench synthetic`: generation time of each preset and the oracle's table on the small test split.

Generation time covers generating and writing the dataset (with its tokenizer) into a fresh directory.
The oracle table scores, on every clip of the ``small`` test split, the dataset's own listener, each
generated listener kind answering the same speaker (appropriate, generic positive, inattentive frozen and
drifting) and the trivial policies (frozen neutral face, copy of the speaker, the speaker 0.5 s late,
random tokens, the mean training listener), all trivial ones passed through the dataset's tokenizer.
``metrics.*`` give L2, FD and P-FD against the test split's own listeners for fresh listeners of the preset's
mix (``resampled``: what a perfect imitation learner scores) and of the appropriate kind only, 4 draws each.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from dyadic_env.criteria import CRITERIA
from experiments.bench import benchmark


@benchmark(
    "synthetic",
    help="synthetic preset generation time, the oracle's scores per listener kind, the metrics of fresh listeners",
)
def bench_synthetic(quick: bool = False) -> dict[str, Any]:
    import numpy as np

    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import PRESETS, Oracle, write_preset
    from dyadic_env.synthetic.evaluation import oracle_table, reference_metrics

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dyadic-bench-synthetic-") as tmp:
        for name in ("tiny", "small") if quick else ("tiny", "small", "full"):
            start = time.perf_counter()
            write_preset(name, Path(tmp) / name)
            seconds = time.perf_counter() - start
            figures[f"generate_{name}_seconds"] = round(seconds, 3)
            figures[f"generate_{name}_clips"] = PRESETS[name].num_clips
            figures[f"generate_{name}_clips_per_second"] = round(PRESETS[name].num_clips / seconds, 1)
        small = load_dataset(Path(tmp) / "small")
        train = np.concatenate([np.asarray(c.listener_motion) for c in small.split("train")])
        test = list(small.split("test"))
        tokenizer = small.tokenizer()
        assert tokenizer is not None, "write_dataset saves a tokenizer with every dataset"
        start = time.perf_counter()
        table = oracle_table(test, tokenizer, train.mean(axis=0), oracle=Oracle(), seed=0)
        figures["oracle_ms_per_trajectory"] = round(
            1000 * (time.perf_counter() - start) / sum(int(row["clips"]) for row in table.values()), 2
        )
        references = reference_metrics(test, PRESETS["small"], draws=2 if quick else 4)
    figures["oracle_test_clips"] = len(test)
    for listener, row in references.items():
        for key, value in row.items():
            figures[f"metrics.{listener}.{key}"] = round(value, 4)
    for listener, row in table.items():
        for key in ("weighted", *CRITERIA):
            figures[f"oracle.{listener}.{key}"] = round(float(row[key]), 3)
    best_poor = max(
        table[k]["weighted"] for k in table if k != "appropriate" and not k.startswith("dataset_")
    )
    figures["oracle.margin_appropriate_over_best_other"] = round(
        table["appropriate"]["weighted"] - best_poor, 3
    )
    return figures
