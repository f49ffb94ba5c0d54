"""The synthetic dyadic benchmark: a generator with known ground truth, a hidden oracle, simulated raters.

- :func:`write_preset` / :func:`cached_preset` / :data:`PRESETS` (``tiny``, ``small``, ``full``) and
  :class:`SyntheticConfig`: speakers with emotion trajectories, talking, pauses and timed words from
  emotion lexicons; ground-truth listeners (appropriate, generic positive, inattentive); per-frame affect.
  Written in the ``ict-arkit`` expression basis, with generator truth in each clip's ``meta``.
- :class:`Oracle`: scores any listener trajectory on empathy, appropriateness, engagement and
  naturalness (1-5) and their paper eq. 10 weighting; ``Oracle.stepper`` gives a causal shaping reward.
- :class:`SimulatedAnnotator` / :func:`make_annotators`: integer 1-5 ratings through the oracle with
  per-person bias and noise, a few careless raters.
- :func:`estimate_affect`: valence and arousal read from an ``ict-arkit`` face.
- :func:`calibration`: real against synthetic motion statistics.

Calibration (``calibration_markdown(calibration())`` on the ``small`` preset; real figures from DESIGN.md
and the DualTalk demo clips; 5th-95th percentile over clips and dims):

| figure | real | synthetic speaker | synthetic listener |
|---|---|---|---|
| neck rotation std (rad) | 0.03-0.12 | 0.0096-0.0875 | 0.0029-0.0722 |
| jaw rotation std (rad) | 0.01-0.06 | 0.0017-0.0561 | 0.0017-0.0102 |
| expression per-dim std (active dims) | 0.05-0.4 | 0.0273-0.3236 | 0.0251-0.2888 |
| neck frame-to-frame change std (rad) | 0.004-0.017 | 0.0031-0.0139 | 0.0022-0.0139 |
| jaw frame-to-frame change std (rad) | 0.003-0.032 | 0.0028-0.0377 | 0.0025-0.0036 |
| speech rate while talking (words/s) | 2.3-3.3 | 2.51-3.25 | - |
| blink rate (per s) | 0.15-0.45 | 0.1-0.5 | 0-0.5 |

Jaw y/z and neck roll sit at the low end (as in the real clips); listeners move less than speakers and
inattentive (frozen) listeners set the low ends of the listener ranges by design.
"""

from dyadic_env.synthetic.annotators import SimulatedAnnotator, make_annotators
from dyadic_env.synthetic.config import LISTENER_KINDS, POOR_KINDS, PRESETS, SyntheticConfig
from dyadic_env.synthetic.emotions import estimate_affect, read_emotions
from dyadic_env.synthetic.generator import GENERATOR_VERSION, generate_clips, synthesize_listener
from dyadic_env.synthetic.oracle import CRITERIA, DEFAULT_WEIGHTS, Oracle, OracleStepper
from dyadic_env.synthetic.presets import (
    cache_root,
    cached_preset,
    calibration,
    calibration_markdown,
    preset_config,
    write_preset,
    write_synthetic,
)

__all__ = [
    "CRITERIA", "DEFAULT_WEIGHTS", "GENERATOR_VERSION", "LISTENER_KINDS", "POOR_KINDS", "PRESETS", "Oracle",
    "OracleStepper", "SimulatedAnnotator", "SyntheticConfig", "cache_root", "cached_preset", "calibration",
    "calibration_markdown", "estimate_affect", "generate_clips", "make_annotators", "preset_config",
    "read_emotions", "synthesize_listener", "write_preset", "write_synthetic",
]  # fmt: skip
