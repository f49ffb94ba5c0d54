#!/usr/bin/env bash
# How far do the figures move when the SFT is trained again on another machine? The single-round DPO at 480 rated
# groups (dpo_nods_weighted, docs/results/alignment_implicit_480.md) from the quickstart's SFT checkpoint of this
# machine, 5 seeds, into a folder of its own; writes docs/results/alignment_replication_480.md. SFT training is
# deterministic on one CPU but rounds differently on another (an AVX-512 one gave SFT rows near 3.30 where the
# implicit page's copy has 3.404). About 70 minutes on 2 cores after the quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
SFT=${SFT:-runs/quickstart/sft/final}
OUT=${OUT:-runs/benchmark/alignment_replication}
[ -f "$SFT/config.json" ] || bash scripts/quickstart.sh
export OMP_NUM_THREADS=1
run() { .venv/bin/dyadic benchmark alignment --sft "$SFT" --out "$OUT" --no-ceilings --algo dpo_nods_weighted \
    "$@" "budgets=[480]" num_threads=1; }
run "seeds=[0,2,4]" &
run "seeds=[1,3]"
wait
run --report-only --report-to docs/results/alignment_replication_480.md "seeds=[0,1,2,3,4]"
