#!/usr/bin/env bash
# Regenerates docs/results/alignment.md: the alignment benchmark (protocol alignment-v1) from the quickstart's
# SFT checkpoint. Cells are resumable, so an interrupted run continues where it stopped (a cell from before the
# REACT metrics gains them from its stored policy, without retraining). Several hours on 2 cores; set SFT to name
# another checkpoint. Processes of one thread each share the results folder (only the first measures the
# ceilings): on 2 cores one process with two threads ran sampling several times slower than one thread each.
# Settings were chosen on the val split first: scripts/alignment_tuning.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SFT=${SFT:-runs/quickstart/sft/final}
OUT=${OUT:-runs/benchmark/alignment}
export OMP_NUM_THREADS=1 PYTHONPATH=${PYTHONPATH:-}:docs/examples
run() { .venv/bin/dyadic benchmark alignment --sft "$SFT" --out "$OUT" "$@" num_threads=1; }
ALL="--algo dpo_nods --algo random_prefer --algo dpo_paper --algo sft_preferred --algo iterated_dpo --algo ppo_rm --algo dpo_nods_weighted"
ALL="$ALL --algo iterated_dpo_weighted --algo random_prefer_iterated_weighted --algo ppo_rm_episode"
ALL="$ALL --algo iterated_dpo_weighted_window --algo ppo_oracle_episode --algo ppo_oracle_episode_65k"
# 120 rated groups (the quickstart's budget): every row.
run $ALL "budgets=[120]" "seeds=[0,2,4]" &
run --no-ceilings $ALL "budgets=[120]" "seeds=[1,3]"
wait
# 60 rated groups: DPO with nod decisions and the worked plug-in example (docs/examples/rated_distillation.py).
run --no-ceilings --algo dpo_nods --algo rated_distillation:TopQuarterSFT "budgets=[60]" "seeds=[0,2,4]" &
run --no-ceilings --algo dpo_nods --algo rated_distillation:TopQuarterSFT "budgets=[60]" "seeds=[1,3]"
wait
# 480 rated groups (4x the quickstart's): dpo_nods and the best DPO (some seeds not run yet; the page says how many).
run --no-ceilings --algo dpo_nods --algo iterated_dpo_weighted "budgets=[480]" "seeds=[0,2,4]" &
run --no-ceilings --algo dpo_nods --algo iterated_dpo_weighted "budgets=[480]" "seeds=[1,3]"
wait
# Active query selection at 120 (each seed's collection grows to its pool of 240 groups).
run --no-ceilings --algo dpo_nods_active "budgets=[120]" "seeds=[0,1,2,3,4]"
# The reward model's held-out accuracy against the rated groups it learns from (seed 0's 480 groups).
.venv/bin/dyadic benchmark reward-model --collection "$OUT/feedback/s0" --report-to docs/results/reward_model_curve.md
# The page: every finished cell.
run --report-only --report-to docs/results/alignment.md $ALL --algo rated_distillation:TopQuarterSFT \
    --algo dpo_nods_active "budgets=[60,120,480]" "seeds=[0,1,2,3,4]"
