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

Modules: ``plans`` (styles and a clip's plan) -> ``motion`` (frames) -> ``generator`` (whole clips, splits);
``perception`` (what the oracle reads of speaker and listener) -> ``oracle`` (episode scores) and
``oracle_stepper`` (the per-frame shaping reward); ``appropriate`` (sets of fitting listeners), ``presets``
(writing datasets), ``annotators``, ``emotions``, ``lexicon``, ``signals``.

Calibration (``calibration_markdown(calibration())`` on the ``small`` preset; 5th-95th percentile over
clips and dims; real figures from DESIGN.md and the DualTalk demo clips):

| figure | real | synthetic speaker | synthetic listener | real source |
|---|---|---|---|---|
| neck rotation std (rad) | 0.03-0.12 | 0.0229-0.082 | 0.0048-0.0753 | DESIGN.md |
| jaw rotation std (rad) | 0.01-0.06 | 0.0069-0.0501 | 0.0011-0.0143 | DESIGN.md |
| expression per-dim std (active dims) | 0.05-0.4 | 0.0231-0.2508 | 0.0271-0.208 | target in blendshape weights (FLAME: 0.17-1.5) |
| expression max abs | 0-1 | 0.6344-1 | 0.321-1 | blendshape weights lie in [0, 1] (FLAME: about 4.3) |
| neck frame-to-frame change std (rad) | 0.004-0.017 | 0.0044-0.011 | 0.0015-0.0076 | DualTalk demo, measured |
| jaw frame-to-frame change std (rad) | 0.003-0.032 | 0.0033-0.0382 | 0.0015-0.0032 | DualTalk demo, measured |
| speech rate while talking (words/s) | 2.3-3.3 | 2.326-3.2807 | - | conversational English, 140-200 wpm |
| blink rate (per s) | 0.15-0.45 | 0-0.7115 | 0-0.6671 | typical spontaneous blinking |

The low ends come from jaw y/z and neck roll (small in the real clips too) and from the nearly frozen
inattentive listeners; listeners keep their mouths still (jaw std about 0.01 rad) while the real figures
are of people who also talk. Short (4 s) clips make the blink-rate range wide.
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
