"""`rlp sweep`: a signal checkpoints every running run and exits 130/143 with the command that
resumes; running the sweep again finishes them; the totals of the progress display."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from rl_plasticity import sweep as sw
from rl_plasticity.cli import main
from rl_plasticity.experiment.rundir import RunResult, checkpoints, read_status, write_status


def test_progress_totals_count_runs_and_steps(tmp_path):
    tasks = [sw.RunTask(("true",), tmp_path / f"r{i}", tmp_path / f"r{i}.log", 1000) for i in "ab"]
    for task in tasks:
        task.path.mkdir()
    write_status(tasks[0].path, "done", timestep=1000)
    progress = sw.SweepProgress(enabled=False)
    progress.begin(tasks)
    progress.finished(RunResult(tasks[0].path, "skipped"))
    progress.started(tasks[1])
    write_status(tasks[1].path, "running", timestep=250)
    line = progress.totals()
    assert line.startswith("1/2 runs done, 1 running, 0 failed; 1,250/2,000 steps (")
    assert "left)" in line  # 250 steps since the start give a rate and an estimate


@pytest.mark.slow  # about 40 s on 2 cores
def test_sigint_checkpoints_every_run_and_the_same_sweep_resumes(tmp_path, tiny_env, tiny_agent):
    root = tmp_path / "runs"
    argv = ["sweep", "--envs", str(tiny_env), "--agents", str(tiny_agent), "--seeds", "0-1"]
    # Long enough that neither run can finish between its first checkpoint and the signal.
    argv += ["--steps", "16384", "--root", str(root), "--group", "g", "--jobs", "2"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "rl_plasticity.cli", *argv, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = [root / "g" / f"tiny-cheetah__tiny-ppo__s{s}" for s in (0, 1)]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not all(checkpoints(r / "checkpoints") for r in runs):
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)
    out, err = sweep.communicate(timeout=180)
    assert sweep.returncode == 130, err
    for run in runs:
        status = read_status(run)
        assert (status["status"], status["reason"]) == ("interrupted", "SIGINT"), status
        assert checkpoints(run / "checkpoints")[-1].name == f"step_{status['timestep']:012d}"
    assert "2 runs: 0 done, 0 failed, 0 skipped, 2 interrupted" in out
    assert err.strip().splitlines()[-1] == (
        "rlp: sweep interrupted (SIGINT), 2 runs stopped; resume with: rlp "
        + " ".join([*argv, "--no-progress"])
    )
    assert "Traceback" not in err

    assert main([*argv, "--no-progress"]) == 0
    for run in runs:
        assert read_status(run)["status"] == "done"
        log = (root / "g" / "logs" / f"{run.name}.log").read_text()
        assert "rlp: resuming" in log and "Traceback" not in log


def test_plan_restarts_a_run_without_checkpoint_and_passes_run_options(
    tmp_path, tiny_env, tiny_agent
):
    from rl_plasticity.evaluation import EvalSettings
    from rl_plasticity.experiment.run import train

    root = tmp_path / "runs"
    train(tiny_env, tiny_agent, 0, 512, root=root, group="g")
    run = root / "g" / "tiny-cheetah__tiny-ppo__s0"
    for folder in checkpoints(run / "checkpoints"):
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    write_status(run, "running", timestep=300)
    notes: list[str] = []
    settings = EvalSettings(every=1000, episodes=2, phases=1)
    seeds = [0, 1]
    tasks = sw.plan(
        [str(tiny_env)], [str(tiny_agent)], seeds, 512, root, "g", (), settings, 2.5, notes.append
    )
    assert notes == ["tiny-cheetah__tiny-ppo__s0 has no checkpoint: it starts again from step 0"]
    assert "--restart" in tasks[0].command and "--resume" not in tasks[0].command
    assert "--resume" in tasks[1].command and "--restart" not in tasks[1].command
    options = " ".join(tasks[1].command)
    assert "--eval-every 1000 --eval-episodes 2 --eval-phases 1 --checkpoint-minutes 2.5" in options


def test_a_run_stopped_while_starting_is_interrupted_not_failed(tmp_path):
    import threading

    path = tmp_path / "g" / "env__agent__s0"
    script = (
        "import pathlib, time\n"
        "from rl_plasticity.experiment.rundir import write_status\n"
        f"p = pathlib.Path({str(path)!r}); p.mkdir(parents=True)\n"
        "write_status(p, 'running', timestep=0)\n"
        "time.sleep(60)\n"
    )
    task = sw.RunTask((sys.executable, "-c", script), path, tmp_path / "g" / "x.log", 100)
    children = sw.Children()
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(sw.run_task(task, children)))
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not read_status(path):
        time.sleep(0.02)
    children.stop(signal.SIGTERM)
    worker.join(60)
    assert results == [
        RunResult(path, "interrupted", "SIGTERM while starting", None, signal.SIGTERM)
    ]
    assert read_status(path)["status"] == "interrupted"
    # Once stopped, no new run starts.
    assert sw.run_task(task, children).status == "not started"
