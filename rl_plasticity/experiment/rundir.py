"""The run directory, one place for its layout: what a run writes where, and reading it back.

``<root>/<group>/<env>__<agent>__s<seed>/`` holds ``config.json`` (the resolved specs, versions,
git commit), ``status.json`` (``running``, ``done``, ``failed`` or ``interrupted``, with the step
and a reason), ``progress.csv`` and ``tb/`` (the SB3 logger), ``episodes.csv``, ``metrics.csv``,
``eval.csv`` (with evaluation), ``error.log`` (when training raised), ``checkpoints/step_<12
digits>/`` and ``final_model.zip``. The experiment writes it, the sweep and the report read it.
Only the standard library is needed here (no torch, no SB3).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_plasticity.errors import ConfigError

if TYPE_CHECKING:
    from rl_plasticity.specs import AgentSpec, EnvSpec

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
CHECKPOINTS = "checkpoints"
PROGRESS_CSV = "progress.csv"
EPISODES_CSV = "episodes.csv"
METRICS_CSV = "metrics.csv"
EVAL_CSV = "eval.csv"
ERROR_LOG = "error.log"
TENSORBOARD = "tb"
FINAL_MODEL = "final_model.zip"
#: The CSVs with a ``timestep`` column, cut back to the checkpoint when a run resumes.
STEP_CSVS = (EPISODES_CSV, METRICS_CSV, EVAL_CSV)


@dataclass
class RunResult:
    """What became of one run.

    :param path: the run directory
    :param status: ``done``, ``failed``, ``skipped`` (already done) or ``interrupted`` (stopped by
        a signal after a checkpoint; resumable)
    :param reason: why it failed or stopped, or None
    :param timestep: the step it stopped at (interrupted: its last checkpoint's), when known
    :param signum: the signal number that interrupted it, when known
    """

    path: Path
    status: str
    reason: str | None = None
    timestep: int | None = None
    signum: int | None = None


def run_dir(root: Path, group: str, env_name: str, agent_name: str, seed: int) -> Path:
    """The directory of one run: ``root/group/<env>__<agent>__s<seed>``."""
    return Path(root) / group / f"{env_name}__{agent_name}__s{seed}"


def run_dirs(root: Path) -> list[Path]:
    """Every run directory below ``root`` (any folder holding a ``config.json``), sorted.

    :param root: a run directory, a group folder, or a folder of groups
    """
    return [config.parent for config in sorted(Path(root).rglob(CONFIG_FILE))]


def is_started(path: Path) -> bool:
    """Whether a run was started in ``path`` (its ``config.json`` exists)."""
    return (Path(path) / CONFIG_FILE).is_file()


def read_config(path: Path) -> dict[str, Any]:
    """The run's ``config.json`` as a dict."""
    return json.loads((Path(path) / CONFIG_FILE).read_text())


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Write the run's ``config.json``.

    :param path: the run directory
    :param config: JSON-ready values (others are written as text)
    """
    (Path(path) / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n")


def read_status(path: Path) -> dict[str, Any]:
    """The run's ``status.json`` as a dict (empty if there is none)."""
    file = Path(path) / STATUS_FILE
    if not file.is_file():
        return {}
    return json.loads(file.read_text())


def is_finished(path: Path, steps: int) -> bool:
    """Whether the run at ``path`` is done with at least ``steps`` environment steps."""
    status = read_status(path)
    return status.get("status") == "done" and status.get("timestep", 0) >= steps


#: Fields of ``status.json`` that a rewrite keeps unless it gives them anew: a sweep's record of
#: the workers that ran the run (``attempts``: how many started it; ``lost``: the step each lost
#: one's run was resumed from; ``node``: the current one's).
KEPT_STATUS_FIELDS = ("attempts", "lost", "node")


def write_status(path: Path, status: str, **fields: Any) -> None:
    """Replace the run's ``status.json`` atomically (keeping :data:`KEPT_STATUS_FIELDS`)."""
    kept = {k: v for k, v in read_status(path).items() if k in KEPT_STATUS_FIELDS}
    data = {"status": status, "reason": None, "updated": time.time(), **kept, **fields}
    tmp = Path(path) / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, Path(path) / STATUS_FILE)


def checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoint folders in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if (p / "state.pt").is_file())


def checkpoint_step(folder: Path) -> int:
    """The timestep a checkpoint folder was taken at."""
    return int(folder.name.removeprefix("step_"))


def last_checkpoint(path: Path) -> Path | None:
    """The run's latest complete checkpoint folder, or None.

    :param path: the run directory
    """
    found = checkpoints(Path(path) / CHECKPOINTS)
    return found[-1] if found else None


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    # A JSON round trip (tuples become lists) without the file's location, which may differ.
    return {k: v for k, v in json.loads(json.dumps(spec, default=str)).items() if k != "path"}


def check_same_specs(path: Path, env: EnvSpec, agent: AgentSpec) -> None:
    """Refuse to continue or reuse the run at ``path`` with specs other than the ones it ran.

    A run directory without ``config.json`` (never started) passes.

    :raises ConfigError: naming the spec that differs
    """
    if not is_started(path):
        return
    config = read_config(path)
    for key, spec in (("env", env), ("agent", agent)):
        if _comparable(config[key]) != _comparable(spec.to_dict()):
            raise ConfigError(
                key,
                spec.name,
                f"differs from the spec {path.name} ran with (its config.json); "
                "use the same spec, or another --group for the new one",
            )


def record_steps(path: Path, steps: int) -> None:
    """Record a resumed run's (possibly new) total steps in its ``config.json``."""
    config = read_config(path)
    if config["steps"] != steps:
        config["steps"] = steps
        write_config(path, config)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parents[2]  # the checkout holding rl_plasticity/
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str]:
    names = ("rl_plasticity", "stable-baselines3", "gymnasium", "mujoco", "torch", "numpy")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def new_config(
    env: EnvSpec,
    agent: AgentSpec,
    group: str,
    seed: int,
    steps: int,
    overrides: Mapping[str, Any],
    evaluation: dict[str, Any] | None,
    device: str,
) -> dict[str, Any]:
    """What a new run's ``config.json`` holds: its names, the resolved specs, the package
    versions and the git commit.

    :param env: the env spec
    :param agent: the agent spec (with its overrides applied)
    :param group: the run's group
    :param seed: the run's seed
    :param steps: total environment steps
    :param overrides: the ``--set`` values by key
    :param evaluation: the evaluation settings as a dict, or None
    :param device: the torch device asked for
    """
    return {
        "env_name": env.name,
        "agent_name": agent.name,
        "group": group,
        "seed": seed,
        "steps": steps,
        "env": env.to_dict(),
        "agent": agent.to_dict(),
        "overrides": dict(overrides),
        "evaluation": evaluation,
        "device": device,
        "versions": _versions(),
        "git_commit": _git_commit(),
    }


def clear_outputs(path: Path) -> None:
    """Remove what a run wrote while training (CSVs, error log, TensorBoard), for a new start."""
    for name in (PROGRESS_CSV, *STEP_CSVS, ERROR_LOG):
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / TENSORBOARD, ignore_errors=True)


def read_csv_upto(path: Path, max_step: int, column: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header of a CSV and its rows whose ``column`` is <= ``max_step`` (empty if no file)."""
    if not path.is_file() or path.stat().st_size == 0:
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r.get(column) and float(r[column]) <= max_step]
        return list(reader.fieldnames or []), rows


def truncate_csv(path: Path, max_step: int, column: str) -> None:
    """Keep only the rows of a CSV whose ``column`` is <= ``max_step``."""
    fields, rows = read_csv_upto(path, max_step, column)
    if not fields:
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def cut_csvs(path: Path, step: int) -> None:
    """Drop the rows after ``step`` from the run's CSV files (a resume rewrites them)."""
    for name in STEP_CSVS:
        truncate_csv(path / name, step, "timestep")
