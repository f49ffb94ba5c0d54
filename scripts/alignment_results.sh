#!/usr/bin/env bash
# Regenerates docs/results/alignment.md: the alignment benchmark (protocol alignment-v1) from the quickstart's
# SFT checkpoint. Cells are resumable, so an interrupted run continues where it stopped. About 15 minutes a seed
# on 2 cores for the three 120-group rows; set SFT to name another checkpoint.
# Two processes of one thread each share the results folder (the second skips the ceilings): on 2 cores one
# process with two threads ran sampling several times slower than one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
SFT=${SFT:-runs/quickstart/sft/final}
OUT=${OUT:-runs/benchmark/alignment}
export OMP_NUM_THREADS=1 PYTHONPATH=${PYTHONPATH:-}:docs/examples
run() { .venv/bin/dyadic benchmark alignment --sft "$SFT" --out "$OUT" num_threads=1 "$@"; }
# 120 rated groups (the quickstart's budget): the paper's DPO, DPO with nod decisions, its Random-Prefer control.
run --algo dpo_nods --algo random_prefer --algo dpo_paper "budgets=[120]" "seeds=[0,2,4]" &
run --no-ceilings --algo dpo_nods --algo random_prefer --algo dpo_paper "budgets=[120]" "seeds=[1,3]"
wait
# 60 rated groups: DPO with nod decisions and the worked plug-in example (docs/examples/rated_distillation.py).
run --no-ceilings --algo dpo_nods --algo rated_distillation:TopQuarterSFT "budgets=[60]" "seeds=[0,1,2,3,4]"
# The page: every finished cell.
run --report-only --algo dpo_nods --algo random_prefer --algo dpo_paper --algo rated_distillation:TopQuarterSFT \
    "budgets=[60,120]" "seeds=[0,1,2,3,4]" --report-to docs/results/alignment.md
