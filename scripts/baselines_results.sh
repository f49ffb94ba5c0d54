#!/usr/bin/env bash
# Regenerates docs/results/baselines.md: the paper's learned baselines LM-listener and MMLHG, trained on the
# `small` synthetic benchmark once per seed, and evaluated on its test split beside Random, NN, Mean, SFT (and
# SFT+DPO): the paper's metrics, the oracle's, REACT's (K = 10 predictions per clip), the VQ-VAEs'
# reconstruction error and the training times (`dyadic baselines report`). docs/baselines.md explains the rows.
#
#   SEEDS="0 1 2 3 4"  training and evaluation seeds (one seed: SEEDS=0)
#   SFT=DIR            an SFT checkpoint for every seed, or "DIR0 DIR1 DIR2" one per seed; unset: SFT is trained
#                      here per seed with experiments/configs/sft_small.yaml (about 14 minutes each)
#   DPO=DIR            adds the row SFT+DPO (one checkpoint, or one per seed)
#   OUT=runs/baselines where the runs go; finished runs are skipped, so an interrupted script resumes
#
# One process at a time, one thread, niced: the machine is shared (the page records the load).
set -euo pipefail
cd "$(dirname "$0")/.."
DYADIC=${DYADIC:-.venv/bin/dyadic}
OUT=${OUT:-runs/baselines}
read -r -a SEED_LIST <<< "${SEEDS:-0 1 2 3 4}"
export OMP_NUM_THREADS=1
run() { nice -n 15 "$DYADIC" "$@"; }
# pick LIST INDEX: the INDEX-th word of LIST, or its only word.
pick() { local words; read -r -a words <<< "$1"; if [ ${#words[@]} -eq 1 ]; then echo "${words[0]}"; else echo "${words[$2]}"; fi; }

for i in "${!SEED_LIST[@]}"; do
  seed=${SEED_LIST[$i]}
  for variant in lm-listener mmlhg; do
    dir=$OUT/${variant//-/_}_s$seed
    [ -f "$dir/final/training.json" ] || run train "$variant" "output_dir=$dir" "seed=$seed" num_threads=1 --no-progress
  done
  if [ -n "${SFT:-}" ]; then
    sft=$(pick "$SFT" "$i")
  else
    sft=$OUT/sft_s$seed/final
    [ -d "$sft" ] || run train sft --config experiments/configs/sft_small.yaml "output_dir=$OUT/sft_s$seed" \
      "seed=$seed" num_threads=1 --no-progress
  fi
  policies="LM-listener=$OUT/lm_listener_s$seed/final,MMLHG=$OUT/mmlhg_s$seed/final,SFT=$sft"
  if [ -n "${DPO:-}" ]; then policies="$policies,SFT+DPO=$(pick "$DPO" "$i")"; fi
  [ -f "$OUT/eval-seed$seed/results.json" ] || run eval --dataset synthetic:small --split test --seed "$seed" \
    --agent random,nn,mean --policy "$policies" --samples 10 --run-dir "$OUT/eval-seed$seed"
done

given=""
for name in SEEDS SFT DPO; do if [ -n "${!name:-}" ]; then given="$given$name=\"${!name}\" "; fi; done
run baselines report "$OUT" --out docs/results/baselines.md --command "${given}bash scripts/baselines_results.sh"
