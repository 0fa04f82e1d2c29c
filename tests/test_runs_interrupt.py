"""Signals during `rlp train`: checkpoint, status `interrupted`, one line, exit 130/143; resume
continues bit for bit as the uninterrupted run; --resume without a checkpoint is refused."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from rl_plasticity.cli import main
from rl_plasticity.evaluation import EvalSettings
from rl_plasticity.experiment.run import train
from rl_plasticity.experiment.rundir import checkpoints, read_status
from tests.conftest import TINY_ENV, TINY_PPO, write_spec

# Checkpoints every rollout (512 steps); HalfCheetah's episodes are 1000 steps, so the checkpoints
# at 512 and 1024 fall inside an episode. CBP's state and an evaluation ride along.
EXACT_PPO = TINY_PPO.replace("checkpoint_every = 1024", "checkpoint_every = 512") + (
    '\n[method]\nname = "cbp"\nreplacement_rate = 5e-2\nmaturity_threshold = 4\n'
)


class SignalAt(BaseCallback):
    """Send ``signum`` to this process once ``num_timesteps`` reaches ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        super().__init__()
        self.step, self.signum, self.sent = step, signum, False

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)
        return True


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        # Wall-clock columns (time/*) are the only ones allowed to differ.
        return [
            {k: v for k, v in r.items() if not k.startswith("time/") or k.endswith("timesteps")}
            for r in csv.DictReader(f)
        ]


def _parameters(run: Path) -> dict[str, torch.Tensor]:
    return PPO.load(run / "final_model.zip", device="cpu").policy.state_dict()


def test_interrupted_run_resumes_bit_for_bit(tmp_path, tiny_env):
    agent = write_spec(tmp_path, "exact-ppo", EXACT_PPO)
    kwargs = {"root": tmp_path / "runs", "evaluation": EvalSettings(every=1024, episodes=1)}
    whole = train(tiny_env, agent, 5, 1536, group="whole", **kwargs)
    assert whole.status == "done"

    # SIGINT in the middle of the second rollout: it and its update finish, then a checkpoint.
    stop = SignalAt(700, signal.SIGINT)
    cut = train(tiny_env, agent, 5, 1536, group="cut", callbacks=[stop], **kwargs)
    assert (cut.status, cut.timestep, cut.signum) == ("interrupted", 1024, signal.SIGINT)
    status = read_status(cut.path)
    assert (status["status"], status["timestep"]) == ("interrupted", 1024)
    assert checkpoints(cut.path / "checkpoints")[-1].name == "step_000000001024"
    # Nothing past the checkpoint is kept: the resume writes it again.
    assert [int(r["timestep"]) for r in _rows(cut.path / "episodes.csv")] == [1000]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    notes: list[str] = []
    resumed = train(tiny_env, agent, 5, 1536, group="cut", resume=True, echo=notes.append, **kwargs)
    assert resumed.status == "done"
    assert notes == [f"resuming {cut.path} from step 1,024 of 1,536"]
    for name in ("episodes.csv", "metrics.csv", "progress.csv", "eval.csv"):
        assert _rows(cut.path / name) == _rows(whole.path / name), name
    logged = _rows(whole.path / "progress.csv")
    assert len(logged) == 3
    assert int(logged[-1]["method/pi1/replaced_total"]) > 0  # CBP acted: its state mattered
    assert [r["timestep"] for r in _rows(whole.path / "metrics.csv")] == ["512", "1024", "1536"]
    ours, theirs = _parameters(cut.path), _parameters(whole.path)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_resume_with_a_physics_change_pending_at_the_checkpoint(tmp_path):
    # The checkpoint at 1,536 is inside the second episode, after the change due at 1,500,
    # which waits for the episode's end at 2,000.
    env = write_spec(tmp_path, "later", TINY_ENV.replace('"immediate"', '"episode_end"'))
    agent = write_spec(tmp_path, "exact-ppo", EXACT_PPO)
    root = tmp_path / "runs"
    whole = train(env, agent, 1, 2560, root=root, group="whole")
    cut = train(env, agent, 1, 2560, root=root, group="cut", callbacks=[SignalAt(1100, 2)])
    assert cut.timestep == 1536
    assert train(env, agent, 1, 2560, root=root, group="cut", resume=True).status == "done"
    for name in ("episodes.csv", "metrics.csv", "progress.csv"):
        assert _rows(cut.path / name) == _rows(whole.path / name), name
    phases = [r["phase"] for r in _rows(whole.path / "episodes.csv")]
    assert phases == ["0", "0"]  # the second episode ran on phase 0's physics to its end
    assert _rows(whole.path / "metrics.csv")[-1]["phase"] == "1"


def _train_argv(env: Path, agent: Path, root: Path, steps: str) -> list[str]:
    argv = ["train", "--env", str(env), "--agent", str(agent), "--steps", steps]
    return [*argv, "--root", str(root), "--no-progress"]


def test_sigterm_checkpoints_prints_one_line_and_exits_143(tmp_path, tiny_env, tiny_agent):
    root = tmp_path / "runs"
    argv = _train_argv(tiny_env, tiny_agent, root, "8192")
    run = root / "default" / "tiny-cheetah__tiny-ppo__s0"
    child = subprocess.Popen(
        [sys.executable, "-m", "rl_plasticity.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not checkpoints(run / "checkpoints"):
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    status = read_status(run)
    assert status["status"] == "interrupted" and status["reason"] == "SIGTERM"
    step = status["timestep"]
    assert 1024 <= step < 8192 and step % 512 == 0
    assert checkpoints(run / "checkpoints")[-1].name == f"step_{step:012d}"
    lines = [line for line in err.splitlines() if "Warning" not in line and "model =" not in line]
    assert lines == [
        f"rlp: interrupted (SIGTERM) at step {step:,}, checkpointed; resume with: rlp "
        + " ".join(argv)
        + " --resume"
    ]
    assert out == ""
    assert main([*argv, "--resume"]) == 0
    assert read_status(run)["timestep"] == 8192


def test_resume_without_a_checkpoint_is_refused_and_restart_starts_over(
    tmp_path, tiny_env, tiny_agent, capsys
):
    root = tmp_path / "runs"
    argv = _train_argv(tiny_env, tiny_agent, root, "512")
    run = root / "default" / "tiny-cheetah__tiny-ppo__s0"
    assert main(argv) == 0
    # As if killed before its first checkpoint.
    for folder in checkpoints(run / "checkpoints"):
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    (run / "status.json").write_text(json.dumps({"status": "running", "timestep": 300}))
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"rlp: error: {run} has no checkpoint to resume from (status: running at step 300); "
        "--restart trains it again from step 0"
    ]
    assert main([*argv, "--restart"]) == 0
    assert f"restarting {run} from step 0" in capsys.readouterr().err
    assert read_status(run)["status"] == "done"
    assert main([*argv, "--resume", "--restart"]) == 2


@pytest.mark.parametrize(
    ("steps", "trained", "note"),
    [("1000", 1024, "steps 1,000 rounded up to 1,024"), ("1e3", 1024, "rounded up"),
     ("1_024", 1024, None)],
)  # fmt: skip
def test_steps_are_whole_rollouts_and_rounding_is_said(
    tmp_path, tiny_env, tiny_agent, capsys, steps, trained, note
):
    root = tmp_path / "runs"
    assert main(_train_argv(tiny_env, tiny_agent, root, steps)) == 0
    status = read_status(root / "default" / "tiny-cheetah__tiny-ppo__s0")
    assert (status["timestep"], status["steps"]) == (trained, trained)
    err = capsys.readouterr().err
    if note is None:
        assert "rounded" not in err
    else:
        assert note in err and "whole rollouts of 512 steps" in err


SAC_AGENT = """\
algorithm = "SAC"
device = "cpu"
checkpoint_every = 200

[hyperparameters]
learning_starts = 100
batch_size = 32
buffer_size = 10000

[policy_kwargs]
net_arch = [32, 32]

[metrics]
every = 150
"""


#: Two sub-envs in worker processes (n_envs goes before the first table).
SUBPROC_PPO = TINY_PPO.replace(
    "[hyperparameters]", 'n_envs = 2\nvec_env = "subproc"\n\n[hyperparameters]'
)


@pytest.mark.slow  # about 30 s on 2 cores
@pytest.mark.parametrize(
    ("text", "steps", "at"),
    [(SAC_AGENT, 600, 250), (SUBPROC_PPO, 3072, 1300)],
    ids=["sac-replay-buffer", "ppo-subproc"],
)
def test_exact_resume_off_policy_and_in_worker_processes(tmp_path, tiny_env, text, steps, at):
    agent = write_spec(tmp_path, "agent", text)
    root = tmp_path / "runs"
    whole = train(tiny_env, agent, 0, steps, root=root, group="whole")
    cut = train(tiny_env, agent, 0, steps, root=root, group="cut", callbacks=[SignalAt(at, 2)])
    assert cut.status == "interrupted" and cut.timestep < steps
    assert train(tiny_env, agent, 0, steps, root=root, group="cut", resume=True).status == "done"
    for name in ("episodes.csv", "metrics.csv", "progress.csv"):
        assert _rows(cut.path / name) == _rows(whole.path / name), name
    assert _rows(whole.path / "metrics.csv")


def test_checkpoint_minutes_adds_timed_checkpoints(tmp_path, tiny_env):
    rare = TINY_PPO.replace("checkpoint_every = 1024", "checkpoint_every = 1_000_000_000")
    agent = write_spec(tmp_path, "rare", rare)
    root = tmp_path / "runs"
    plain = train(tiny_env, agent, 0, 2048, root=root, group="plain")
    assert [p.name for p in checkpoints(plain.path / "checkpoints")] == ["step_000000002048"]
    # A checkpoint at every rollout start, as each is more than a moment after the last one.
    timed = train(tiny_env, agent, 0, 2048, root=root, group="timed", checkpoint_minutes=1e-9)
    names = [p.name for p in checkpoints(timed.path / "checkpoints")]
    assert names == ["step_000000001536", "step_000000002048"]  # the last two are kept


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, tiny_env):
    agent = write_spec(tmp_path, "exact-ppo", EXACT_PPO)
    twice = [SignalAt(700, signal.SIGINT), SignalAt(710, signal.SIGINT)]
    result = train(tiny_env, agent, 0, 1536, root=tmp_path / "runs", callbacks=twice)
    assert (result.status, result.timestep, result.signum) == ("interrupted", 512, signal.SIGINT)
    status = read_status(result.path)
    assert status["status"] == "interrupted" and status["timestep"] == 512
    assert status["reason"] == "SIGINT, stopped at once (last: the checkpoint at step 512)"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = train(tiny_env, agent, 0, 1536, root=tmp_path / "runs", resume=True)
    assert resumed.status == "done"


@pytest.mark.parametrize("how", ["single run", "population", "one after another"])
def test_a_signal_while_the_final_model_is_saved_lets_the_run_finish(
    tmp_path, tiny_env, monkeypatch, how
):
    """Ctrl-C as training ends (a sweep passes it on to every run): the first signal is noted,
    not raised inside torch.save, so the final model and checkpoint are written whole and the
    run is done, not failed with no checkpoint (a single run, a population's members, and seeds
    that cannot form a population trained in turn)."""
    from stable_baselines3.common.base_class import BaseAlgorithm

    from rl_plasticity.experiment.population import train_seeds

    text = TINY_PPO.replace("checkpoint_every = 1024", "")
    if how != "one after another":
        text = text.replace('algorithm = "PPO"', 'algorithm = "FastPPO"')
    agent = write_spec(tmp_path, "tiny", text)
    save = BaseAlgorithm.save
    sent = []

    def save_with_a_signal(self, path, *args, **kwargs):
        if Path(path).name == "final_model.zip" and not sent:
            sent.append(path)
            os.kill(os.getpid(), signal.SIGINT)
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(BaseAlgorithm, "save", save_with_a_signal)
    root = tmp_path / "runs"
    if how == "single run":
        results = [train(tiny_env, agent, 0, 512, root=root)]
    else:
        results = train_seeds(tiny_env, agent, [0, 1], 512, root=root)
    assert sent
    for result in results:
        assert result.status == "done"
        assert read_status(result.path)["status"] == "done"
        PPO.load(result.path / "final_model.zip")
        assert checkpoints(result.path / "checkpoints")
