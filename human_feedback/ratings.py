"""One rating as read back from the store, with what annotators never saw (light: no database imports)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RatingRow:
    """One candidate's four ratings by one annotator on one page, with what the annotator never saw."""

    group_id: str
    clip_id: str
    split: str | None
    candidate_id: str
    source: str
    policy_name: str
    sample_index: int
    annotator: str
    annotator_kind: str
    page_kind: str
    empathy: int
    appropriateness: int
    engagement: int
    naturalness: int
    watched_ms: int | None
    time_spent_ms: int | None
    submitted_at: dt.datetime
    group_position: int = 0  # the group's place in its campaign: a stable order (its ids are random)

    def values(self) -> tuple[int, int, int, int]:
        return (self.empathy, self.appropriateness, self.engagement, self.naturalness)

    def mean(self) -> float:
        return sum(self.values()) / 4.0


def scoring_rows(rows: Iterable[RatingRow], exclude_annotators: Iterable[str] = ()) -> list[RatingRow]:
    """Rows that count: regular pages, real candidates, annotators not excluded."""
    excluded = set(exclude_annotators)
    return [
        r for r in rows if r.page_kind == "regular" and r.source != "broken" and r.annotator not in excluded
    ]
