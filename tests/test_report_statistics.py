"""Each statistic of rl_plasticity.report.statistics on constructed data with a known answer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rl_plasticity import report
from rl_plasticity.report import statistics as st
from rl_plasticity.report.tables import change_table
from tests.test_report import make_run


def test_recovery_time_on_a_ramp() -> None:
    # Returns 0, 10, 20, ... at steps 100, 200, ...; a change at step 0; window 1 (no smoothing):
    # the level 45 is first reached by the sample 50 at step 600.
    steps = np.arange(1, 21) * 100.0
    values = (np.arange(1, 21) - 1) * 10.0
    assert st.recovery_time(steps, values, 0.0, 2000.0, 45.0, window=1) == 600.0
    # A moving average of 3: (30 + 40 + 50) / 3 = 40 < 45 at step 600; (40+50+60)/3 = 50 at 700.
    assert st.recovery_time(steps, values, 0.0, 2000.0, 45.0, window=3) == 700.0
    # Only samples after the change count: from step 1000 the first sample (90) is above.
    assert st.recovery_time(steps, values, 950.0, 2000.0, 45.0, window=1) == 50.0


def test_recovery_time_not_reached_is_nan() -> None:
    steps = np.arange(1, 11) * 100.0
    assert math.isnan(st.recovery_time(steps, np.zeros(10), 0.0, 1000.0, 1.0))
    # A level reached only after the phase's end does not count.
    values = np.where(steps > 800, 5.0, 0.0)
    assert math.isnan(st.recovery_time(steps, values, 0.0, 800.0, 1.0, window=1))


def test_mean_gap_of_lines_and_levels() -> None:
    steps = np.linspace(0.0, 10.0, 11)
    # The curve t against the level 0 over [0, 10]: area 50, per step 5.
    assert st.mean_gap(steps, steps, 0.0, 0.0, 10.0) == pytest.approx(5.0)
    # Against the curve 2t: area -50 -> -5; against itself 0.
    assert st.mean_gap(steps, steps, 2 * steps, 0.0, 10.0) == pytest.approx(-5.0)
    assert st.mean_gap(steps, steps, steps, 0.0, 10.0) == 0.0
    # Over [5, 10] only: mean of t is 7.5, minus the level 2.5 -> 5.
    assert st.mean_gap(steps, steps, 2.5, 5.0, 10.0) == pytest.approx(5.0)


def test_probability_of_improvement_known_values() -> None:
    above, below = [np.array([3.0, 4.0])], [np.array([1.0, 2.0])]
    assert st.probability_of_improvement(above, below) == 1.0
    assert st.probability_of_improvement(below, above) == 0.0
    assert st.probability_of_improvement(above, above) == 0.5
    # Task 1: x = (1, 3) vs y = (2): one of two pairs greater -> 0.5; task 2: all greater -> 1.
    x = [np.array([1.0, 3.0]), np.array([5.0])]
    y = [np.array([2.0]), np.array([0.0, 1.0])]
    assert st.probability_of_improvement(x, y) == 0.75


def test_performance_profile_counts_runs_above_each_threshold() -> None:
    taus = np.array([0.0, 0.5, 1.0])
    # Task 1: scores 0.2, 0.6, 1.0, 0.9 -> above 0: 4/4, above 0.5: 3/4, above 1: 0.
    # Task 2: scores 0.1, 0.3 -> 1, 0, 0. Each task weighs one half.
    profile = st.performance_profile([np.array([0.2, 0.6, 1.0, 0.9]), np.array([0.1, 0.3])], taus)
    np.testing.assert_allclose(profile, [1.0, 0.375, 0.0])


def test_min_max_normalize_per_task() -> None:
    a, b = st.min_max_normalize([np.array([0.0, 10.0]), np.array([5.0])])
    np.testing.assert_allclose(a, [0.0, 1.0])
    np.testing.assert_allclose(b, [0.5])


def test_stratified_bootstrap_never_mixes_tasks() -> None:
    # Task 0 holds only 1s and task 1 only 0s: any resample within tasks keeps their means at 1
    # and 0, so the difference is exactly 1; a bootstrap that mixed tasks would vary.
    samples = [[np.ones(4), np.zeros(4)]]
    low, high = st.stratified_bootstrap(samples, lambda t: t[0].mean() - t[1].mean(), 200)
    assert (low, high) == (1.0, 1.0)


def test_stratified_bootstrap_interval_holds_the_mean_and_narrows_with_seeds() -> None:
    rng = np.random.default_rng(0)

    def width(n: int) -> float:
        tasks = [[rng.normal(0.0, 1.0, n), rng.normal(5.0, 1.0, n)]]
        low, high = st.stratified_bootstrap(tasks, lambda t: np.mean(np.concatenate(t)), 500)
        assert low <= np.mean(np.concatenate(tasks[0])) <= high
        return high - low

    assert width(100) < width(5)


def test_mean_with_band_is_the_seed_range_below_five_seeds() -> None:
    curves = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mean, low, high = st.mean_with_band(curves)
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_array_equal(low, [0.0, 1.0])
    np.testing.assert_array_equal(high, [4.0, 8.0])
    five = np.vstack([curves, curves[:2]])
    _, low5, high5 = st.mean_with_band(five)
    assert np.all(low5 > five.min(axis=0)) and np.all(high5 < five.max(axis=0))


def test_change_table_on_runs_with_known_recovery(tmp_path: Path) -> None:
    # make_run: return 100(p+1) + 10s + i in episode i of phase p, episodes of 100 steps, changes
    # at steps 1000 and 2000. Phase 0 ends (last 2 episodes) at 108.5 for seed 0; phase 1 starts
    # at 200 > 108.5: recovered with the first 5-episode moving average... whose first value is
    # the first episode alone (200), 100 steps after the change.
    make_run(tmp_path, "ppo", 0)
    make_run(tmp_path, "ppo-reset", 0, offset_per_phase=50.0, method="reset")
    runs = report.load_runs(tmp_path)
    table = change_table(runs, "ppo-reset")
    first = table["ppo"][1]
    assert first["recovery_own"].iqm == 100.0 and first["recovered_own"] == "1/1"
    # The reset agent ends phase 1 at 258.5: ppo's moving average (200, 200.5, 201, ...) never
    # gets there within the phase.
    assert math.isnan(first["recovery_reset"].iqm) and first["recovered_reset"] == "0/1"
    # Phase 1 of ppo: returns 200 ... 209 against the reset agent's 250 ... 259: gap -50.
    assert first["gap_reset"].iqm == pytest.approx(-50.0)
    # Against its own level 108.5: the phase's returns interpolate 200 -> 209 over the phase
    # (first sample held before it), a mean of about 204.7 -> gap about 96.
    assert 95.0 < first["gap_own"].iqm < 97.0


def test_a_last_phase_is_judged_by_its_steps_not_its_episodes() -> None:
    # Phase 0: 10 episodes of 100 steps; phase 1: 3 episodes of 300 steps (an agent that learned
    # to stay up longer) cover 900 steps: kept, where counting episodes (3 of 10) drops it.
    steps = np.concatenate([np.arange(1, 11) * 100.0, 1000 + np.arange(1, 4) * 300.0])
    phases = np.array([0.0] * 10 + [1.0] * 3)
    returns = np.array([1.0] * 10 + [2.0] * 3)
    assert st.end_of_phase_values(phases, returns, 0.2, steps) == {0: 1.0, 1: 2.0}
    assert st.end_of_phase_values(phases, returns, 0.2) == {0: 1.0}
    # A last phase of one 100-step episode is left out either way.
    steps, phases = np.append(steps, 2000.0), np.append(phases, 2.0)
    returns = np.append(returns, 9.0)
    assert st.end_of_phase_values(phases, returns, 0.2, steps) == {0: 1.0, 1: 2.0}
