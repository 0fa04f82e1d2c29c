"""pytest plugin for :mod:`bench.sb3_suite`: SB3's tests with ``stable_baselines3.PPO`` replaced by
FastPPO.

Loaded with ``-p bench.sb3_suite_fastppo``, it is imported before pytest collects the test modules,
so their ``from stable_baselines3 import PPO`` receives FastPPO.
"""

import stable_baselines3
import stable_baselines3.ppo

from rl_plasticity.sb3.fast_ppo import FastPPO

stable_baselines3.PPO = FastPPO
stable_baselines3.ppo.PPO = FastPPO
