"""Preference pairs from ratings, and the preference dataset that DPO and the reward models read.

Scoring (paper eq. 10): each candidate's score is ``r = sum_k alpha_k * mean_k`` where ``mean_k`` is the mean
of its ratings on criterion k over annotators (regular pages only) and the weights alpha lie in [0, 1] and
sum to 1. Candidates are ranked within their group (one speaker clip).

Pairing:
- ``best-worst`` (the paper): one pair per group, the highest-scoring candidate preferred over the lowest.
  Several candidates sharing the top (or bottom) score are a tie broken by a seeded draw (counted as
  ``tie_breaks``); a group whose best and worst differ by less than ``min_margin`` (or not at all) gives no
  pair (``groups_tied``).
- ``all-pairs``: every pair of candidates whose scores differ by at least ``min_margin`` (and by more than
  nothing); equal scores are counted as ``pairs_tied``, smaller gaps as ``pairs_below_margin``.
A group with a candidate rated fewer than ``min_ratings`` times gives no pair (``groups_too_few_ratings``).

On-disk format (a directory)::

    manifest.json      {"format": "dyadic-preferences", "version": 1, "weights": {...}, "dataset": SPEC,
                        "split": ..., "source": {"campaign": ..., "mode": ..., ...}, "counts": {...},
                        "num_pairs": N, "frame_dim": 56, "token_dtype": "uint8", "tokenizer": "tokenizer.json"}
    pairs.jsonl        one pair per line: pair_id, clip_id, chosen, rejected (candidate ids), chosen_score,
                        rejected_score, margin, group_id, num_ratings (fewest ratings behind either score),
                        split, chosen_source, rejected_source, chosen_criteria, rejected_criteria (mean
                        rating per criterion: the targets of a reward model's criteria head)
    trajectories.npz   candidate id -> (T, 56) uint8 action tokens
    tokenizer.json     the campaign's action tokenizer (to decode tokens to frames), when known

Example:
    >>> data = PreferenceDataset.load("runs/prefs")          # doctest: +SKIP
    >>> pair = data.pairs[0]
    >>> pair.chosen_tokens.shape, pair.margin > 0             # doctest: +SKIP
    ((250, 56), True)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from human_feedback.criteria import CRITERION_KEYS, validate_weights
from human_feedback.ratings import RatingRow, scoring_rows

FORMAT_NAME = "dyadic-preferences"
FORMAT_VERSION = 1
MODES = ("best-worst", "all-pairs")
# Scores closer than this are equal (means of small integers are exact only up to float rounding).
SCORE_EPS = 1e-9


@dataclass(frozen=True)
class PreferencePair:
    """A preferred and a dispreferred listener trajectory for the same speaker clip."""

    pair_id: str
    clip_id: str
    chosen_tokens: np.ndarray
    rejected_tokens: np.ndarray
    chosen_score: float
    rejected_score: float
    margin: float
    chosen_id: str = ""
    rejected_id: str = ""
    group_id: str = ""
    num_ratings: int = 0
    split: str | None = None
    chosen_source: str = ""
    rejected_source: str = ""
    chosen_criteria: dict[str, float] = field(default_factory=dict)
    rejected_criteria: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "pair_id": self.pair_id,
            "clip_id": self.clip_id,
            "chosen": self.chosen_id,
            "rejected": self.rejected_id,
            "chosen_score": self.chosen_score,
            "rejected_score": self.rejected_score,
            "margin": self.margin,
            "group_id": self.group_id,
            "num_ratings": self.num_ratings,
            "split": self.split,
            "chosen_source": self.chosen_source,
            "rejected_source": self.rejected_source,
            "chosen_criteria": self.chosen_criteria,
            "rejected_criteria": self.rejected_criteria,
        }


@dataclass(frozen=True)
class CandidateScore:
    candidate_id: str
    group_id: str
    clip_id: str
    split: str | None
    source: str
    policy_name: str
    means: dict[str, float]
    num_ratings: int
    score: float
    sample_index: int = 0
    group_position: int = 0


def score_candidates(rows: Sequence[RatingRow], weights: Mapping[str, float]) -> dict[str, CandidateScore]:
    """Paper eq. 10 for every rated candidate: weighted sum of its per-criterion mean ratings."""
    weights = validate_weights(dict(weights))
    by_candidate: dict[str, list[RatingRow]] = defaultdict(list)
    for r in scoring_rows(rows):
        by_candidate[r.candidate_id].append(r)
    scores = {}
    for cid, rs in by_candidate.items():
        means = {k: statistics.fmean(getattr(r, k) for r in rs) for k in CRITERION_KEYS}
        first = rs[0]
        scores[cid] = CandidateScore(
            candidate_id=cid,
            group_id=first.group_id,
            clip_id=first.clip_id,
            split=first.split,
            source=first.source,
            policy_name=first.policy_name,
            means=means,
            num_ratings=len(rs),
            score=float(sum(weights[k] * means[k] for k in CRITERION_KEYS)),
            sample_index=first.sample_index,
            group_position=first.group_position,
        )
    return scores


@dataclass
class PairingReport:
    """What happened to every group, so nothing is dropped silently."""

    groups: int = 0
    groups_paired: int = 0
    groups_too_few_ratings: int = 0
    groups_single_candidate: int = 0
    groups_tied: int = 0
    tie_breaks: int = 0
    pairs_tied: int = 0
    pairs_below_margin: int = 0
    pairs: int = 0
    ground_truth_chosen: int = 0
    ground_truth_rejected: int = 0
    skipped_groups: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


def build_pairs(
    rows: Sequence[RatingRow],
    tokens: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    mode: str = "best-worst",
    min_margin: float = 0.0,
    min_ratings: int = 1,
    group_candidates: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
) -> tuple[list[PreferencePair], PairingReport]:
    """Rank candidates within groups and form preference pairs (see the module docstring).

    Args:
        rows: ratings (repeated pages, broken candidates are ignored).
        tokens: candidate id -> (T, 56) tokens.
        weights: criterion weights of eq. 10.
        mode: ``best-worst`` or ``all-pairs``.
        min_margin: smallest score difference that makes a pair (>= 0).
        min_ratings: every candidate of a group needs at least this many ratings.
        group_candidates: group id -> all its (non-broken) candidate ids, so a candidate nobody rated makes
            its group incomplete instead of vanishing; by default the rated candidates.
        seed: seeds the tie-breaking draw.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, found {mode!r}")
    if min_margin < 0:
        raise ValueError(f"min_margin must be >= 0, found {min_margin}")
    if min_ratings < 1:
        raise ValueError(f"min_ratings must be >= 1, found {min_ratings}")
    scores = score_candidates(rows, weights)
    members: dict[str, list[str]] = defaultdict(list)
    for cid, s in scores.items():
        members[s.group_id].append(cid)
    if group_candidates is not None:
        members = defaultdict(list, {g: list(c) for g, c in group_candidates.items()})
    rng = np.random.default_rng(seed)
    report, pairs = PairingReport(), list[PreferencePair]()
    for group_id in sorted(members, key=lambda g: _group_order(g, members[g], scores)):
        report.groups += 1
        cands = sorted(
            members[group_id], key=lambda c: _candidate_order(scores[c]) if c in scores else (-1, c)
        )
        rated = [scores[c] for c in cands if c in scores]
        if len(cands) < 2:
            report.groups_single_candidate += 1
            report.skipped_groups["single_candidate"].append(group_id)
            continue
        if len(rated) < len(cands) or min(s.num_ratings for s in rated) < min_ratings:
            report.groups_too_few_ratings += 1
            report.skipped_groups["too_few_ratings"].append(group_id)
            continue
        found = (
            _best_worst(rated, min_margin, rng, report)
            if mode == "best-worst"
            else _all_pairs(rated, min_margin, report)
        )
        if not found:
            if mode == "best-worst":
                report.skipped_groups["tied"].append(group_id)
            continue
        report.groups_paired += 1
        for chosen, rejected in found:
            pairs.append(_pair(f"{group_id}-{len(pairs):06d}", chosen, rejected, tokens))
            report.ground_truth_chosen += chosen.source == "ground_truth"
            report.ground_truth_rejected += rejected.source == "ground_truth"
    report.pairs = len(pairs)
    return pairs, report


# Ids are drawn at random by the store, so visiting groups and candidates in id order would feed the seeded
# tie-break draw in a different order on each collection: order by what the collection fixed instead.
def _group_order(
    group_id: str, cands: Sequence[str], scores: Mapping[str, CandidateScore]
) -> tuple[int, str]:
    positions = [scores[c].group_position for c in cands if c in scores]
    return (min(positions) if positions else -1, group_id)


def _candidate_order(s: CandidateScore) -> tuple[int, str, str, str]:
    return (s.sample_index, s.source, s.policy_name, s.candidate_id)


def _best_worst(
    rated: list[CandidateScore], min_margin: float, rng: np.random.Generator, report: PairingReport
) -> list[tuple[CandidateScore, CandidateScore]]:
    top, bottom = max(s.score for s in rated), min(s.score for s in rated)
    if top - bottom <= SCORE_EPS or top - bottom < min_margin - SCORE_EPS:
        report.groups_tied += 1
        return []
    best = [s for s in rated if s.score >= top - SCORE_EPS]
    worst = [s for s in rated if s.score <= bottom + SCORE_EPS]
    report.tie_breaks += (len(best) > 1) + (len(worst) > 1)
    return [(best[int(rng.integers(len(best)))], worst[int(rng.integers(len(worst)))])]


def _all_pairs(
    rated: list[CandidateScore], min_margin: float, report: PairingReport
) -> list[tuple[CandidateScore, CandidateScore]]:
    found = []
    ordered = sorted(rated, key=lambda s: (-s.score, _candidate_order(s)))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            gap = a.score - b.score
            if gap <= SCORE_EPS:
                report.pairs_tied += 1
            elif gap < min_margin - SCORE_EPS:
                report.pairs_below_margin += 1
            else:
                found.append((a, b))
    return found


def _pair(
    pair_id: str, chosen: CandidateScore, rejected: CandidateScore, tokens: Mapping[str, np.ndarray]
) -> PreferencePair:
    return PreferencePair(
        pair_id=pair_id,
        clip_id=chosen.clip_id,
        chosen_tokens=np.asarray(tokens[chosen.candidate_id]),
        rejected_tokens=np.asarray(tokens[rejected.candidate_id]),
        chosen_score=round(chosen.score, 6),
        rejected_score=round(rejected.score, 6),
        margin=round(chosen.score - rejected.score, 6),
        chosen_id=chosen.candidate_id,
        rejected_id=rejected.candidate_id,
        group_id=chosen.group_id,
        num_ratings=min(chosen.num_ratings, rejected.num_ratings),
        split=chosen.split,
        chosen_source=chosen.source,
        rejected_source=rejected.source,
        chosen_criteria={k: round(v, 6) for k, v in chosen.means.items()},
        rejected_criteria={k: round(v, 6) for k, v in rejected.means.items()},
    )


def _criteria(row: dict[str, Any], key: str) -> dict[str, float]:
    """A pair's per-criterion means (absent in files written before they were stored: empty)."""
    return {str(k): float(v) for k, v in (row.get(key) or {}).items()}


class PreferenceDataset:
    """A preference dataset directory (format in the module docstring). Open with :meth:`load`."""

    def __init__(self, path: Path, manifest: dict[str, Any], pairs: list[PreferencePair]) -> None:
        self.path = path
        self.manifest = manifest
        self.pairs = pairs

    @property
    def dataset_spec(self) -> str | None:
        return self.manifest.get("dataset")

    @property
    def split(self) -> str | None:
        return self.manifest.get("split")

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.manifest.get("weights", {}))

    def tokenizer(self) -> Any:
        """The action tokenizer saved with the pairs, or None."""
        name = self.manifest.get("tokenizer")
        if not name:
            return None
        from dyadic_env.tokenizer import ActionTokenizer

        return ActionTokenizer.load(self.path / name)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[PreferencePair]:
        return iter(self.pairs)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreferenceDataset:
        """Read and check a preference dataset directory.

        Raises:
            FileNotFoundError: the directory or one of its files is missing.
            ValueError: a file is not of this format or disagrees with another.
        """
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{manifest_path}: no preference manifest; create one with `dyadic feedback export`"
            )
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT_NAME:
            raise ValueError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
        if manifest.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{manifest_path}: version {manifest.get('version')}, this toolkit reads {FORMAT_VERSION}; re-export"
            )
        with np.load(path / "trajectories.npz", allow_pickle=False) as npz:
            trajectories = {k: npz[k] for k in npz.files}
        pairs = []
        with (path / "pairs.jsonl").open() as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                for key in ("chosen", "rejected"):
                    if row.get(key) not in trajectories:
                        raise ValueError(
                            f"{path / 'pairs.jsonl'} line {line_no}: {key} candidate {row.get(key)!r} is not in "
                            "trajectories.npz"
                        )
                pairs.append(
                    PreferencePair(
                        pair_id=row["pair_id"],
                        clip_id=row["clip_id"],
                        chosen_tokens=trajectories[row["chosen"]],
                        rejected_tokens=trajectories[row["rejected"]],
                        chosen_score=float(row["chosen_score"]),
                        rejected_score=float(row["rejected_score"]),
                        margin=float(row["margin"]),
                        chosen_id=row["chosen"],
                        rejected_id=row["rejected"],
                        group_id=row.get("group_id", ""),
                        num_ratings=int(row.get("num_ratings", 0)),
                        split=row.get("split"),
                        chosen_source=row.get("chosen_source", ""),
                        rejected_source=row.get("rejected_source", ""),
                        chosen_criteria=_criteria(row, "chosen_criteria"),
                        rejected_criteria=_criteria(row, "rejected_criteria"),
                    )
                )
        if len(pairs) != manifest.get("num_pairs", len(pairs)):
            raise ValueError(
                f"{path}: manifest says {manifest['num_pairs']} pairs, pairs.jsonl has {len(pairs)}"
            )
        return cls(path, manifest, pairs)

    @staticmethod
    def write(
        path: str | os.PathLike,
        pairs: Sequence[PreferencePair],
        *,
        weights: Mapping[str, float],
        dataset_spec: str | None = None,
        split: str | None = None,
        source: Mapping[str, Any] | None = None,
        counts: Mapping[str, Any] | None = None,
        tokenizer: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> PreferenceDataset:
        """Write pairs as a preference dataset directory, atomically (a half-written export never appears).

        Args:
            path: the directory to create.
            pairs: the pairs; their tokens must be (T, 56) integers in [0, 255].
            weights: eq. 10 weights used for the scores.
            dataset_spec: the dataset the clips come from (``load_dataset`` argument).
            split: the dataset split of the clips.
            source: provenance (campaign, database, mode, margins).
            counts: the pairing report's counts.
            tokenizer: the action tokenizer as a dict (``ActionTokenizer.to_dict()``), saved beside.
            overwrite: replace an existing directory.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite or choose another --out")
        trajectories: dict[str, np.ndarray] = {}
        for p in pairs:
            for cid, t in ((p.chosen_id, p.chosen_tokens), (p.rejected_id, p.rejected_tokens)):
                trajectories[cid] = _as_uint8(t, cid)
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        np.savez(partial / "trajectories.npz", **trajectories)  # type: ignore[arg-type]
        with (partial / "pairs.jsonl").open("w") as f:
            for p in pairs:
                f.write(json.dumps(p.to_json()) + "\n")
        if tokenizer is not None:
            (partial / "tokenizer.json").write_text(json.dumps(dict(tokenizer), indent=1))
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "weights": validate_weights(dict(weights)),
            "dataset": dataset_spec,
            "split": split,
            "source": dict(source or {}),
            "counts": dict(counts or {}),
            "num_pairs": len(pairs),
            "num_trajectories": len(trajectories),
            "frame_dim": _frame_dim(trajectories),
            "token_dtype": "uint8",
            "tokenizer": "tokenizer.json" if tokenizer is not None else None,
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if path.exists():
            shutil.rmtree(path)
        os.replace(partial, path)
        return PreferenceDataset.load(path)


def _as_uint8(tokens: np.ndarray, cid: str) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"candidate {cid}: tokens must be a (T, 56) integer array, found {tokens.dtype} {tokens.shape}"
        )
    if tokens.size and (tokens.min() < 0 or tokens.max() > 255):
        raise ValueError(f"candidate {cid}: tokens must be in [0, 255] to be stored as uint8")
    return tokens.astype(np.uint8)


def _frame_dim(trajectories: Mapping[str, np.ndarray]) -> int | None:
    dims = {t.shape[1] for t in trajectories.values()}
    return dims.pop() if len(dims) == 1 else None
