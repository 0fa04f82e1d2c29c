"""MuJoCo's warnings reach Python's warnings once per message and never a file in the user's cwd."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from rl_plasticity.specs import load_env_spec
spec = load_env_spec("mass-gear-halfcheetah")
for _ in range(2):
    env = spec.make()
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    env.unwrapped.model.body_mass[1] *= 2.0  # a mass change as the body_mass drift writes it
    env.close()
print("ran")
"""


def test_mass_changing_env_writes_no_mujoco_log(tmp_path):
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "ran"
    assert list(tmp_path.iterdir()) == []  # no MUJOCO_LOG.TXT
    # HalfCheetah's XML uses the deprecated settotalmass: one Python warning, not one per load.
    assert result.stderr.count("MujocoWarning: MuJoCo: compiler attribute 'settotalmass'") == 1
