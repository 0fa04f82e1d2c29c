"""When the physics changed in a run, and what the drifting parameters were over time.

The exact change step comes from the run's own records: ``episodes.csv`` labels every episode
with the phase it ran in. With ``apply_at = "episode_end"`` (the default) a due change takes
effect at the reset after the last episode of the old phase, so the change step is that
episode's end; with ``apply_at = "immediate"`` it is the schedule's change point (the first
multiple of a piecewise schedule's ``every`` in the new phase).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rl_plasticity.report.runs import Run


def _nonstationary(run: Run) -> dict[str, Any] | None:
    table = run.config.get("env", {}).get("nonstationary")
    return table if isinstance(table, dict) else None


def drift_modes(run: Run) -> dict[str, str]:
    """The mode of each drifting parameter of a run (the permutations have none).

    :param run: the run (its env spec in ``config.json``)
    :return: parameter -> ``"scale"`` or ``"absolute"``
    """
    table = _nonstationary(run) or {}
    return {d["parameter"]: d["mode"] for d in table.get("drift", []) if "mode" in d}


def schedule_change_points(table: dict[str, Any], n: int) -> list[int]:
    """The first ``n`` change points of the piecewise schedules of a ``[nonstationary]`` table.

    :param table: the resolved table (``config.json`` ``env.nonstationary``)
    :param n: how many
    :return: steps, increasing (fewer than ``n`` only without piecewise schedules)
    """
    periods = [
        int(d["schedule"]["every"])
        for d in table.get("drift", [])
        if d.get("schedule", {}).get("kind") == "piecewise"
    ]
    points: set[int] = set()
    for every in periods:
        points.update(every * m for m in range(1, n + 1))
    return sorted(points)[:n]


def change_steps(run: Run) -> list[float]:
    """The step of each physics change the run went through, in order.

    :param run: a run with ``episodes.csv``
    :return: one step per phase reached after the first
    """
    phases = run.episodes.get("phase")
    steps = run.episodes.get("timestep")
    if phases is None or steps is None or phases.size == 0:
        return []
    reached = np.maximum.accumulate(np.nan_to_num(phases, nan=0.0))
    n = int(reached[-1])
    table = _nonstationary(run) or {}
    nominal = schedule_change_points(table, n) if table.get("apply_at") == "immediate" else []
    out = []
    for k in range(1, n + 1):
        first = int(np.argmax(reached >= k))
        if len(nominal) >= k:
            out.append(float(nominal[k - 1]))
        else:
            out.append(float(steps[first - 1]) if first > 0 else 0.0)
    return out


def phase_boundaries(runs: list[Run]) -> list[float]:
    """Change steps of a set of runs: per change, the median over runs of :func:`change_steps`.

    :param runs: runs of one environment
    :return: one step per change, in order
    """
    per_change: dict[int, list[float]] = {}
    for run in runs:
        for k, step in enumerate(change_steps(run)):
            per_change.setdefault(k, []).append(step)
    return [float(np.median(per_change[k])) for k in sorted(per_change)]


def drift_values(run: Run, steps: np.ndarray) -> dict[str, np.ndarray]:
    """The value of every drifting parameter at ``steps``, as the run's environment applied it.

    Piecewise values switch at the run's change steps; linear and sinusoid schedules are
    evaluated at multiples of the table's ``update_every``, as the wrapper evaluates them. A
    vector value (gravity) gives one curve per component (``gravity_x`` ...).

    :param run: the run (its env spec in ``config.json``)
    :param steps: where to evaluate
    :return: context key -> values (empty for a stationary environment)
    """
    table = _nonstationary(run)
    if not table or not table.get("drift"):
        return {}
    from rl_plasticity.nonstationary.config import context_keys
    from rl_plasticity.nonstationary.schedules import Piecewise, schedule_from_dict

    changes = np.asarray(change_steps(run))
    update_every = int(table.get("update_every", 1000))
    seed = table.get("schedule_seed", 0)
    seed = run.seed if seed == "run" else int(seed)  # "run": each run's seed draws its schedule
    out: dict[str, np.ndarray] = {}
    for i, drift in enumerate(table["drift"]):
        schedule = schedule_from_dict(drift["schedule"])
        if isinstance(schedule, Piecewise):
            nominal = np.array(schedule_change_points({"drift": [drift]}, changes.size + 1))
            # The segment in effect: the number of the run's changes at or before the step that
            # belong to this schedule's change points.
            phase = np.searchsorted(changes, steps, side="right")
            owned = np.isin(schedule_change_points(table, changes.size), nominal)
            segment = np.concatenate([[0], np.cumsum(owned)])[phase]
            values = [schedule.segment_value((seed, i), int(k)) for k in segment]
        else:
            values = [schedule.at((seed, i), int(s - s % update_every)) for s in steps]
        keys = context_keys(drift["parameter"], values[0]) if values else [drift["parameter"]]
        array = np.array(values, dtype=float).reshape(len(values), -1)
        for j, key in enumerate(keys):
            out[key] = array[:, j]
    return out
