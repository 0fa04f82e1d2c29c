"""`rlp train` end to end, and every kind of bad input giving exit code 2 and nothing on disk."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rl_plasticity.cli import main
from tests.conftest import TINY_ENV, TINY_PPO, rlp_train, write_spec


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_train_writes_every_file(tmp_path, tiny_env, tiny_agent, capsys):
    root = tmp_path / "runs"
    argv = ["train", "--env", str(tiny_env), "--agent", str(tiny_agent), "--seed", "3"]
    code = main([*argv, "--steps", "3072", "--root", str(root), "--group", "g", "--no-progress"])
    assert code == 0
    run = root / "g" / "tiny-cheetah__tiny-ppo__s3"
    assert capsys.readouterr().out.strip().endswith(str(run))

    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done" and status["timestep"] == 3072
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 3 and config["steps"] == 3072
    assert config["env"]["env_id"] == "HalfCheetah-v5"
    assert config["agent"]["hyperparameters"]["n_steps"] == 512
    assert {"stable-baselines3", "torch", "mujoco", "gymnasium"} <= set(config["versions"])
    assert "git_commit" in config

    progress = _rows(run / "progress.csv")
    assert [int(r["time/total_timesteps"]) for r in progress] == [512 * i for i in range(1, 7)]
    assert list((run / "tb").glob("events.out.tfevents.*"))

    episodes = _rows(run / "episodes.csv")  # HalfCheetah episodes are 1000 steps long
    assert [int(r["timestep"]) for r in episodes] == [1000, 2000, 3000]
    assert [int(r["phase"]) for r in episodes] == [0, 1, 1]  # friction changed at 1500

    metrics = _rows(run / "metrics.csv")
    assert [int(r["timestep"]) for r in metrics] == [512, 1024, 2048, 3072]  # first, then every
    assert "phase" in metrics[0] and "friction" in metrics[0]
    assert any(k.startswith("plasticity/policy/") for k in metrics[0])

    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps[-1] == "step_000000003072"
    with zipfile.ZipFile(run / "final_model.zip") as z:
        assert "policy.optimizer.pth" in z.namelist()


def test_existing_run_is_not_overwritten(tmp_path, tiny_env, tiny_agent, capsys):
    root = tmp_path / "runs"
    argv = ["train", "--env", str(tiny_env), "--agent", str(tiny_agent), "--steps", "512"]
    argv += ["--root", str(root), "--no-progress"]
    assert main(argv) == 0
    before = (root / "default" / "tiny-cheetah__tiny-ppo__s0" / "status.json").read_text()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--resume" in err
    after = (root / "default" / "tiny-cheetah__tiny-ppo__s0" / "status.json").read_text()
    assert before == after


BAD_AGENTS = {
    "unknown key": (TINY_PPO.replace("device =", "devise ="), ["devise", "allowed keys"]),
    "wrong type": (TINY_PPO.replace("n_steps = 512", 'n_steps = "512"'), ["n_steps", "'512'"]),
    "unknown algorithm": (
        TINY_PPO.replace('algorithm = "PPO"', 'algorithm = "PPG"'),
        ["algorithm", "'PPG'", "PPO, A2C, SAC, TD3, DQN"],
    ),
    "unknown hyperparameter": (
        TINY_PPO.replace("n_epochs = 2", "n_epoch = 2"),
        ["hyperparameters.n_epoch", "n_epochs"],
    ),
    "unknown method": (
        TINY_PPO + '\n[method]\nname = "cpb"\n',
        ["method.name", "'cpb'", "cbp"],
    ),
    "bad method value": (
        TINY_PPO + '\n[method]\nname = "cbp"\nreplacement_rate = -1.0\n',
        ["method.replacement_rate", "-1.0"],
    ),
    "unknown metrics setting": (
        TINY_PPO.replace("\nevery = 1024", "\nevry = 1024"),
        ["metrics.evry", "every"],
    ),
}

BAD_ENVS = {
    "unknown env id": (
        TINY_ENV.replace("HalfCheetah-v5", "HalfCheeta-v5"),
        ["env_id", "HalfCheeta-v5", "HalfCheetah-v5"],
    ),
    "unknown parameter": (
        TINY_ENV.replace('parameter = "friction"', 'parameter = "fricton"'),
        ["nonstationary", "fricton", "friction"],
    ),
    "low above high": (
        TINY_ENV.replace("low = 0.1", "low = 3.0"),
        ["nonstationary", "low", "3.0"],
    ),
    "not toml": (TINY_ENV.replace("[nonstationary]", "[nonstationary"), ["not valid TOML"]),
}


def _assert_usage_error(argv, root: Path, needles, capsys) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for needle in needles:
        assert needle in lines[0]
    assert not root.exists()


@pytest.mark.parametrize("case", sorted(BAD_AGENTS))
def test_bad_agent_spec_exits_2_and_writes_nothing(case, tmp_path, tiny_env, capsys):
    text, needles = BAD_AGENTS[case]
    agent = write_spec(tmp_path, "bad-agent", text)
    root = tmp_path / "runs"
    argv = ["train", "--env", str(tiny_env), "--agent", str(agent), "--steps", "512"]
    _assert_usage_error([*argv, "--root", str(root)], root, [str(agent), *needles], capsys)


@pytest.mark.parametrize("case", sorted(BAD_ENVS))
def test_bad_env_spec_exits_2_and_writes_nothing(case, tmp_path, tiny_agent, capsys):
    text, needles = BAD_ENVS[case]
    env = write_spec(tmp_path, "bad-env", text)
    root = tmp_path / "runs"
    argv = ["train", "--env", str(env), "--agent", str(tiny_agent), "--steps", "512"]
    _assert_usage_error([*argv, "--root", str(root)], root, [str(env), *needles], capsys)


def test_missing_spec_file_and_unknown_name(tmp_path, tiny_agent, capsys):
    root = tmp_path / "runs"
    missing = str(tmp_path / "nope.toml")
    argv = ["train", "--env", missing, "--agent", str(tiny_agent), "--steps", "512"]
    _assert_usage_error([*argv, "--root", str(root)], root, ["nope.toml", "no such file"], capsys)
    argv = ["train", "--env", "slipery-ant", "--agent", str(tiny_agent), "--steps", "512"]
    _assert_usage_error([*argv, "--root", str(root)], root, ["slipery-ant", "slippery-ant"], capsys)


def test_envs_and_agents_list_every_shipped_spec(capsys):
    from rl_plasticity.specs import available_specs

    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "INVALID" not in out
    for name in available_specs("envs"):
        assert name in out
    assert main(["agents"]) == 0
    out = capsys.readouterr().out
    assert "INVALID" not in out
    for name in ("ppo", "ppo-ns-adam", "ppo-l2"):
        assert f"\n{name} " in f"\n{out}"


@pytest.mark.parametrize("command", ["envs", "agents"])
def test_a_closed_pipe_ends_the_listing_quietly(command):
    """``rlp envs | head``: the reader is gone before rlp writes; no traceback, exit 141."""
    child = subprocess.Popen(
        [sys.executable, "-m", "rl_plasticity.cli", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # before the child has imported anything, so its first write fails
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=120) == 128 + signal.SIGPIPE
    assert stderr == ""


def test_a_typo_in_a_spec_name_suggests_the_name(capsys):
    argv = ["train", "--env", "slippery-ant", "--agent", "ppo-cpb", "--steps", "100"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlp: error: agent: got 'ppo-cpb'; a spec name (one of: ")
    assert err.strip().endswith("or a .toml path (did you mean ppo-cbp?)")


def test_a_runs_warning_is_one_plain_line(tmp_path, tiny_env):
    """CBP's maturity beyond a short run: ``rlp: warning: CBP: ...``, not Python's file and line."""
    agent = write_spec(tmp_path, "cbp", TINY_PPO + '\n[method]\nname = "cbp"\n')
    child = rlp_train(tiny_env, agent, 512, tmp_path)
    assert child.returncode == 0, child.stderr
    lines = [line for line in child.stderr.splitlines() if "CBP" in line]
    assert len(lines) == 1
    assert lines[0].startswith("rlp: warning: CBP: maturity_threshold=10000 optimizer steps")
    assert "sys.exit" not in child.stderr and "UserWarning" not in child.stderr


def test_envs_show_prints_the_schedule(capsys):
    assert main(["envs", "--show", "slippery-ant"]) == 0
    out = capsys.readouterr().out
    assert "Ant-v5" in out and "friction" in out and "2000000" in out.replace(",", "")
