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
# The RL ceiling at 262,144 env steps, and PPO at 65,536 on a reward model of every ranked pair.
ALL="$ALL --algo ppo_oracle_episode_262k --algo ppo_rm_all_episode_65k"
# The KL penalty chosen on val (scripts/alignment_tuning.sh) at 65,536 and 262,144 env steps, and PPO with it on
# the all-pairs reward model at 262,144.
ALL="$ALL --algo ppo_oracle_episode_65k_kl01 --algo ppo_oracle_episode_262k_kl01 --algo ppo_rm_all_episode_262k_kl01"
# 120 rated groups (the quickstart's budget): every row.
run $ALL "budgets=[120]" "seeds=[0,2,4]" &
run --no-ceilings $ALL "budgets=[120]" "seeds=[1,3]"
wait
# 60 rated groups: DPO with nod decisions and the worked plug-in example (docs/examples/rated_distillation.py).
run --no-ceilings --algo dpo_nods --algo rated_distillation:TopQuarterSFT "budgets=[60]" "seeds=[0,2,4]" &
run --no-ceilings --algo dpo_nods --algo rated_distillation:TopQuarterSFT "budgets=[60]" "seeds=[1,3]"
wait
# 480 rated groups (4x the quickstart's): dpo_nods (seed 0 only so far; the page says how many),
# iterated_dpo_weighted (the best DPO on val before cache_window) and iterated_dpo_weighted_window (the best after).
run --no-ceilings --algo dpo_nods --algo iterated_dpo_weighted --algo iterated_dpo_weighted_window \
    "budgets=[480]" "seeds=[0,2,4]" &
run --no-ceilings --algo dpo_nods --algo iterated_dpo_weighted --algo iterated_dpo_weighted_window \
    "budgets=[480]" "seeds=[1,3]"
wait
# PPO on the all-pairs reward model at 480 rated groups: does the over-optimisation seen at 120 move with labels?
run --no-ceilings --algo ppo_rm_all_episode_65k --algo ppo_rm_all_episode_262k_kl01 "budgets=[480]" "seeds=[0,2,4]" &
run --no-ceilings --algo ppo_rm_all_episode_65k --algo ppo_rm_all_episode_262k_kl01 "budgets=[480]" "seeds=[1,3]"
wait
# PPO on DPO's implicit reward from the same labels (ppo_rm_all_episode_65k's PPO, the reward model swapped).
IMPLICIT="--algo ppo_implicit_episode_65k --algo ppo_implicit_episode_262k_kl01"
run --no-ceilings $IMPLICIT "budgets=[120]" "seeds=[0,2,4]" &
run --no-ceilings $IMPLICIT "budgets=[120]" "seeds=[1,3]"
wait
# The same at 480 rated groups, beside the DPO whose implicit reward it is: does PPO on it gain more when that
# DPO learns from 4x the labels, and with the RL ceiling's step budget? And that ceiling itself (PPO on the true
# reward, labels unused) from the same SFT (docs/results/alignment_implicit_480.md).
IMPLICIT480="--algo dpo_nods_weighted --algo ppo_implicit_episode_65k --algo ppo_implicit_episode_262k_kl01"
IMPLICIT480="$IMPLICIT480 --algo ppo_oracle_episode_262k_kl01"
# The KL leash against DPO's beta on unnormalised implicit rewards, chosen on val among three (a quarter of beta;
# docs/results/alignment_tuning_implicit_480.md): it takes each seed's finished dpo_nods_weighted as its reward.
IMPLICIT480="$IMPLICIT480 --algo ppo_implicit_episode_262k_klquarterbeta"
run --no-ceilings $IMPLICIT480 "budgets=[480]" "seeds=[0,2,4]" &
run --no-ceilings $IMPLICIT480 "budgets=[480]" "seeds=[1,3]"
wait
# The RL ceiling at twice the env steps, on seeds 0 and 1 (a measurement of the optimiser's budget, paired with
# ppo_oracle_episode_262k_kl01 on the same seeds; 2 seeds, about 35 minutes each).
run --no-ceilings --algo ppo_oracle_episode_524k_kl01 "budgets=[480]" "seeds=[0]" &
run --no-ceilings --algo ppo_oracle_episode_524k_kl01 "budgets=[480]" "seeds=[1]"
wait
# Then on seeds 2-4, beside the quarter-beta leash at the same 524,288 steps (chosen on val by the rule in
# scripts/alignment_tuning.sh): does PPO on DPO's implicit reward gain with steps as the ceiling does? Seeds 0 and
# 1 are the policies the val folder trained (the same training; without that folder drop --policies-from).
run --no-ceilings --policies-from "${TUNING_OUT:-runs/benchmark/alignment_tuning}" \
    --algo ppo_implicit_episode_524k_klquarterbeta "budgets=[480]" "seeds=[0,1]"
run --no-ceilings --algo ppo_implicit_episode_524k_klquarterbeta "budgets=[480]" "seeds=[2]" &
run --no-ceilings --algo ppo_implicit_episode_524k_klquarterbeta "budgets=[480]" "seeds=[3]"
wait
run --no-ceilings --algo ppo_implicit_episode_524k_klquarterbeta "budgets=[480]" "seeds=[4]" &
run --no-ceilings --algo ppo_oracle_episode_524k_kl01 "budgets=[480]" "seeds=[2]"
wait
# The ceiling's seeds 3 and 4 (run a sitting later).
run --no-ceilings --algo ppo_oracle_episode_524k_kl01 "budgets=[480]" "seeds=[3]" &
run --no-ceilings --algo ppo_oracle_episode_524k_kl01 "budgets=[480]" "seeds=[4]"
wait
IMPLICIT480="$IMPLICIT480 --algo ppo_oracle_episode_524k_kl01 --algo ppo_implicit_episode_524k_klquarterbeta"
# Twice the labels for the single-round DPO of that page (960 rated groups; each seed's collection grows by 480):
# the label-efficiency curve's next point, paired with 480 below. Seed 4 in a process of its own balances the two
# cores (about 50 minutes a cell).
run --no-ceilings --algo dpo_nods_weighted "budgets=[960]" "seeds=[0,2]" &
run --no-ceilings --algo dpo_nods_weighted "budgets=[960]" "seeds=[1,3]" &
run --no-ceilings --algo dpo_nods_weighted "budgets=[960]" "seeds=[4]"
wait
# Active query selection at 120 (each seed's collection grows to its pool of 240 groups).
run --no-ceilings --algo dpo_nods_active "budgets=[120]" "seeds=[0,1,2,3,4]"
# The reward model's held-out accuracy against the rated groups it learns from (seed 0's 480 groups).
.venv/bin/dyadic benchmark reward-model --collection "$OUT/feedback/s0" --report-to docs/results/reward_model_curve.md
# Does it grow with labels? Seeds 0-3's collections learned from, seed 4's held out whole (480 pairs); and from
# every ranked pair of a group (all-pairs).
F=$OUT/feedback
.venv/bin/dyadic benchmark reward-model --collection $F/s0,$F/s1,$F/s2,$F/s3 --test-collection $F/s4 \
    --groups 96,384,1920 --seeds 2 --report-to docs/results/reward_model_labels.md
.venv/bin/dyadic benchmark reward-model --collection $F/s0 --test-collection $F/s4 --groups 96,384 --seeds 2 \
    --pairing all-pairs --rm-config experiments/configs/rm_all_pairs_small.yaml \
    --report-to docs/results/reward_model_all_pairs.md
# DPO's implicit reward against the learned reward model on the same held-out groups, from the same labels.
PYTHONPATH=. .venv/bin/python scripts/implicit_reward.py --out "$OUT"
# Does PPO over-optimise that implicit reward? Its samples scored by the reward and by the oracle, beside the DPO's.
PYTHONPATH=. .venv/bin/python scripts/implicit_overoptimisation.py --out "$OUT"
# Among SFT's samples and among its own, how much of the oracle's best of 8 does that DPO's implicit reward find?
PYTHONPATH=. .venv/bin/python scripts/implicit_rerank.py --out "$OUT" --sft "$SFT"
PYTHONPATH=. .venv/bin/python scripts/implicit_rerank.py --out "$OUT" --sft "$SFT" --cell dpo_nods_weighted:960 \
    --report-to docs/results/implicit_rerank_960.md
# PPO on the implicit reward and its DPO at 480 groups on a page of their own: they were run later, from a retrained
# SFT (oracle 3.404; the main page's SFT 3.365), so they compare with each other.
run --report-only --report-to docs/results/alignment_implicit_480.md $IMPLICIT480 "budgets=[480,960]" \
    "seeds=[0,1,2,3,4]"
# Paired differences between those rows (same seeds): the leash, the steps, PPO against its DPO; and the RL
# ceiling's steps.
paired() { PYTHONPATH=. .venv/bin/python scripts/paired_rows.py --out "$OUT" "$@"; }
paired --report-to docs/results/ppo_implicit_paired_480.md --pairs \
    ppo_implicit_episode_262k_kl01:ppo_implicit_episode_65k \
    ppo_implicit_episode_262k_klquarterbeta:ppo_implicit_episode_262k_kl01 \
    ppo_implicit_episode_262k_klquarterbeta:dpo_nods_weighted \
    ppo_implicit_episode_524k_klquarterbeta:ppo_implicit_episode_262k_klquarterbeta \
    ppo_implicit_episode_524k_klquarterbeta:dpo_nods_weighted \
    ppo_implicit_episode_524k_klquarterbeta:ppo_oracle_episode_524k_kl01
paired --report-to docs/results/ppo_oracle_steps_paired_480.md \
    --pairs ppo_oracle_episode_524k_kl01:ppo_oracle_episode_262k_kl01
paired --report-to docs/results/dpo_labels_paired.md --pairs dpo_nods_weighted@960:dpo_nods_weighted
# The page: every finished cell.
run --report-only --report-to docs/results/alignment.md $ALL --algo rated_distillation:TopQuarterSFT \
    --algo dpo_nods_active $IMPLICIT "budgets=[60,120,480]" "seeds=[0,1,2,3,4]"
