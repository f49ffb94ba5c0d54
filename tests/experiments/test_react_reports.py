"""REACT's metrics in the quickstart's evaluation: over all K samples of every row, changing no other figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.pipelines.evaluation import evaluate_quickstart, vla_trajectories

BASELINES = ("random", "nn", "mean")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny preset and an untrained tiny VLA checkpoint."""
    from tests.experiments.test_benchmark_alignment import _tiny

    return _tiny(tmp_path_factory.mktemp("react_reports"))


def _before_react(data_dir: Path, sft: Path, samples: int, max_clips: int) -> tuple[dict, dict]:
    """Rows and per-clip oracle scores as ``evaluate_quickstart`` computed them before REACT was added
    (commit 33c76bd): baselines by ``evaluate_agents`` with one prediction a clip, the checkpoint's paper
    metrics on its first sample and its oracle criteria averaged over all."""
    from agents.baselines import make_agent
    from dyadic_env.data import load_dataset
    from dyadic_env.synthetic import Oracle
    from experiments.evaluation import ORACLE_KEYS, evaluate_agents, evaluate_predictions

    data = load_dataset(data_dir)
    clip_ids = list(data.split("test").clip_ids)[:max_clips]
    clips = [data.clip(c) for c in clip_ids]
    agents = {name: make_agent(name, data, seed=0) for name in BASELINES}
    baselines = evaluate_agents(agents, data, "test", seed=0, max_clips=max_clips)
    sampled = vla_trajectories(sft, clips, seed=0, samples=samples)
    scored = evaluate_predictions({"SFT": [s[0] for s in sampled]}, data, "test", 0, clip_ids=clip_ids)
    oracle = Oracle(fps=data.fps)
    scores = [
        [oracle.score(c.speaker_motion, s, c.speaker_words) for s in per] for c, per in zip(clips, sampled)
    ]
    per_clip = [{k: float(np.mean([s[k] for s in clip])) for k in ORACLE_KEYS} for clip in scores]
    scored["rows"]["SFT"].update({k: float(np.mean([s[k] for s in per_clip])) for k in ORACLE_KEYS})
    return {**baselines["rows"], **scored["rows"]}, {**baselines["per_clip"], "SFT": per_clip}


def test_react_over_all_samples_changes_no_existing_figure(tiny) -> None:
    from dyadic_env.data import load_dataset
    from dyadic_env.metrics import react_metrics
    from experiments.scoring import GT_ROW, HELD_OUT_ROW, appropriate_sets

    data_dir, sft = tiny
    new = evaluate_quickstart(
        data_dir, {"SFT": sft}, baselines=BASELINES, samples=3, max_clips=3, log=lambda _m: None
    )
    rows, per_clip = _before_react(data_dir, sft, samples=3, max_clips=3)
    assert json.dumps(new["rows"], sort_keys=True) == json.dumps(rows, sort_keys=True)
    assert json.dumps({k: new["per_clip"][k] for k in per_clip}, sort_keys=True) == json.dumps(
        per_clip, sort_keys=True
    )
    react = new["react_rows"]
    assert list(react) == [GT_ROW, HELD_OUT_ROW, *BASELINES, "SFT"] and new["react_samples"] == 3
    assert "| SFT |" in new["react_table"] and "FRCorr" in new["react_table"]
    # The SFT row is REACT over all three samples, not over the first.
    data = load_dataset(data_dir)
    clip_ids = list(data.split("test").clip_ids)[:3]
    clips = [data.clip(c) for c in clip_ids]
    sampled = vla_trajectories(sft, clips, seed=0, samples=3)
    expected = react_metrics(
        sampled, appropriate_sets(data, clip_ids), [c.speaker_motion for c in clips], fps=data.fps
    )
    assert react["SFT"] == pytest.approx(expected, rel=1e-12)
    assert react["SFT"]["FRCorr"] == pytest.approx(3 * react["SFT"]["FRCorr/pred"])
    assert react["SFT"]["FRDiv"] > 0 and react["random"]["FRDiv"] > 0
    assert react["nn"]["FRDiv"] == 0 and react["mean"]["FRDiv"] == 0  # deterministic: one rollout repeated
    assert react[GT_ROW]["FRDiv"] == 0


def test_react_section_is_empty_without_appropriate_sets(tiny) -> None:
    from dyadic_env.data import load_dataset
    from experiments.pipelines.evaluation import react_section

    class NoSets:
        """The tiny dataset as one without appropriate-reaction sets."""

        def __init__(self, data):
            self.data = data

        has_appropriate = False

        def __getattr__(self, name):
            return getattr(self.data, name)

    data = load_dataset(tiny[0])
    clip_ids = list(data.split("test").clip_ids)[:2]
    frames = [[data.clip(c).listener_motion] for c in clip_ids]
    assert react_section(NoSets(data), clip_ids, {"x": frames}) == {}
    section = react_section(data, clip_ids, {"x": frames}, references=False)
    assert list(section["react_rows"]) == ["x"] and section["react_samples"] == 1


def test_quickstart_report_says_when_react_is_missing() -> None:
    from experiments.pipelines.report import _react_lines

    assert _react_lines({"rows": {}}) == []  # no appropriate sets: nothing to say
    older = _react_lines({"rows": {}, "react_rows": {"SFT": {}}})  # an eval.json from before K-sample REACT
    assert "predates" in older[0] and "delete it" in older[0]
