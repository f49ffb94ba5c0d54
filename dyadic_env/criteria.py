"""The paper's four criteria of a listener's response (section III-D), in one order everywhere.

People rate each on a 1-5 scale in the annotation app (``human_feedback.criteria`` words them), the synthetic
oracle scores them from motion, reward models predict them, and tables and exports list them in this order.
"""

from __future__ import annotations

CRITERIA: tuple[str, ...] = ("empathy", "appropriateness", "engagement", "naturalness")
