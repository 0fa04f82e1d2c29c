"""Sweeps: seed lists, hard crashes of a run, local and Ray backends, failures, re-runs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from rl_plasticity import sweep as sw
from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import RunResult, read_status, write_status
from rl_plasticity.report import write_report
from tests.conftest import TINY_PPO, write_spec

STEPS = 1024  # two 512-step rollouts; one checkpoint at 1024


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("0-2,7", [0, 1, 2, 7]), ("3", [3]),
     ("1,1-2", [1, 2])],
)  # fmt: skip
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert sw.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "4-2", "-1", "0-", "1,,2", "0.5"])
def test_parse_seeds_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="seeds"):
        sw.parse_seeds(text)


def _task(tmp_path: Path, script: str, steps: int = 100) -> sw.RunTask:
    path = tmp_path / "g" / "env__agent__s0"
    log = tmp_path / "g" / sw.LOGS / "env__agent__s0.log"
    return sw.RunTask((sys.executable, "-c", script), path, log, steps)


def test_run_killed_from_outside_is_marked_failed(tmp_path: Path) -> None:
    # The child writes "running" as experiment.train does, then dies by SIGKILL.
    script = (
        "import os, signal, pathlib\n"
        f"from rl_plasticity.experiment.rundir import write_status\n"
        f"p = pathlib.Path({str(tmp_path / 'g' / 'env__agent__s0')!r}); p.mkdir(parents=True)\n"
        "write_status(p, 'running', timestep=40)\n"
        "print('training...', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    task = _task(tmp_path, script)
    result = sw.run_task(task)
    assert result.status == "failed"
    assert result.reason == "exit code -9 (SIGKILL)"
    status = read_status(task.path)
    assert (status["status"], status["reason"], status["timestep"]) == ("failed", result.reason, 40)
    log = task.log.read_text()
    assert "training..." in log and "# exit code -9" in log


def test_error_before_the_run_directory_names_the_log_line(tmp_path: Path) -> None:
    task = _task(tmp_path, "import sys; sys.exit('rlp: error: could not build the run')")
    result = sw.run_task(task)
    assert result == RunResult(
        task.path, "failed", "exit code 1: rlp: error: could not build the run"
    )
    assert not task.path.exists()


def test_finished_run_is_skipped_without_a_process(tmp_path: Path) -> None:
    task = _task(tmp_path, "raise SystemExit(3)", steps=100)
    task.path.mkdir(parents=True)
    write_status(task.path, "done", timestep=100)
    assert sw.run_task(task) == RunResult(task.path, "skipped")
    assert not task.log.exists()
    # Asked for more steps than it has: not finished, so the child is started.
    longer = sw.RunTask(task.command, task.path, task.log, 200)
    assert sw.run_task(longer).status == "failed"


def test_summary_counts_and_reasons(tmp_path: Path) -> None:
    result = sw.SweepResult(
        [RunResult(tmp_path / "a", "done"), RunResult(tmp_path / "b", "failed", "boom"),
         RunResult(tmp_path / "c", "skipped")]
    )  # fmt: skip
    assert (result.done, result.failed, result.skipped) == (1, 1, 1)
    assert (
        result.summary() == f"3 runs: 1 done, 1 failed, 1 skipped\nfailed: {tmp_path / 'b'}: boom"
    )


def test_bad_spec_fails_before_any_run(tmp_path: Path, tiny_env: Path) -> None:
    with pytest.raises(ConfigError, match="ppo-typo"):
        sw.sweep([str(tiny_env)], ["ppo-typo"], [0], STEPS, root=tmp_path / "runs", echo=None)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="backend"):
        sw.sweep([str(tiny_env)], ["ppo"], [0], STEPS, root=tmp_path, backend="slurm", echo=None)


# --------------------------------------------------------------------------- real runs


def _layout(group: Path) -> dict[str, list[str]]:
    """Per run directory, its files and folders, one level deep (checkpoints by name)."""
    layout = {}
    for run in sorted(p for p in group.iterdir() if (p / "config.json").exists()):
        names = sorted(p.name for p in run.iterdir())
        names += sorted(f"checkpoints/{p.name}" for p in (run / "checkpoints").iterdir())
        layout[run.name] = names
    return layout


def _episodes(run: Path) -> list[dict[str, str]]:
    with (run / "episodes.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("agents")
    slow = TINY_PPO.replace("learning_rate = 3e-4", "learning_rate = 1e-4")
    return [write_spec(folder, "tiny-a", TINY_PPO), write_spec(folder, "tiny-b", slow)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import TINY_ENV

    return write_spec(tmp_path_factory.mktemp("envs"), "tiny-cheetah", TINY_ENV)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, env, agents) -> tuple[Path, sw.SweepResult]:
    root = tmp_path_factory.mktemp("local")
    result = sw.sweep(
        [str(env)], [str(a) for a in agents], [0, 1], STEPS, root=root, group="g", jobs=2, echo=None
    )
    return root, result


def test_local_sweep_runs_the_grid(local_sweep) -> None:
    root, result = local_sweep
    assert (result.done, result.failed, result.skipped) == (4, 0, 0), result.summary()
    names = [r.path.name for r in result.results]
    assert names == [f"tiny-cheetah__tiny-{a}__s{s}" for a in "ab" for s in (0, 1)]
    for run in result.results:
        assert read_status(run.path)["status"] == "done"
        assert (root / "g" / "logs" / f"{run.path.name}.log").is_file()
    assert len(_episodes(result.results[0].path)) == 1  # HalfCheetah: 1000-step episodes


@pytest.mark.slow  # the default suite's Ray test is in test_sweep_ray.py
def test_ray_sweep_gives_the_same_layout(tmp_path: Path, local_sweep, env, agents) -> None:
    local_root, local_result = local_sweep
    result = sw.sweep(
        [str(env)], [str(a) for a in agents], [0, 1], STEPS, root=tmp_path, group="g",
        jobs=2, backend="ray", echo=None,
    )  # fmt: skip
    assert (result.done, result.failed) == (4, 0), result.summary()
    assert _layout(tmp_path / "g") == _layout(local_root / "g")
    # Same seed, same process-per-run: the same episodes, whichever backend launched it.
    for ours, theirs in zip(result.results, local_result.results, strict=True):
        assert _episodes(ours.path) == _episodes(theirs.path)


def test_rerun_skips_finished_and_resumes_interrupted(local_sweep, env, agents) -> None:
    # Runs after the tests that read local_sweep's runs: it rewrites one of them.
    root, first = local_sweep
    # As if the last run had been killed mid-training, after its checkpoint at 1024 steps.
    killed = first.results[-1].path
    write_status(killed, "running", timestep=1024)
    again = sw.sweep(
        [str(env)], [str(a) for a in agents], [0, 1], STEPS, root=root, group="g", jobs=2,
        echo=None,
    )  # fmt: skip
    assert [r.status for r in again.results] == ["skipped"] * 3 + ["done"], again.summary()
    assert read_status(killed)["status"] == "done"
    log = (root / "g" / "logs" / f"{killed.name}.log").read_text()
    assert log.count("--resume") == 2  # launched by both sweeps, the finished ones only once


def test_diverging_run_fails_and_the_others_finish(tmp_path: Path, env, agents) -> None:
    absurd = write_spec(
        tmp_path, "tiny-absurd", TINY_PPO.replace("learning_rate = 3e-4", "learning_rate = 1e12")
    )
    root = tmp_path / "runs"
    result = sw.sweep(
        [str(env)], [str(agents[0]), str(absurd)], [0], STEPS, root=root, group="g", jobs=2,
        echo=None,
    )  # fmt: skip
    assert [r.status for r in result.results] == ["done", "failed"], result.summary()
    # Whether the guard or the algorithm noticed it first, the reason says what went non-finite.
    assert "non-finite" in result.results[1].reason, result.results[1].reason
    text = write_report(root).read_text()
    assert "| `g/tiny-cheetah__tiny-absurd__s0` | failed |" in text
    assert json.loads((result.results[1].path / "status.json").read_text())["status"] == "failed"
