#!/usr/bin/env bash
# Regenerates docs/results/metrics*.md and docs/results/bench_eval.*: the paper's and REACT's metrics, K = 10
# predictions per clip, and each metric's agreement with the oracle, on the synthetic small preset's test
# split (docs/metrics.md explains them). SFT=DIR adds a trained SFT checkpoint as the row SFT.
# Heavy runs share the machine: pin to one core with e.g. `taskset -c 1 bash scripts/metrics_results.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
DYADIC=${DYADIC:-.venv/bin/dyadic}
OUT=${OUT:-docs/results}
WORK=${WORK:-$(mktemp -d)}
policy=()
if [ -n "${SFT:-}" ]; then policy=(--policy "SFT=$SFT"); fi
# Sets drawn from other synthetic personas; FRDist over the whole frame, then with REACT's group weights.
$DYADIC eval --config experiments/configs/eval.yaml "${policy[@]}" --report "$OUT/metrics.md" --run-dir "$WORK/main"
$DYADIC eval --config experiments/configs/eval.yaml --frdist-groups react --report "$OUT/metrics_frdist_react.md" \
    --run-dir "$WORK/react"
# Sets as REACT 2023 built them for real data: listeners of clips whose speaker behaves alike.
$DYADIC data synth --preset small --out "$WORK/neighbours" --appropriate 0
$DYADIC data appropriate "$WORK/neighbours" --quantile 0.05
$DYADIC eval --config experiments/configs/eval.yaml --dataset "$WORK/neighbours" --report "$OUT/metrics_neighbours.md" \
    --run-dir "$WORK/neighbours-eval"
# The cost of K = 10 against K = 1.
$DYADIC bench eval --out "$OUT"
