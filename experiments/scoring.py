"""Scoring K predictions per clip: the rows of the paper's table, REACT's table and the validity table.

:class:`RowTable` holds the reference rows and one row per method over the same clips of one split.
:func:`experiments.evaluation.evaluate_agents` and :func:`~experiments.evaluation.evaluate_predictions` fill
it; pipelines that sample predictions their own way can use it directly.

Reference rows: ``GT`` (the recorded listener; in REACT's table it is all K predictions, so its FRDiv is 0
and its FRCorr is 1 on clips whose set holds it) and, on synthetic data with appropriate sets,
``Appropriate (held-out)``: K fresh appropriate listeners per clip, drawn from a stream no set uses and
checked by the oracle (:func:`dyadic_env.synthetic.appropriate.held_out_listeners`; on the rare clip where
fewer pass, the best-scoring draws fill in), not passed through the action tokenizer. Reference rows stay
out of the validity ranking.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dyadic_env.criteria import CRITERIA
from dyadic_env.data import DyadicDataset
from dyadic_env.metrics import evaluate, evaluate_per_clip, metrics_table, react_per_clip, react_table
from dyadic_env.metrics.react import FRAME_GROUPS, PER_CLIP_KEYS, REACT_GROUPS, summarize
from dyadic_env.metrics.validity import metric_validity, validity_table
from dyadic_env.rewards import is_synthetic, listener_affect_estimator

GT_ROW = "GT"
HELD_OUT_ROW = "Appropriate (held-out)"
ORACLE_KEYS = (*CRITERIA, "weighted")
FRDIST_GROUPS = {"frame": FRAME_GROUPS, "react": REACT_GROUPS}
Samples = list[list[np.ndarray]]  # per clip, K (T, 56) predictions


class RowTable:
    """The reference rows and one row per method over the same clips of one split, K predictions per clip."""

    def __init__(
        self,
        data: DyadicDataset,
        clip_ids: list[str],
        seed: int,
        *,
        samples: int = 1,
        frdist_groups: str = "frame",
    ) -> None:
        clips = [data.clip(cid) for cid in clip_ids]
        self.data, self.clip_ids, self.seed, self.samples = data, clip_ids, seed, samples
        self.frdist_groups = frdist_groups
        self.gts = [np.asarray(c.listener_motion, np.float32) for c in clips]
        self.speakers = [np.asarray(c.speaker_motion, np.float32) for c in clips]
        self.sets = appropriate_sets(data, clip_ids)
        self.scorer = _Scorer(data, clips, seed)
        self.rows: dict[str, dict[str, float]] = {}
        self.react_rows: dict[str, dict[str, float]] = {}
        self.per_clip: dict[str, Any] = {"clip_ids": clip_ids}
        self.values: dict[str, dict[str, np.ndarray]] = {}  # per-clip metrics of the methods, for validity
        self.pairwise: dict[str, dict[str, np.ndarray]] = {}
        self._add_references(clips)

    def _add_references(self, clips: list[Any]) -> None:
        repeated = [[gt] * self.samples for gt in self.gts]
        oracle = self.scorer.oracle_per_clip(repeated)
        self.rows[GT_ROW] = {**self.scorer.reference_row(self.gts), **_means(oracle)}
        self.per_clip[GT_ROW] = oracle
        if self.sets is None:
            return
        self.react_rows[GT_ROW] = {**self._react(repeated)[0], **_means(oracle)}
        held = held_out_samples(self.data, clips, self.samples, self.seed)
        if held is not None:
            self._add(HELD_OUT_ROW, held, reference=True)

    def add(self, name: str, predictions: Samples) -> None:
        """Score a method's K predictions per clip (one list of ``(T, 56)`` arrays per clip, in clip order)."""
        if len(predictions) != len(self.clip_ids):
            raise ValueError(
                f"{name}: {len(predictions)} clips of predictions for {len(self.clip_ids)} clips"
            )
        for i, sampled in enumerate(predictions):
            if len(sampled) != self.samples:
                raise ValueError(
                    f"{name}: clip {self.clip_ids[i]!r} has {len(sampled)} predictions, expected {self.samples}"
                )
        self._add(
            name, [[np.asarray(p, np.float32) for p in sampled] for sampled in predictions], reference=False
        )

    def _add(self, name: str, predictions: Samples, *, reference: bool) -> None:
        oracle = self.scorer.oracle_per_clip(predictions)
        paper = self._paper_per_clip(predictions)
        self.rows[name] = {**{key: float(np.mean(v)) for key, v in paper.items()}, **_means(oracle)}
        self.per_clip[name] = oracle
        values = dict(paper)
        if self.sets is not None:
            row, per_clip = self._react(predictions)
            self.react_rows[name] = {**row, **_means(oracle)}
            values.update({key.split("/")[0]: per_clip[key] for key in PER_CLIP_KEYS})
            if "dvs_matrix" in per_clip:
                self.pairwise[name] = {"FRDvs": per_clip["dvs_matrix"]}
        if not reference:
            self.values[name] = values

    def _paper_per_clip(self, predictions: Samples) -> dict[str, np.ndarray]:
        """The paper's metrics per clip, averaged over the K predictions (repeats scored once)."""
        runs: list[dict[str, np.ndarray]] = []
        for k in range(self.samples):
            if k and all(np.array_equal(p[k], p[0]) for p in predictions):
                runs.append(runs[0])
                continue
            runs.append(self.scorer.per_clip([p[k] for p in predictions], self.gts, self.speakers))
        return {key: np.mean([run[key] for run in runs], axis=0) for key in runs[0]}

    def _react(self, predictions: Samples) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        assert self.sets is not None
        per_clip = react_per_clip(
            predictions,
            self.sets,
            self.speakers,
            fps=self.data.fps,
            dtw_groups=FRDIST_GROUPS[self.frdist_groups],
        )
        return summarize(per_clip, self.samples), per_clip

    def results(
        self, dataset: str | os.PathLike | DyadicDataset, split: str, *, validity: bool = False
    ) -> dict[str, Any]:
        out = {
            "dataset": str(dataset if not isinstance(dataset, DyadicDataset) else dataset.path),
            "dataset_path": str(self.data.path), "split": split, "seed": self.seed, "samples": self.samples,
            "num_clips": len(self.clip_ids), "num_frames": int(sum(len(g) for g in self.gts)),
            "synthetic": self.scorer.oracle is not None, "affect": self.scorer.valence is not None,
            "rows": self.rows, "table": metrics_table(self.rows), "per_clip": self.per_clip,
            "metrics_per_clip": {name: {key: _json_list(v) for key, v in values.items()}
                                 for name, values in self.values.items()},
        }  # fmt: skip
        if self.sets is not None:
            sizes = [len(s) for s in self.sets]
            out.update(
                react_rows=self.react_rows, react_table=react_table(self.react_rows),
                frdist_groups=self.frdist_groups, appropriate={
                    "method": self.data.appropriate.method if self.data.appropriate else "",
                    "clips_with_set": int(sum(n > 0 for n in sizes)), "mean_size": float(np.mean(sizes)),
                    "thresholds": (self.data.appropriate.info.get("params") or {}).get("thresholds") if self.data.appropriate else None,
                },
            )  # fmt: skip
        if validity:
            out.update(self.validity())
        return out

    def validity(self) -> dict[str, Any]:
        """Every metric's rank correlation with the oracle over the methods (not the reference rows)."""
        if self.scorer.oracle is None:
            raise ValueError(
                f"{self.data.path}: metric validity ranks metrics against the synthetic benchmark's oracle, and this "
                "dataset is not synthetic; evaluate on synthetic:small (or another `dyadic data synth` dataset)"
            )
        oracle = {name: np.array([s["weighted"] for s in self.per_clip[name]]) for name in self.values}
        table = metric_validity(self.values, oracle, pairwise=self.pairwise or None, seed=self.seed)
        return {"validity": table, "validity_table": validity_table(table)}


def held_out_samples(data: DyadicDataset, clips: list[Any], samples: int, seed: int) -> Samples | None:
    """K fresh appropriate listeners per clip in no set (the ``Appropriate (held-out)`` row), or None where
    the data cannot draw them (not synthetic, or clips without their speaker's emotions)."""
    if not is_synthetic(data) or not all("speaker_emotions" in c.meta for c in clips):
        return None
    from dyadic_env.synthetic.appropriate import dataset_config, held_out_listeners

    config = dataset_config(data.manifest)
    return [held_out_listeners(c, samples, seed=seed, config=config) for c in clips]


def appropriate_sets(data: DyadicDataset, clip_ids: list[str]) -> list[list[np.ndarray]] | None:
    """Per clip, its appropriate reactions (plain arrays), or None when the dataset has no sets."""
    if not data.has_appropriate:
        return None
    # Plain copies: memory-mapped rows read slowly in the many DTW passes.
    return [
        [np.asarray(r, np.float32) for r in data.appropriate_listeners(data.row_of(cid))] for cid in clip_ids
    ]


def _json_list(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64)]


class _Scorer:
    """Metrics shared by every row of one evaluation: affect estimator, oracle, seed."""

    def __init__(self, data: DyadicDataset, clips: list[Any], seed: int) -> None:
        self.clips, self.seed = clips, seed
        try:
            estimator = listener_affect_estimator(data)
            self.valence: Any = lambda frames: estimator(frames)[:, 0]
        except (ValueError, ImportError):
            self.valence = None  # no affect arrays and no estimator for this face basis: no L2 Affect
        self.oracle: Any = None
        if is_synthetic(data):
            from dyadic_env.synthetic import Oracle

            self.oracle = Oracle(fps=data.fps)

    def per_clip(
        self, predicted: list[np.ndarray], gts: list[np.ndarray], speakers: list[np.ndarray]
    ) -> dict[str, np.ndarray]:
        affect = {}
        if self.valence is not None:
            # One estimator for both sides, as the paper reads both with EMOCA: its bias cancels.
            affect = {
                "predicted_affect": [self.valence(p) for p in predicted],
                "ground_truth_affect": [self.valence(g) for g in gts],
            }
        return evaluate_per_clip(predicted, gts, speakers, seed=self.seed, **affect)

    def reference_row(self, gts: list[np.ndarray]) -> dict[str, float]:
        full = evaluate(gts, gts, gts, seed=self.seed)
        return {"Variation": full["Variation"], "Diversity": full["Diversity"]}

    def oracle_per_clip(self, samples: Sequence[Sequence[np.ndarray]]) -> list[dict[str, float]] | None:
        """Per clip, the oracle's scores averaged over its predictions (a repeated prediction scored once)."""
        if self.oracle is None:
            return None
        out = []
        for clip, sampled in zip(self.clips, samples):
            if all(np.array_equal(s, sampled[0]) for s in sampled[1:]):
                sampled = sampled[:1]
            scores = [self.oracle.score(clip.speaker_motion, s, clip.speaker_words) for s in sampled]
            out.append({key: float(np.mean([s[key] for s in scores])) for key in scores[0]})
        return out


def _means(scores: list[dict[str, float]] | None) -> dict[str, float]:
    if not scores:
        return {}
    return {k: float(np.mean([s[k] for s in scores])) for k in ORACLE_KEYS if k in scores[0]}
