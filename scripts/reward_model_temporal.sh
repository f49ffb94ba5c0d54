#!/usr/bin/env bash
# Does a temporal reward model (rm_temporal_small.yaml: each step's reward reads the last 31 steps) rank held-out
# rated groups better than the per-step one? Decided on a val arrangement (learn from seeds 0-2's collections of
# scripts/alignment_results.sh, hold out seed 3's whole), then measured on the test arrangement (seeds 0-3, hold
# out seed 4's, as docs/results/reward_model_all_pairs.md). Writes docs/results/reward_model_temporal*.md.
set -euo pipefail
cd "$(dirname "$0")/.."
F=${OUT:-runs/benchmark/alignment}/feedback
export OMP_NUM_THREADS=1
curve() { .venv/bin/dyadic benchmark reward-model --seeds 2 "$@"; }
VAL="--collection $F/s0,$F/s1,$F/s2 --test-collection $F/s3 --groups 384"
curve $VAL --rm-config experiments/configs/rm_small.yaml --report-to docs/results/reward_model_temporal_val_perstep.md
curve $VAL --rm-config experiments/configs/rm_temporal_small.yaml --report-to docs/results/reward_model_temporal_val.md
curve $VAL --pairing all-pairs --rm-config experiments/configs/rm_all_pairs_small.yaml \
    --report-to docs/results/reward_model_temporal_val_perstep_all_pairs.md
curve $VAL --pairing all-pairs --rm-config experiments/configs/rm_temporal_all_pairs_small.yaml \
    --report-to docs/results/reward_model_temporal_val_all_pairs.md
# The test arrangement, for the variant with the highest mean val accuracy (temporal, all pairs; by 0.003).
curve --collection $F/s0,$F/s1,$F/s2,$F/s3 --test-collection $F/s4 --groups 96,384 --pairing all-pairs \
    --rm-config experiments/configs/rm_temporal_all_pairs_small.yaml --report-to docs/results/reward_model_temporal.md
