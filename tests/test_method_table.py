"""The method comparison bench: every method is in it, every setting builds, the statistics."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from bench.method_table import TUNING_SEEDS, choose, job_key
from bench.method_table_report import summarize
from bench.method_table_rows import DIGITS, ENTRIES, REGRESSION, Entry, learner_for
from rl_plasticity.plasticity.protocol import registered_methods
from rl_plasticity.problems.continual import build_learner


def test_every_registered_method_has_a_row() -> None:
    in_table = {e.method for e in ENTRIES}
    # Built-in methods only: other tests register toy methods.
    builtin = {n for n, c in registered_methods().items() if c.__module__.startswith("rl_plast")}
    assert len(builtin) >= 19 and builtin <= in_table
    assert {"backprop", "linear", "fresh network"} <= {e.name for e in ENTRIES}


@pytest.mark.parametrize("problem", [DIGITS, REGRESSION], ids=["digits", "regression"])
def test_every_grid_point_builds_a_learner(problem) -> None:
    for entry in ENTRIES:
        for point in entry.grid:
            learner = learner_for(entry, point, problem)
            _, _, method = build_learner(learner, problem.num_inputs, problem.num_outputs, seed=0)
            assert (method is None) == (entry.method is None), entry.name
            if method is not None:
                method.detach()


def test_reset_periods_are_counted_in_tasks() -> None:
    entry = next(e for e in ENTRIES if e.name == "layer_reset")
    learner = learner_for(entry, {"every_tasks": 5}, DIGITS)
    assert learner.settings["every_updates"] == 5 * 113
    assert job_key(entry, {"every_tasks": 5}, 0, 100, DIGITS) != job_key(
        entry, {"every_tasks": 5}, 0, 100, REGRESSION
    )


def test_a_run_has_the_same_key_in_a_worker_process() -> None:
    # Workers get a pickled copy of the problem; the key must not depend on object identity.
    entry = ENTRIES[0]
    for problem in (DIGITS, REGRESSION):
        copy = pickle.loads(pickle.dumps(problem))
        assert job_key(entry, {}, 0, 10, copy) == job_key(entry, {}, 0, 10, problem)


def test_the_setting_with_the_lowest_late_tuning_error_is_chosen(tmp_path) -> None:
    entry = Entry("l2", None, grid=[{"weight_decay": 1e-4}, {"weight_decay": 1e-3}])
    # 1e-4: better early, worse in the second half; 1e-3: the other way round.
    curves = {1e-4: [0.1, 0.1, 0.5, 0.5], 1e-3: [0.9, 0.9, 0.3, 0.3]}
    for point in entry.grid:
        for seed in TUNING_SEEDS:
            key = job_key(entry, point, seed, 4, DIGITS)
            np.save(tmp_path / f"{key}.npy", np.asarray(curves[point["weight_decay"]]))
    assert choose(entry, 4, str(tmp_path), DIGITS) == {"weight_decay": 1e-3}
    assert json.dumps(choose(entry, 4, str(tmp_path), DIGITS))


def test_summary_ratios_are_per_seed_against_the_references() -> None:
    tasks = 10
    fresh = np.full((3, tasks), 0.4)
    linear = np.full((3, tasks), 0.8)
    backprop = np.tile(np.linspace(0.1, 0.2, tasks), (3, 1))
    lines = summarize(
        {"backprop": backprop, "fresh network": fresh, "linear": linear},
        {"backprop": {}},
    )
    row = next(line for line in lines if line.startswith("| backprop"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2] == "0.100 ± 0.000"  # early: the first tenth (one task)
    assert cells[3] == "0.200 ± 0.000"  # late: the last tenth
    assert cells[4] == "0.100 ± 0.000"  # late - early
    assert cells[5] == "0.50 ± 0.00"  # 0.2 / 0.4
    assert cells[6] == "0.25 ± 0.00"  # 0.2 / 0.8


def test_fair_rows_have_their_own_references() -> None:
    rows = {e.name: e for e in ENTRIES}
    for name in ("crelu", "fourier", "crelu (matched)", "fourier (matched)"):
        assert rows[name].fresh in rows and rows[rows[name].fresh].method == "reset"
        fresh = learner_for(rows[rows[name].fresh], {}, DIGITS)
        assert fresh.architecture == name.split()[0]
    for name, entry in rows.items():
        if name.endswith("(adam)"):
            assert entry.fresh == "fresh network (adam)"
            assert learner_for(entry, entry.grid[0], DIGITS).optimizer == "adam"
    # the matched form has (at least) the base network's parameter count
    base = build_learner(learner_for(rows["backprop"], {}, DIGITS), 64, 10, seed=0)[0]
    matched = build_learner(learner_for(rows["crelu (matched)"], {}, DIGITS), 64, 10, seed=0)[0]
    fresh = build_learner(learner_for(rows["fresh crelu (matched)"], {}, DIGITS), 64, 10, seed=0)[0]
    count = [sum(p.numel() for p in n.parameters()) for n in (base, matched, fresh)]
    assert count[0] <= count[1] == count[2] < 1.05 * count[0]


def test_tiny_table_writes_per_seed_rows_and_paired_differences(tmp_path) -> None:
    from bench.method_table import main

    out = tmp_path / "t.md"
    rows = "backprop,fresh network,crelu,fresh crelu"
    common = ["--tasks", "2", "--seeds", "2", "--cache", str(tmp_path / "c"), "--only", rows]
    main([*common, "--jobs", "1", "--out", str(out)])
    text = out.read_text()
    assert "| fresh crelu | - |" in text and "- backprop - fresh network, " in text
    assert "- crelu - fresh crelu, " in text
    csv = out.with_suffix(".per_seed.csv").read_text().splitlines()
    assert len(csv) == 1 + 4 * 2 and csv[1].startswith("backprop,,0,")
    again = tmp_path / "again.md"  # resumed from the cache: nothing runs, the same table
    main([*common, "--only-cached", "--out", str(again)])
    assert again.read_text() == text


def test_population_jobs_write_the_single_runs_cache_files(tmp_path) -> None:
    from bench.method_table import as_populations, run_all, run_job

    backprop, cbp = ENTRIES[0], next(e for e in ENTRIES if e.name == "cbp")
    point = {"replacement_rate": 1e-4}
    jobs = [(backprop, {}, s, 2, str(tmp_path / "p"), DIGITS) for s in (0, 1, 2)]
    jobs += [(cbp, point, s, 2, str(tmp_path / "p"), DIGITS) for s in (0, 1)]
    merged = as_populations(jobs)  # backprop's seeds become one job; CBP's stay single
    assert [(job[0].name, job[2]) for job in merged] == [
        ("backprop", (0, 1, 2)),
        ("cbp", 0),
        ("cbp", 1),
    ]
    (tmp_path / "p").mkdir()
    run_all(jobs[:3], 1, population=True)
    (tmp_path / "s").mkdir()
    for seed in (0, 1, 2):
        run_job((backprop, {}, seed, 2, str(tmp_path / "s"), DIGITS))
        key = job_key(backprop, {}, seed, 2, DIGITS)
        population, single = (np.load(tmp_path / d / f"{key}.npy") for d in ("p", "s"))
        # Batched products round differently: at most one of a task's 1,797 images may tip.
        np.testing.assert_allclose(population, single, atol=1.5 / 1797)
    assert as_populations(jobs[:3]) == []  # cached now: nothing left to run
