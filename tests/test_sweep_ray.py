"""Sweeps on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``): runs train on their
worker's disk (each node its own TMPDIR), are kept in storage apart from every node's folders, and
a node lost mid-run costs the run at most one checkpoint interval."""

from __future__ import annotations

import csv
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import rl_plasticity.sweep as sw
from rl_plasticity.cli import main
from rl_plasticity.experiment.rundir import read_status
from tests.conftest import TINY_ENV, TINY_PPO, write_spec

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

#: A checkpoint after every 512-step rollout: a lost node costs at most one rollout.
EVERY_ROLLOUT = TINY_PPO.replace("checkpoint_every = 1024", "checkpoint_every = 512")


def _rows(run: Path, name: str) -> list[dict[str, str]]:
    with (run / name).open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def cluster(tmp_path: Path):
    """A head node without CPUs (the driver's) and two worker nodes of one CPU each, every node
    with a TMPDIR of its own (where its workers' run folders go)."""
    for tries_left in (1, 0):
        try:
            head, nodes = _start_cluster(tmp_path)
            break
        except Exception as e:  # Ray gives a node 30 s to come up (ray/_private/node.py)
            if "timed out during startup" not in str(e):
                raise
            ray.shutdown()
            if not tries_left:
                pytest.skip(f"Ray could not start a node on this machine (overloaded?): {e}")
    yield head, nodes
    ray.shutdown()
    head.shutdown()


def _start_cluster(tmp_path: Path) -> tuple[Cluster, dict[str, tuple]]:
    # No dashboard: fewer processes to start.
    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = {}
    try:
        for name in ("node-a", "node-b"):
            folder = tmp_path / name
            folder.mkdir(exist_ok=True)
            nodes[name] = (head.add_node(num_cpus=1, env_vars={"TMPDIR": str(folder)}), folder)
    except Exception:
        head.shutdown()
        raise
    return head, nodes


def _specs(tmp_path: Path) -> tuple[Path, Path]:
    return write_spec(tmp_path, "tiny-cheetah", TINY_ENV), write_spec(
        tmp_path, "tiny-ppo", EVERY_ROLLOUT
    )


def test_runs_land_in_storage_and_the_report_reads_them(tmp_path: Path, cluster, capsys) -> None:
    head, nodes = cluster
    env, agent = _specs(tmp_path)
    storage, driver = tmp_path / "storage", tmp_path / "driver"
    argv = [
        "sweep", "--envs", str(env), "--agents", str(agent), "--seeds", "0-1", "--steps", "1024",
        "--root", str(driver), "--group", "g", "--backend", "ray", "--address", head.address,
        "--storage", f"file://{storage}", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr()
    assert "2 runs: 2 done, 0 failed, 0 skipped" in capsys.readouterr().out
    assert not driver.exists()  # nothing on the driver's own root
    for _, folder in nodes.values():  # each worker's run folder removed once stored
        assert not list(folder.glob("rlp-run-*"))
    runs = sorted(p.parent for p in storage.glob("g/*/config.json"))
    assert [r.name for r in runs] == [f"tiny-cheetah__tiny-ppo__s{s}" for s in (0, 1)]
    for run in runs:
        status = read_status(run)
        assert (status["status"], status["timestep"], status["attempts"]) == ("done", 1024, 1)
        assert status["lost"] == []
        # The checkpointer keeps two; storage mirrors that, not every checkpoint ever taken.
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
            "step_000000000512",
            "step_000000001024",
        ]
        assert [r["timestep"] for r in _rows(run, "episodes.csv")] == ["1000"]
    ray.shutdown()
    # Run again: the finished runs are found in storage and skipped without a task.
    assert main(argv) == 0
    assert "2 runs: 0 done, 0 failed, 2 skipped" in capsys.readouterr().out
    assert main(["report", f"file://{storage}/g", "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "2 runs (2 done)" in text
    assert "lost a worker" not in text


def test_lost_node_costs_one_checkpoint_not_the_run(tmp_path: Path, cluster) -> None:
    head, nodes = cluster
    env, agent = _specs(tmp_path)
    storage = tmp_path / "storage"
    steps = 6144  # 12 rollouts: the node is removed after the first checkpoint is stored
    ray.init(address=head.address, log_to_driver=False)  # here: the sweep runs in a thread
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            sw.sweep, [str(env)], [str(agent)], [0], steps, root=tmp_path / "driver", group="g",
            backend="ray", address=head.address, storage=storage, echo=None,
        )  # fmt: skip
        run = storage / "g" / "tiny-cheetah__tiny-ppo__s0"
        deadline = time.monotonic() + 300
        while not list(run.glob("checkpoints/step_*/state.pt")):
            assert time.monotonic() < deadline and not future.done(), "no checkpoint stored"
            time.sleep(0.05)
        status = read_status(run)
        assert status["status"] == "running"
        lost = next(n for n, (node, _) in nodes.items() if node.node_id == status["node"])
        head.remove_node(nodes[lost][0], allow_graceful=False)
        complete = run.glob("checkpoints/step_*/state.pt")
        stored = max(int(p.parent.name.removeprefix("step_")) for p in complete)
        result = future.result(timeout=600)
    assert [r.status for r in result.results] == ["done"], result.summary()
    status = read_status(run)
    assert (status["status"], status["timestep"], status["attempts"]) == ("done", steps, 2)
    assert len(status["lost"]) == 1 and status["lost"][0]["node"] != status["node"]
    resumed = status["lost"][0]["step"]
    # Resumed mid-run from the last checkpoint stored when the node was removed, or from a later
    # one: the node's worker can outlive its raylet long enough to store one more (seen: 512
    # stored at the removal, resumed from 1,024). Never from an earlier one.
    assert 512 <= stored <= resumed < steps
    # The lost node's folder still holds its run folder; the other node's is cleaned up.
    assert list(nodes[lost][1].glob("rlp-run-*"))
    other = next(n for n in nodes if n != lost)
    assert not list(nodes[other][1].glob("rlp-run-*"))
    # No row missing, none twice: the same rows as the run trained without a break.
    from rl_plasticity.experiment.run import train

    whole = train(env, agent, 0, steps, root=tmp_path / "whole", group="g")
    for name in ("episodes.csv", "metrics.csv"):
        assert _rows(run, name) == _rows(whole.path, name), name
    steps_logged = [int(r["time/total_timesteps"]) for r in _rows(run, "progress.csv")]
    assert steps_logged == list(range(512, steps + 1, 512))
    assert main(["report", str(storage / "g")]) == 0
    text = (storage / "g" / "report" / "report.md").read_text()
    assert "Workers lost: 1, in 1 of 1 runs" in text
    assert f"| `tiny-cheetah__tiny-ppo__s0` | 2 | 1 | {resumed:,} |" in text
