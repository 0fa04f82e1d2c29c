#!/usr/bin/env bash
# The friction-cycle study's main runs (bench/results/friction_study/PLAN.md): `rlp sweep --study
# friction-hopper`, run seed pair by seed pair (seed-major, so an interrupted study has whole
# seeds), each agent's pair of seeds as one population process, two processes at a time.
# Resumable: rerun this script; finished runs are skipped, unfinished ones resume from their last
# checkpoint. After each pair, its report's per-seed CSVs go to bench/results/friction_study/main/.
# Usage: bench/friction_study.sh [ROOT]   (default ROOT: ~/studies; rlp on PATH, e.g. .venv/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-$HOME/studies}"
out=bench/results/friction_study/main
study=studies/friction-hopper.toml
read -r agents steps every episodes phases < <(python3 -c "
import tomllib
s = tomllib.load(open('$study', 'rb'))
e = s['evaluation']
print(','.join(s['agents']), s['steps'], e['every'], e['episodes'], e['phases'])")
export PYTHONPATH="$PWD"
for seeds in 0,10 20,30 40,50; do
  rlp sweep --envs study-friction-hopper --agents "$agents" --seeds "$seeds" --steps "$steps" \
    --eval-every "$every" --eval-episodes "$episodes" --eval-phases "$phases" \
    --root "$root" --group friction-main --jobs 2 --population 2 --no-progress
  rlp report "$root/friction-main" --study friction-hopper --out "$root/friction-main/report" \
    > /dev/null || true
  mkdir -p "$out"
  cp "$root"/friction-main/report/{phase_returns,paired_differences}.csv "$out"/ 2>/dev/null || true
done
