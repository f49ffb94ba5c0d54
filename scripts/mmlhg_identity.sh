#!/usr/bin/env bash
# Regenerates docs/results/mmlhg_identity_val.md (val, seeds 0-2) and docs/results/mmlhg_identity.md (test, seeds
# 0-4): MMLHG as it acts in the env, answering as the average training listener (the env tells no agent who
# listens), beside the same checkpoint told each clip's listener (`dyadic eval --tell-listener`), as MMLHG's paper
# animates a given identity, and Random. Every listener of small's val and test clips is a training listener, so
# the model holds their identity vectors. The MMLHG checkpoints are scripts/baselines_results.sh's (trained here
# when missing, same settings and seeds). About 3 minutes of a core per training, 5 per evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/baselines}
export OMP_NUM_THREADS=1
run() { nice -n 15 .venv/bin/dyadic "$@"; }
TOLD="MMLHG (told the listener)"
for seed in 0 1 2 3 4; do
  dir=$OUT/mmlhg_s$seed
  [ -f "$dir/final/training.json" ] || run train mmlhg "output_dir=$dir" "seed=$seed" num_threads=1 --no-progress
done
# SPLIT PAGE SEED...: one evaluation per seed into OUT/identity_SPLIT, then the page.
evaluate() {
  local split=$1 page=$2 root=$OUT/identity_$1
  shift 2
  for seed in "$@"; do
    [ -f "$root/eval-seed$seed/results.json" ] || run eval --dataset synthetic:small --split "$split" \
      --seed "$seed" --agent random --policy "MMLHG=$OUT/mmlhg_s$seed/final,$TOLD=$OUT/mmlhg_s$seed/final" \
      --tell-listener "$TOLD" --samples 10 --run-dir "$root/eval-seed$seed"
  done
  run baselines report "$root" --trained "$OUT" --out "$page" --command "bash scripts/mmlhg_identity.sh" \
    --title "MMLHG told who listens, against MMLHG as the average listener ($split split)"
}
evaluate val docs/results/mmlhg_identity_val.md 0 1 2
evaluate test docs/results/mmlhg_identity.md 0 1 2 3 4
