"""RL Zoo runs our callbacks and presets unchanged: the README's YAML, verbose=1 (slow)."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import pytest

# Not imported here: importing rl_zoo3 replaces gymnasium's TimeLimit for the whole process, and
# RL Zoo runs in a subprocess anyway.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rl_zoo3") is None, reason="rl_zoo3 is not installed"
)

#: The README's RL Zoo YAML, shortened to 2,048 steps and 32-unit layers.
HYPERPARAMS = """\
rl_plasticity/SlipperyHalfCheetah-v0:
  n_timesteps: 2048
  policy: MlpPolicy
  n_steps: 512
  batch_size: 64
  n_epochs: 1
  policy_kwargs: "dict(net_arch=[32, 32])"
  callback:
    - rl_plasticity.sb3.callbacks.MethodCallback:
        method: cbp
        replacement_rate: 0.01
        maturity_threshold: 10
    - rl_plasticity.metrics.callback.PlasticityMetrics:
        every: 512
        csv_path: metrics.csv
"""


@pytest.mark.slow
def test_rl_zoo_trains_with_our_callbacks_and_preset(tmp_path):
    (tmp_path / "plasticity.yml").write_text(HYPERPARAMS)
    command = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo",
        "--env", "rl_plasticity/SlipperyHalfCheetah-v0", "--gym-packages", "rl_plasticity",
        "--conf-file", "plasticity.yml", "--verbose", "1", "-f", "logs", "--seed", "0",
        "--eval-freq", "-1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "   pi1/dead" in out and "   vf2/weight_mean_abs" in out
    assert "| method/" in out
    replaced = [line for line in out.splitlines() if "pi1/replaced_total" in line]
    assert int(replaced[-1].split("|")[2]) > 0  # CBP acted
    with (tmp_path / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["timestep"]) for r in rows] == [512, 1024, 1536, 2048]
    assert "plasticity/policy/mlp_extractor.policy_net.0/dead" in rows[0]
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
