"""Run storage without Ray: what an upload leaves in storage, restoring from it, the options."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rl_plasticity.cli import main
from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import read_status, write_status
from rl_plasticity.sweep import Storage, load_runtime_env


def _run(local: Path, steps: tuple[int, ...]) -> None:
    """A run directory with a CSV, a status and complete checkpoints at ``steps``."""
    local.mkdir(parents=True, exist_ok=True)
    (local / "config.json").write_text("{}\n")
    (local / "episodes.csv").write_text("timestep,return\n" + "".join(f"{s},1.0\n" for s in steps))
    write_status(local, "running", timestep=steps[-1])
    for step in steps:
        folder = local / "checkpoints" / f"step_{step:012d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.zip").write_bytes(b"model")
        (folder / "state.pt").write_bytes(b"state")


@pytest.mark.parametrize("scheme", ["path", "memory"])
def test_upload_mirrors_the_run_and_download_restores_it(tmp_path: Path, scheme: str) -> None:
    # memory:// stands in for an object store (no directories, only keys).
    where = tmp_path / "storage" if scheme == "path" else f"memory://{uuid.uuid4().hex}"
    storage = Storage(where)
    assert (storage.local_path is not None) == (scheme == "path")
    local = tmp_path / "work" / "g" / "run"
    _run(local, (512, 1024))
    storage.upload(local, "g/run")
    # The run goes on: a new checkpoint, the oldest removed (the checkpointer keeps two).
    _run(local, (512, 1024, 1536))
    (local / "checkpoints" / "step_000000000512" / "state.pt").unlink()
    storage.upload(local, "g/run")
    back = tmp_path / "back"
    assert storage.download("g/run", back)
    names = sorted(p.relative_to(back).as_posix() for p in back.rglob("*") if p.is_file())
    assert names == [
        "checkpoints/step_000000001024/model.zip",
        "checkpoints/step_000000001024/state.pt",
        "checkpoints/step_000000001536/model.zip",
        "checkpoints/step_000000001536/state.pt",
        "config.json",
        "episodes.csv",
        "status.json",
    ]
    assert (back / "episodes.csv").read_text().splitlines()[-1] == "1536,1.0"
    assert not storage.download("g/other", tmp_path / "none")


def test_a_checkpoint_cut_off_mid_upload_is_sent_again(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "storage")
    local = tmp_path / "work" / "g" / "run"
    _run(local, (512,))
    # As if the last node died while copying: model.zip there, state.pt (written last) not.
    partial = tmp_path / "storage" / "g" / "run" / "checkpoints" / "step_000000000512"
    partial.mkdir(parents=True)
    (partial / "model.zip").write_bytes(b"mod")
    storage.upload(local, "g/run")
    assert (partial / "model.zip").read_bytes() == b"model"
    assert (partial / "state.pt").is_file()


def test_token_tells_a_storage_the_workers_do_not_share(tmp_path: Path) -> None:
    token = Storage(tmp_path / "driver").write_token("g")
    Storage(tmp_path / "driver").check_token("g", token)
    with pytest.raises(ConfigError, match=r"storage-token\.json"):
        Storage(tmp_path / "a-worker-disk").check_token("g", token)


def test_status_rewrites_keep_the_record_of_attempts(tmp_path: Path) -> None:
    write_status(tmp_path, "starting", attempts=2, lost=[{"step": 512, "node": "n1"}], node="n2")
    write_status(tmp_path, "running", timestep=1024)
    write_status(tmp_path, "done", timestep=2048)
    status = read_status(tmp_path)
    assert (status["status"], status["timestep"], status["attempts"]) == ("done", 2048, 2)
    assert status["lost"] == [{"step": 512, "node": "n1"}]


def test_a_superseded_attempt_does_not_overwrite_the_retry(tmp_path: Path) -> None:
    from rl_plasticity.sweep.worker import StorageSync, SupersededError

    storage = Storage(tmp_path / "storage")
    first, retry = tmp_path / "node-a" / "g" / "run", tmp_path / "node-b" / "g" / "run"
    _run(first, (512,))
    write_status(first, "running", timestep=512, attempts=1)
    storage.upload(first, "g/run")
    stale = StorageSync(storage, first, "g/run", attempt=1)
    stale.check_current()  # nobody has taken the run over: uploads go on
    # The node is taken for lost; the retry restores the run and records attempt 2 in storage.
    storage.download("g/run", retry)
    write_status(retry, "running", timestep=512, attempts=2)
    storage.put(retry / "status.json", "g/run/status.json")
    # The first worker outlived its node's removal and reaches its next checkpoint.
    _run(first, (512, 1024))
    with pytest.raises(SupersededError, match="attempt 1 superseded by attempt 2"):
        stale._on_rollout_start()
    assert not (tmp_path / "storage" / "g" / "run" / "checkpoints" / "step_000000001024").exists()
    assert read_status(tmp_path / "storage" / "g" / "run")["attempts"] == 2
    StorageSync(storage, retry, "g/run", attempt=2).check_current()


def test_runtime_env_files(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text("env_vars:\n  OMP_NUM_THREADS: '2'\npip: [tqdm]\n")
    assert load_runtime_env(tmp_path / "env.yaml") == {
        "env_vars": {"OMP_NUM_THREADS": "2"},
        "pip": ["tqdm"],
    }
    (tmp_path / "env.json").write_text('{"working_dir": "."}')
    assert load_runtime_env(tmp_path / "env.json") == {"working_dir": "."}
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="mapping of runtime_env fields, not list"):
        load_runtime_env(tmp_path / "list.json")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--storage", "/tmp/x"], "storage"),
        (["--max-retries", "2"], "max_retries"),
        (["--backend", "ray", "--runtime-env", "missing.yaml"], "runtime-env"),
        (["--backend", "ray", "--max-retries", "-1"], "max-retries"),
    ],
)
def test_bad_cluster_options_exit_2_with_one_line(extra, message, capsys) -> None:
    argv = ["sweep", "--envs", "fast-slippery-cheetah", "--agents", "ppo", "--steps", "2048"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
