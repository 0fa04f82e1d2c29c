"""rlp sweep forms populations by default (FastPPO agents), and a population killed by SIGKILL
resumes from its members' checkpoints with no row written twice."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest

from rl_plasticity import sweep as sw
from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import checkpoints, read_status
from rl_plasticity.sweep.local import default_populations
from tests.conftest import TINY_PPO, write_spec


@pytest.fixture
def fast_agent(tmp_path: Path) -> Path:
    """The tiny agent on FastPPO, checkpointing every rollout (512 steps)."""
    text = TINY_PPO.replace('algorithm = "PPO"', 'algorithm = "FastPPO"')
    text = text.replace("checkpoint_every = 1024", "checkpoint_every = 512")
    return write_spec(tmp_path, "tiny-fast", text)


def _seeds(group: sw.local.PopulationTask) -> list[int]:
    return [t.args.seed for t in group.members]


def test_default_populations_group_fastppo_seeds_to_fill_the_cores(
    tmp_path, tiny_env, tiny_agent, fast_agent
):
    tasks = sw.plan([str(tiny_env)], [str(fast_agent), str(tiny_agent)], [0, 1, 2, 3], 512,
                    tmp_path, "g")  # fmt: skip
    # One FastPPO (env, agent) pair, 4 seeds, 2 cores: two populations of 2; SB3's PPO alone.
    groups = default_populations(tasks, 2)
    assert [_seeds(g) for g in groups] == [[0, 1], [2, 3], [0], [1], [2], [3]]
    assert [g.members[0].args.agent.name for g in groups] == ["tiny-fast"] * 2 + ["tiny-ppo"] * 4
    assert "--seeds" in groups[0].command and "--seed" in groups[2].command
    # One core: one population of 4; 8 cores: a process per run (4 seeds cannot fill 8 cores).
    assert _seeds(default_populations(tasks, 1)[0]) == [0, 1, 2, 3]
    assert all(len(g.members) == 1 for g in default_populations(tasks, 8))
    assert all("--seed" in g.command for g in default_populations(tasks, 8))
    # Two pairs on 2 cores: a population each.
    other_env = write_spec(tmp_path, "other-cheetah", tiny_env.read_text())
    tasks = sw.plan([str(tiny_env), str(other_env)], [str(fast_agent)], [0, 1, 2], 512,
                    tmp_path, "g")  # fmt: skip
    assert [_seeds(g) for g in default_populations(tasks, 2)] == [[0, 1, 2], [0, 1, 2]]


def test_population_setting_is_checked(tmp_path, tiny_env, fast_agent):
    for bad, backend in (("auto2", "local"), (0, "local"), (2, "ray")):
        with pytest.raises(ConfigError, match="population"):
            sw.sweep([str(tiny_env)], [str(fast_agent)], [0], 512, root=tmp_path,
                     backend=backend, population=bad)  # fmt: skip


def _rows(path: Path, column: str) -> list[int]:
    with path.open(newline="") as f:
        return [int(float(r[column])) for r in csv.DictReader(f)]


def _process_with(*words: str) -> int | None:
    """The pid of a process whose command line holds every word (Linux's /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if all(word in argv for word in words):
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the child in /proc")
def test_a_population_killed_by_sigkill_resumes_without_a_row_twice(tmp_path, tiny_env, fast_agent):
    root = tmp_path / "runs"
    argv = ["sweep", "--envs", str(tiny_env), "--agents", str(fast_agent), "--seeds", "0-1"]
    argv += ["--steps", "8192", "--root", str(root), "--jobs", "1", "--no-progress"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "rl_plasticity.cli", *argv], stdout=subprocess.PIPE, text=True
    )
    runs = [root / "sweep" / f"tiny-cheetah__tiny-fast__s{seed}" for seed in (0, 1)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and sweep.poll() is None:
        done = [checkpoints(run / "checkpoints") for run in runs]
        if all(d and int(d[-1].name.removeprefix("step_")) >= 3072 for d in done):
            break
        time.sleep(0.05)
    # The default formed one population of both seeds (one core): kill that process hard.
    population = _process_with("--seeds", "0,1", str(root))
    assert population is not None
    subprocess.run(["kill", f"-{signal.SIGKILL.value}", str(population)], check=True)
    out, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 1
    assert "2 failed" in out and "SIGKILL" in out
    assert all(read_status(run)["status"] == "failed" for run in runs)

    again = subprocess.run(
        [sys.executable, "-m", "rl_plasticity.cli", *argv], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert "2 done" in again.stdout
    log = (root / "sweep" / "logs" / "tiny-cheetah__tiny-fast__s0-population-2.log").read_text()
    assert log.count("--seeds 0,1") == 2 and "--resume" in log
    for run in runs:
        status = read_status(run)
        assert status["status"] == "done" and status["timestep"] == 8192
        # Every row once: rollouts logged at 512, 1024, ..., 8192; metrics and episodes in order.
        assert _rows(run / "progress.csv", "time/total_timesteps") == list(range(512, 8193, 512))
        measured = _rows(run / "metrics.csv", "timestep")
        assert measured[-1] == 8192 and all(b > a for a, b in pairwise(measured))
        ended = _rows(run / "episodes.csv", "timestep")
        assert len(ended) >= 7 and all(b > a for a, b in pairwise(ended))
