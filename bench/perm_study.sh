#!/usr/bin/env bash
# The main permuted-observation study: four sweeps of two seeds each (seed-major).
cd "$(dirname "$0")/.."
for seeds in 0,10 20,30 40,50 60,70; do
  .venv/bin/rlp sweep --envs study-permuted-hopper \
    --agents perm-ppo,perm-ppo-reset,perm-ppo-cbp,perm-ppo-l2init,perm-ppo-ln,perm-ppo-ln-snp \
    --seeds $seeds --steps 614400 --root ~/studies --group perm-main --jobs 2 --no-progress
done
