#!/usr/bin/env bash
# The main permuted-observation study (bench/results/perm_study/PLAN.md): four sweeps of two
# seeds each (seed-major, so an interrupted study has whole pairs); resumable: rerun this script.
# Usage: bench/perm_study.sh [ROOT]   (default ROOT: ~/studies; rlp on PATH, e.g. .venv/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-$HOME/studies}"
export PYTHONPATH="$PWD"
for seeds in 0,10 20,30 40,50 60,70; do
  rlp sweep --envs study-permuted-hopper \
    --agents perm-ppo,perm-ppo-reset,perm-ppo-cbp,perm-ppo-l2init,perm-ppo-ln,perm-ppo-ln-snp \
    --seeds "$seeds" --steps 614400 --root "$root" --group perm-main --jobs 2 --no-progress
done
