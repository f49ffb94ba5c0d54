#!/usr/bin/env bash
# Chooses the imitation reward's discount for the reference RL configs on the val split: PPO with
# rl_imitation_long.yaml's settings at 500,000 env steps, 3 seeds, gamma 0 (each frame's own error: the action
# does not change the frames to come) against 0.9 (what rl_small.yaml had). Writes
# docs/results/rl_imitation_val_gamma0.md and docs/results/rl_imitation_val_gamma09.md; rule: lower val L2.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
for g in 0 09; do
  gamma=$([ "$g" = 0 ] && echo 0.0 || echo 0.9)
  .venv/bin/dyadic rl --config experiments/configs/rl_imitation_long.yaml "gamma={imitation: $gamma}" \
    total_timesteps=500000 eval_split=val --out "runs/rl_imitation_val_gamma$g" \
    --report "docs/results/rl_imitation_val_gamma$g.md"
done
