"""Fresh listeners of the benchmark's own mix: the metrics a perfect imitation learner would get."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dyadic_env.synthetic import PRESETS
from dyadic_env.synthetic.evaluation import reference_metrics, resampled_listeners


def test_resampled_listeners_are_seeded_and_answer_each_clip(tiny_pairs):
    clips = [clip for _, clip in tiny_pairs][:4]
    a = resampled_listeners(clips, PRESETS["tiny"], seed=1)
    b = resampled_listeners(clips, PRESETS["tiny"], seed=1)
    c = resampled_listeners(clips, PRESETS["tiny"], seed=2)
    assert [m.shape for m in a] == [clip.listener_motion.shape for clip in clips]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not any(np.array_equal(x, y) for x, y in zip(a, c))


def test_appropriate_listeners_outscore_the_mix_on_the_oracle(tiny_pairs):
    clips = [clip for _, clip in tiny_pairs]
    table = reference_metrics(clips, replace(PRESETS["tiny"], poor_listener_fraction=0.5), draws=2)
    assert set(table) == {"resampled", "appropriate"}
    for row in table.values():
        assert set(row) == {"L2", "FD", "P-FD", "oracle"} and all(
            np.isfinite(v) and v > 0 for v in row.values()
        )
    assert table["appropriate"]["oracle"] > table["resampled"]["oracle"] + 0.3
