"""A plug-in alignment algorithm for `dyadic benchmark alignment`, written outside the package.

Best-of-N distillation on the ratings: continue SFT on every candidate rated in the top quarter of its group
(not only the single best, as SFT-Preferred does). Run it as a row of the benchmark with

    PYTHONPATH=docs/examples dyadic benchmark alignment --algo rated_distillation:TopQuarterSFT
"""

from pathlib import Path

import numpy as np

from agents.alignment.ablations import ContinueSFTConfig, continue_sft


class TopQuarterSFT:
    def __init__(self, quantile: float = 0.75, learning_rate: float = 3e-5, num_epochs: float = 2.0) -> None:
        self.quantile, self.learning_rate, self.num_epochs = quantile, learning_rate, num_epochs

    def __call__(self, task) -> Path:  # task: experiments.pipelines.aligners.AlignmentTask
        kept = []
        for group in task.groups:
            scores = np.array([c.score for c in group.candidates])
            cut = np.quantile(scores, self.quantile)
            kept += [(group.clip_id, c.tokens) for c in group.candidates if c.score >= cut]
        config = ContinueSFTConfig(
            learning_rate=self.learning_rate, num_epochs=self.num_epochs, seed=task.seed
        )
        task.log(f"  top-quarter SFT on {len(kept)} candidates of {len(task.groups)} groups")
        return continue_sft(task.sft, kept, task.dataset.clip, config, task.out / "policy")
