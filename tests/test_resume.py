"""Resume after SIGKILL, determinism of a run, and the divergence guard."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest

from rl_plasticity.cli import main
from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.run import train
from rl_plasticity.experiment.rundir import checkpoints
from rl_plasticity.sweep import plan
from tests.conftest import TINY_PPO, write_spec


def _column(path: Path, column: str) -> list[int]:
    with path.open(newline="") as f:
        return [int(float(r[column])) for r in csv.DictReader(f)]


def test_sigkill_mid_training_then_resume_gives_a_complete_run(tmp_path, tiny_env, tiny_agent):
    root = tmp_path / "runs"
    argv = ["train", "--env", str(tiny_env), "--agent", str(tiny_agent), "--steps", "8192"]
    argv += ["--root", str(root), "--no-progress"]
    run = root / "default" / "tiny-cheetah__tiny-ppo__s0"
    child = subprocess.Popen([sys.executable, "-m", "rl_plasticity.cli", *argv])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        done = checkpoints(run / "checkpoints")
        if done and int(done[-1].name.removeprefix("step_")) >= 3072:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = json.loads((run / "status.json").read_text())
    assert killed_at["status"] == "running"  # SIGKILL left no chance to say otherwise

    assert main([*argv, "--resume"]) == 0
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done" and status["timestep"] == 8192

    every = 1024  # the tiny agent's checkpoint and metrics interval
    measured = _column(run / "metrics.csv", "timestep")
    assert measured[0] == 512 and measured[-1] == 8192
    assert all(b > a for a, b in pairwise(measured))
    assert all(b - a <= every for a, b in pairwise(measured))
    logged = _column(run / "progress.csv", "time/total_timesteps")
    assert logged == list(range(512, 8192 + 1, 512))
    # Episodes last 1000 steps; the one under way at the checkpoint restarts with the resumed env.
    ended = _column(run / "episodes.csv", "timestep")
    assert ended[:3] == [1000, 2000, 3000]
    assert all(1000 <= b - a <= 1000 + every for a, b in pairwise(ended))


def test_same_seed_gives_identical_metrics(tmp_path, tiny_env, tiny_agent):
    tables = []
    for group in ("a", "b"):
        result = train(tiny_env, tiny_agent, 7, 2048, root=tmp_path, group=group)
        assert result.status == "done"
        tables.append((result.path / "metrics.csv").read_text())
    assert tables[0] == tables[1]
    assert len(tables[0].splitlines()) == 1 + 3  # header + measurements at 512, 1024, 2048


def test_divergent_run_is_marked_failed_with_the_step(tmp_path, tiny_env, capsys):
    absurd = TINY_PPO.replace("learning_rate = 3e-4", "learning_rate = 1e12")
    agent = write_spec(tmp_path, "absurd-lr", absurd)
    argv = ["train", "--env", str(tiny_env), "--agent", str(agent), "--steps", "4096"]
    code = main([*argv, "--root", str(tmp_path / "runs"), "--no-progress"])
    assert code == 1
    run = tmp_path / "runs" / "default" / "tiny-cheetah__absurd-lr__s0"
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed"
    assert "non-finite" in status["reason"] and "at step" in status["reason"]
    assert status["timestep"] < 4096
    assert "run failed" in capsys.readouterr().err


def test_resume_extends_a_run_but_refuses_a_changed_spec(tmp_path, tiny_env, tiny_agent, capsys):
    root = tmp_path / "runs"
    argv = ["train", "--env", str(tiny_env), "--agent", str(tiny_agent), "--root", str(root)]
    argv += ["--no-progress", "--resume"]
    assert main([*argv, "--steps", "1024"]) == 0
    run = root / "default" / "tiny-cheetah__tiny-ppo__s0"

    original = tiny_agent.read_text()
    tiny_agent.write_text(original.replace("learning_rate = 3e-4", "learning_rate = 1e-3"))
    capsys.readouterr()
    assert main([*argv, "--steps", "2048"]) == 2
    assert "differs from the spec" in capsys.readouterr().err
    # Nor is the finished run passed off as done for the changed spec, by train or by a sweep.
    assert main([*argv, "--steps", "1024"]) == 2
    with pytest.raises(ConfigError, match="differs from the spec"):
        plan([str(tiny_env)], [str(tiny_agent)], [0], 1024, root, "default")
    assert json.loads((run / "status.json").read_text())["timestep"] == 1024

    tiny_agent.write_text(original)
    assert main([*argv, "--steps", "2048"]) == 0
    assert json.loads((run / "config.json").read_text())["steps"] == 2048
    assert _column(run / "progress.csv", "time/total_timesteps") == [512, 1024, 1536, 2048]


def test_a_subclass_of_a_known_wrapper_keeps_its_episode_state():
    # RL Zoo, once imported, replaces gymnasium's TimeLimit by a subclass in every later gym.make.
    import gymnasium as gym
    from gymnasium.wrappers import TimeLimit

    from rl_plasticity.experiment.checkpoint import _wrapper_state_names

    class PatchedTimeLimit(TimeLimit):
        pass

    env = PatchedTimeLimit(gym.make("Pendulum-v1").unwrapped, max_episode_steps=10)
    assert _wrapper_state_names(env) == ("_elapsed_steps",)
