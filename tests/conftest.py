"""Shared fixtures: tiny specs written as a user would write their own TOML files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(1)

TINY_PPO = """\
description = "tiny PPO for tests"
algorithm = "PPO"
device = "cpu"
init = "lecun_uniform"
checkpoint_every = 1024

[hyperparameters]
learning_rate = 3e-4
n_steps = 512
batch_size = 128
n_epochs = 2

[policy_kwargs]
net_arch = { pi = [32, 32], vf = [32, 32] }
activation = "relu"
ortho_init = false

[optimizer]
name = "adam"
eps = 1e-8

[metrics]
every = 1024
"""

TINY_ENV = """\
description = "HalfCheetah whose friction changes every 1,500 steps, right away"
env_id = "HalfCheetah-v5"

[nonstationary]
apply_at = "immediate"
schedule_seed = 0

[[nonstationary.drift]]
parameter = "friction"
mode = "scale"

[nonstationary.drift.schedule]
kind = "piecewise"
every = 1500
sample = "log-uniform"
low = 0.1
high = 2.0
"""


def assert_same_nested(
    ours: Any, theirs: Any, where: str = "state", rounding: bool = False
) -> None:
    """Equal nested states (dicts, lists, tuples, tensors, numbers): to the bit, or with
    ``rounding`` float tensors within float rounding (atol 1e-5, rtol 1e-4) and floats within
    1e-9, everything else exactly. ``where`` names the first difference."""
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs), where
        for key in theirs:
            assert_same_nested(ours[key], theirs[key], f"{where}[{key!r}]", rounding)
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same_nested(a, b, f"{where}[{i}]", rounding)
    elif rounding and torch.is_tensor(theirs) and theirs.is_floating_point():
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4, msg=where)
    elif torch.is_tensor(theirs):
        assert torch.equal(ours, theirs), where
    elif rounding and isinstance(theirs, float):
        assert ours == pytest.approx(theirs, abs=1e-9), where
    else:
        assert ours == theirs, where


def write_spec(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/name.toml`` and return the path."""
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def rlp_train(
    env: Path, agent: Path, steps: int, root: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``rlp train`` as a user runs it, in a child process with Python's default warning filters
    (``-W default``: what a user's terminal would show), its output captured."""
    argv = ["train", "--env", str(env), "--agent", str(agent), "--steps", str(steps)]
    argv += ["--root", str(root), "--no-progress"]
    command = [sys.executable, "-W", "default", "-m", "rl_plasticity.cli", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def tiny_agent(tmp_path: Path) -> Path:
    """A small PPO agent spec file (32-32 nets, 512-step rollouts, metrics every 1024 steps)."""
    return write_spec(tmp_path, "tiny-ppo", TINY_PPO)


@pytest.fixture
def tiny_env(tmp_path: Path) -> Path:
    """A HalfCheetah env spec file whose friction changes every 1,500 steps."""
    return write_spec(tmp_path, "tiny-cheetah", TINY_ENV)
