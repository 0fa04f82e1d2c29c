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
``resolve`` (arguments and specs -> a ``ResolvedRun``), ``build`` (the env and the model),
``checkpoint`` (what a resume needs: save and restore), ``recording`` (what a run records),
``signals``, ``progress`` (the run's display) and ``run`` (``train``). Import each name from its
module (``from rl_plasticity.experiment.run import train``): this file imports nothing, so reading
run directories loads neither torch nor SB3.
"""
