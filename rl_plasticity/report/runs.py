"""Run directories, read and sorted into what may be compared.

A run directory is any folder holding a ``config.json`` (laid out as ``experiment/rundir.py``
says). Runs are pooled over seeds only within a *row*: the same group, the same env spec content
and the same agent spec content (``config.json`` holds both resolved specs). Two spec files with
the same name but different settings are two rows, labelled apart by a short hash of their
content; runs of several groups are labelled ``group/agent``. The same row and seed found twice
is a duplicate: one run is kept (finished before unfinished, then the longest) and the others
are listed, never pooled.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import (
    EPISODES_CSV,
    METRICS_CSV,
    PROGRESS_CSV,
    read_config,
    read_status,
    run_dirs,
)

#: Statuses of a run that will not go on by itself (anything else is "running").
FINISHED = ("done", "failed", "interrupted")


@dataclass
class Run:
    """One run directory, read.

    :param path: the run directory
    :param env: environment name (``config.json`` ``env_name``)
    :param agent: agent name (``config.json`` ``agent_name``)
    :param seed: the run's seed
    :param config: ``config.json`` as a dict
    :param status: ``done``, ``failed``, ``interrupted``, ``running`` or ``missing`` (no
        ``status.json``)
    :param reason: why it failed, from ``status.json``
    :param episodes: ``episodes.csv`` columns (``timestep``, ``return``, ``length``, ``phase``)
    :param metrics: ``metrics.csv`` columns
    :param progress: ``progress.csv`` columns (the SB3 logger's, with ``method/...`` counters)
    :param lost: for a run of a Ray sweep, one ``{"step", "node"}`` per worker it lost (the step
        it was resumed from), from ``status.json``
    :param attempts: how many workers started it (Ray sweeps; 0 when not recorded)
    :param label: the row's name in figures and tables (set by :func:`label_rows`)
    :param env_label: the environment's name in the report (set by :func:`label_rows`)
    """

    path: Path
    env: str
    agent: str
    seed: int
    config: dict
    status: str
    reason: str | None
    episodes: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    progress: dict[str, np.ndarray] = field(default_factory=dict)
    lost: list[dict] = field(default_factory=list)
    attempts: int = 0
    label: str = ""
    env_label: str = ""

    @property
    def group(self) -> str:
        """The run's group (``config.json`` ``group``, else its parent folder's name)."""
        return str(self.config.get("group") or self.path.parent.name)

    @property
    def method(self) -> str:
        """The plasticity method's name from the resolved agent spec (``none`` when none; ``a+b``
        for several methods in one agent)."""
        method = self.config.get("agent", {}).get("method", {})
        tables = method if isinstance(method, list) else [method]
        names = [str(t.get("name", "none")) for t in tables if isinstance(t, dict)]
        return "+".join(n for n in names if n != "none") or "none"

    @property
    def is_reset_agent(self) -> bool:
        """Whether the agent is a reset reference: its method is ``reset`` (a fresh network at
        every change), whatever the spec is called."""
        return self.method == "reset"

    @property
    def env_hash(self) -> str:
        """Short hash of the resolved env spec (its file path left out)."""
        return content_hash(self.config.get("env", {}), self.env)

    @property
    def agent_hash(self) -> str:
        """Short hash of the resolved agent spec (its file path left out)."""
        return content_hash(self.config.get("agent", {}), self.agent)

    @property
    def row(self) -> tuple[str, str, str, str, str]:
        """What may be pooled over seeds: (group, env, env hash, agent, agent hash)."""
        return (self.group, self.env, self.env_hash, self.agent, self.agent_hash)

    @property
    def steps(self) -> int:
        """Steps the run was asked for (``config.json`` ``steps``)."""
        return int(self.config.get("steps", 0))

    @property
    def last_step(self) -> float:
        """The last step any of its episodes ended at (0 without episodes)."""
        steps = self.episodes.get("timestep")
        return float(np.nanmax(steps)) if steps is not None and steps.size else 0.0


def content_hash(spec: dict, name: str) -> str:
    """Six hex digits identifying a resolved spec's settings (not where its file lies).

    :param spec: the spec as ``config.json`` holds it
    :param name: the spec's name (part of its identity)
    """
    settings = {k: v for k, v in spec.items() if k != "path"} if isinstance(spec, dict) else spec
    text = json.dumps([name, settings], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    """Read a numeric CSV file into float columns; missing file -> ``{}``.

    Empty or non-numeric cells become nan; a row with the wrong number of fields (a line cut off
    by a killed run) is skipped.

    :param path: the CSV file
    :return: column name -> values
    """
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return {}
        rows = [row for row in reader if len(row) == len(header)]
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(header):
        columns[name] = np.array([_to_float(row[i]) for row in rows], dtype=float)
    return columns


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def load_runs(run_root: Path) -> list[Run]:
    """Read every run directory below ``run_root`` (any folder with a ``config.json``).

    :param run_root: a run directory, a group folder, or a folder of groups
    :return: the runs, sorted by (env, agent, group, seed, path), labelled (:func:`label_rows`)
    """
    runs = []
    for path in run_dirs(run_root):
        config = read_config(path)
        status = read_status(path)
        progress = read_csv_columns(path / PROGRESS_CSV)
        if "time/total_timesteps" in progress:
            progress["timestep"] = progress["time/total_timesteps"]
        runs.append(
            Run(
                path=path,
                env=str(config.get("env_name", "?")),
                agent=str(config.get("agent_name", "?")),
                seed=int(config.get("seed", 0)),
                config=config,
                status=str(status.get("status", "missing")),
                reason=status.get("reason"),
                episodes=read_csv_columns(path / EPISODES_CSV),
                metrics=read_csv_columns(path / METRICS_CSV),
                progress=progress,
                lost=list(status.get("lost", [])),
                attempts=int(status.get("attempts", 0)),
            )
        )
    runs.sort(key=lambda r: (r.env, r.agent, r.group, r.seed, str(r.path)))
    label_rows(runs)
    return runs


def select_runs(
    runs: list[Run],
    groups: Iterable[str] | None = None,
    envs: Iterable[str] | None = None,
    agents: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
) -> list[Run]:
    """The runs whose group, env, agent and seed are among those given (None: any).

    :raises ConfigError: when a group, env or agent name given matches no run (a typo would
        otherwise empty the report silently), or when no run has any of the seeds
    """
    chosen = runs
    for key, wanted, attribute in (
        ("--groups", groups, "group"),
        ("--envs", envs, "env"),
        ("--agents", agents, "agent"),
        ("--seeds", seeds, "seed"),
    ):
        if wanted is None:
            continue
        wanted = list(wanted)
        present = {getattr(r, attribute) for r in runs}
        missing = [w for w in wanted if w not in present]
        if attribute == "seed" and len(missing) < len(wanted):
            missing = []  # a seed range may reach past the seeds run
        if missing:
            allowed = ", ".join(str(p) for p in sorted(present)) or "none"
            raise ConfigError(key, ",".join(map(str, missing)), f"runs found have: {allowed}")
        chosen = [r for r in chosen if getattr(r, attribute) in wanted]
    return chosen


def label_rows(runs: list[Run]) -> None:
    """Name every run's row and environment for the report (sets ``label`` and ``env_label``).

    A row is its agent's name, ``group/agent`` when the runs span several groups, with
    ``#hash`` added when one agent name stands for several spec contents; an environment is its
    name, with ``#hash`` when one name stands for several contents.

    :param runs: all runs of the report
    """
    agent_hashes: dict[str, set[str]] = {}
    env_hashes: dict[str, set[str]] = {}
    for run in runs:
        agent_hashes.setdefault(run.agent, set()).add(run.agent_hash)
        env_hashes.setdefault(run.env, set()).add(run.env_hash)
    several_groups = len({r.group for r in runs}) > 1
    for run in runs:
        label = f"{run.group}/{run.agent}" if several_groups else run.agent
        if len(agent_hashes[run.agent]) > 1:
            label += f" #{run.agent_hash}"
        run.label = label
        run.env_label = run.env + (f" #{run.env_hash}" if len(env_hashes[run.env]) > 1 else "")


def drop_duplicates(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Keep one run per (row, seed); say which were left out.

    Kept: a finished (``done``) run before others, then the one with the most steps, then the
    first path.

    :param runs: runs, labelled
    :return: the kept runs (same order) and one warning per duplicate
    """
    by_key: dict[tuple, list[Run]] = {}
    for run in runs:
        by_key.setdefault((run.row, run.seed), []).append(run)
    kept_ids = set()
    warnings = []
    for (_, seed), same in by_key.items():
        ranked = sorted(same, key=lambda r: (r.status != "done", -r.last_step, str(r.path)))
        kept_ids.add(id(ranked[0]))
        for other in ranked[1:]:
            warnings.append(
                f"duplicate: {ranked[0].env_label} / {ranked[0].label} seed {seed} twice; "
                f"used {ranked[0].path} ({ranked[0].last_step:,.0f} steps), left out "
                f"{other.path} ({other.last_step:,.0f} steps)"
            )
    return [r for r in runs if id(r) in kept_ids], warnings


def length_warnings(runs: list[Run]) -> list[str]:
    """One warning per environment whose finished runs were asked for unequal numbers of steps.

    :param runs: finished runs, labelled
    """
    warnings = []
    for env, env_runs in by_attribute(runs, "env_label").items():
        lengths: dict[int, list[str]] = {}
        for run in env_runs:
            lengths.setdefault(run.steps, []).append(f"{run.label} s{run.seed}")
        if len(lengths) > 1:
            parts = "; ".join(
                f"{steps:,} steps: {', '.join(who)}" for steps, who in lengths.items()
            )
            warnings.append(f"unequal lengths in {env}: {parts}")
    return warnings


def identical_warnings(runs: list[Run]) -> list[str]:
    """One warning per pair of rows of an environment whose runs are the same, seed by seed.

    With paired seeds two agents differ only where their specs differ (``DESIGN.md``, "Paired
    experiments"), so a method that never acted (CBP whose maturity threshold is beyond the run)
    gives its control's runs exactly: the report says so rather than showing two equal rows as
    two results.

    :param runs: the runs the report uses, labelled
    :return: e.g. ``"identical runs in slippery-ant: ppo and ppo-cbp (seeds 0, 1) ..."``
    """
    warnings = []
    for env, env_runs in by_attribute(runs, "env_label").items():
        rows = {
            label: {r.seed: r.episodes for r in row}
            for label, row in by_attribute(env_runs, "label").items()
        }
        labels = list(rows)
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                seeds = sorted(set(rows[a]) & set(rows[b]))
                if seeds and all(_same_episodes(rows[a][s], rows[b][s]) for s in seeds):
                    warnings.append(
                        f"identical runs in {env}: {a} and {b} (seeds "
                        f"{', '.join(map(str, seeds))}) ended the same episodes with the same "
                        "returns; with paired seeds this means their difference never acted "
                        "(e.g. a method whose setting is beyond the run's length)"
                    )
    return warnings


def _same_episodes(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two runs' ``episodes.csv`` have equal steps and returns (and at least one)."""
    keys = ("timestep", "return")
    if any(k not in a or k not in b for k in keys) or a["timestep"].size == 0:
        return False
    return all(np.array_equal(a[k], b[k], equal_nan=True) for k in keys)


def by_attribute(runs: Iterable[Run], attribute: str) -> dict[str, list[Run]]:
    """Runs grouped by one attribute's value, in first-seen order.

    :param runs: the runs
    :param attribute: e.g. ``label`` or ``env_label``
    """
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(getattr(run, attribute), []).append(run)
    return groups
