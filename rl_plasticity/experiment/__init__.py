"""One run: specs -> vec env + SB3 algorithm + callbacks -> a run directory, resumable.

A run is a pure function of (env spec, agent spec, seed, steps). It writes
``<root>/<group>/<env>__<agent>__s<seed>/``: ``config.json``, ``status.json``, ``progress.csv`` and
``tb/`` (the SB3 logger), ``episodes.csv``, ``metrics.csv``, ``eval.csv`` (with evaluation),
``checkpoints/`` and ``final_model.zip``. Everything that can be wrong with the specs is found
before the directory is made.

A checkpoint is taken between rounds of training (at a rollout's start) and holds everything the
run's future depends on: the model with its optimizer, ``_last_obs`` and episode starts, the
plasticity method's and the metrics callback's state, the logger's values not yet written, the
RNG states (torch, numpy, python) and every sub-env's state (MuJoCo's ``mjData`` whole, the env's
``np_random``, the time limit's and Monitor's episode counters, the drift schedule's position and
the physics in effect). A run resumed from a checkpoint (``resume=True``) therefore continues
exactly as the uninterrupted run would have, row for row in every CSV; the CSV files are cut back
to the checkpoint so they get neither a gap nor a duplicated row. Only wall-clock columns
(``time/*`` in progress.csv, which also counts ``time/iterations`` from the resume) differ.

SIGINT or SIGTERM during :func:`train` lets the current rollout and update finish, checkpoints,
writes status ``interrupted`` and returns; a second signal stops at once (the last checkpoint
stays).

Modules: ``rundir`` (the run directory's layout, read and written; needs neither torch nor SB3),
``resolve`` (arguments and specs -> a :class:`ResolvedRun`), ``build`` (the env and the model),
``checkpoint`` (what a resume needs: save and restore), ``callbacks`` (what a run records),
``signals``, ``progress`` (the run's display) and ``run`` (:func:`train`). Every name below is
importable from here; each is imported when first used (PEP 562), so reading run directories
(``rl_plasticity.experiment.rundir``) loads neither torch nor SB3.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module of this package that defines it.
_EXPORTS = {
    "CHECKPOINTS": "rundir",
    "CONFIG_FILE": "rundir",
    "STATUS_FILE": "rundir",
    "RunResult": "rundir",
    "check_same_specs": "rundir",
    "checkpoint_step": "rundir",
    "checkpoints": "rundir",
    "is_finished": "rundir",
    "last_checkpoint": "rundir",
    "read_config": "rundir",
    "read_csv_upto": "rundir",
    "read_status": "rundir",
    "run_dir": "rundir",
    "run_dirs": "rundir",
    "truncate_csv": "rundir",
    "write_status": "rundir",
    "NoCheckpointError": "resolve",
    "ResolvedRun": "resolve",
    "RunExistsError": "resolve",
    "RunSetupError": "build",
    "build_model": "build",
    "make_env_fn": "build",
    "make_vec_env": "build",
    "rollout_steps": "build",
    "round_up": "build",
    "Checkpointer": "checkpoint",
    "ResumableEnv": "checkpoint",
    "Restorer": "checkpoint",
    "EpisodeRecorder": "callbacks",
    "NonFiniteGuard": "callbacks",
    "ResumedCSVOutputFormat": "callbacks",
    "StatusHeartbeat": "callbacks",
    "make_logger": "callbacks",
    "stop_on_signals": "signals",
    "RunProgress": "progress",
    "format_duration": "progress",
    "train": "run",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
