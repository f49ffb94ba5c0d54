"""Run the stages the issue-20 refactor moved (not their meaning) with fixed seeds, in the current directory.

Usage: ``python stages.py TREE`` (TREE: the revision's checkout, for its shipped configs).

Run by ``scripts/check_refactor.sh`` once per revision, with ``PYTHONPATH`` at that revision's tree, so the
same calls exercise each revision's own code. Only entry points that both revisions share are used: the CLI
(``dyadic data synth``, ``train sft``, ``train rm``, ``eval``) and the quickstart's building blocks
(``collect_preferences``, ``evaluate_quickstart``). Every path written is relative, so outputs of two
revisions can be compared byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SEED = "0"
# Flat reward-model settings: both revisions read them (the later one maps them onto model: and training:).
RM_CONFIG = "ensemble_size: 2\nepochs: 5\nbatch_size: 16\nval_fraction: 0.25\nseed: 0\nnum_threads: 1\n"


def dyadic(*args: str) -> None:
    """One ``dyadic`` command of this revision (``python -m experiments.cli`` under its PYTHONPATH)."""
    print("$ dyadic " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "experiments.cli", *args], check=True)


def where_code_lives() -> dict[str, str]:
    """The files the packages were imported from, to prove each run used its own revision's code."""
    import agents
    import dyadic_env
    import experiments
    import human_feedback
    import reward_models

    mods = (agents, dyadic_env, experiments, human_feedback, reward_models)
    return {m.__name__: str(Path(m.__file__).resolve().parent.parent) for m in mods}  # type: ignore[arg-type]


def pin_random_ids(seed: int) -> None:
    """Draw the feedback store's opaque ids (``secrets``, ``uuid4``) from a seeded stream, in this process only.

    The store draws them from the OS on purpose (an id must tell a client nothing). But candidates and groups
    are ordered by id before the seeded tie-breaking draw that picks best and worst, so two runs with the same
    seed can pair different candidates; pinning the ids lets two revisions be compared.
    """
    import base64
    import random
    import secrets
    import uuid

    rng = random.Random(seed)
    secrets.token_urlsafe = lambda nbytes=32: (
        base64.urlsafe_b64encode(rng.randbytes(nbytes)).rstrip(b"=").decode()
    )
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)


def collect() -> None:
    """The quickstart's feedback stage: SFT candidates, simulated ratings through the API, best-vs-worst pairs."""
    from experiments.pipelines.alignment import FeedbackConfig, collect_preferences

    config = FeedbackConfig(
        clips=8, samples=4, temperature=0.7, ground_truth=False, annotators=5, ratings_per_group=3, seed=0
    )
    collect_preferences("sft/final", "data", Path("feedback"), config)


def evaluate() -> None:
    """The quickstart's evaluation stage: the baselines and the SFT policy closed-loop on the test split."""
    from experiments.pipelines.evaluation import evaluate_quickstart

    results = evaluate_quickstart(
        "data", {"SFT": "sft/final"}, baselines=("random", "nn", "mean"), seed=0, temperature=0.7, samples=2
    )
    Path("eval_quickstart.json").write_text(json.dumps(results, indent=1, sort_keys=True))


def main(tree: Path) -> None:
    import torch

    torch.set_num_threads(1)
    pin_random_ids(int(SEED))
    Path("code_paths.json").write_text(json.dumps(where_code_lives(), indent=1))
    dyadic("data", "synth", "--preset", "tiny", "--out", "data", "--seed", SEED)
    dyadic("train", "sft", "--config", str(tree / "experiments/configs/sft_tiny.yaml"), "--no-progress",
           "dataset=data", "output_dir=sft", f"seed={SEED}", "num_threads=1")  # fmt: skip
    collect()
    Path("rm.yaml").write_text(RM_CONFIG)
    dyadic("train", "rm", "--config", "rm.yaml", "--preferences", "feedback/preferences", "--dataset", "data",
           "--out", "rm")  # fmt: skip
    evaluate()
    dyadic(
        "eval", "--agent", "random,nn,mean,mirror", "--dataset", "data", "--seed", SEED, "--run-dir", "eval"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
