"""MuJoCo's warnings reach Python's warnings once per message and never a file in the user's cwd."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import rlp_train

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
    # gymnasium's HalfCheetah XML uses the deprecated settotalmass: not shown when a spec makes it
    assert "MujocoWarning" not in result.stderr


def test_a_direct_gym_make_shows_a_mujoco_warning_once(tmp_path):
    """The filter is for specs' envs only: gymnasium's own make still warns, once per message."""
    code = "import rl_plasticity.nonstationary.physics, gymnasium as g\n"
    code += "for _ in range(2): g.make('HalfCheetah-v5')"
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr.count("MujocoWarning: MuJoCo: compiler attribute 'settotalmass'") == 1


def test_a_runs_stderr_carries_no_mujoco_warning(tmp_path, tiny_agent, tiny_env):
    result = rlp_train(tiny_env, tiny_agent, 512, tmp_path / "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MujocoWarning" not in result.stderr and "settotalmass" not in result.stderr
