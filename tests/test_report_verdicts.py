"""The pre-registered test: end-of-phase windows in steps, t-intervals, paired verdicts, studies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rl_plasticity.errors import ConfigError
from rl_plasticity.report.statistics import end_of_phase_by_steps, slope, t_interval
from rl_plasticity.report.verdicts import comparisons, verdict_lines
from rl_plasticity.specs.study import StudyTest, load_study_spec
from tests.conftest import write_spec


def test_t_interval_matches_a_hand_computed_one():
    ci = t_interval([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd 1.2910, sem 0.6455, t(0.975, 3) = 3.1824 -> half width 2.0543
    assert ci.mean == pytest.approx(2.5)
    assert ci.high - ci.mean == pytest.approx(3.18245 * 1.29099 / 2, rel=1e-4)
    assert ci.sign == 1
    assert t_interval([-1.0, 1.0]).sign == 0
    assert t_interval([-3.0, -2.0, -4.0]).sign == -1
    one = t_interval([5.0, math.nan])
    assert one.n == 1 and math.isnan(one.low) and one.sign == 0
    assert slope([1, 2, 3], [2.0, 4.0, 6.0]) == pytest.approx(2.0)


def test_the_end_of_a_phase_is_a_window_of_its_steps_not_of_its_episodes():
    # phase 0: episodes ending at 10..100 (returns 1..10); phase 1: one long episode and 3 short
    steps = np.array([*range(10, 101, 10), 150, 180, 190, 200], dtype=float)
    phases = np.array([0] * 10 + [1] * 4, dtype=float)
    returns = np.array([*range(1, 11), 100.0, 7.0, 8.0, 9.0])
    ends = end_of_phase_by_steps(phases, returns, steps, fraction=0.2)
    assert ends[0] == pytest.approx(np.mean([9.0, 10.0]))  # ends in (80, 100]
    assert ends[1] == pytest.approx(np.mean([8.0, 9.0]))  # phase 1 spans (100, 200]: (180, 200]
    short = np.concatenate([steps, [205.0]])
    assert 2 not in end_of_phase_by_steps(
        np.concatenate([phases, [2.0]]), np.concatenate([returns, [1.0]]), short
    )


def _returns(offset: float, seeds=range(6), phases=range(12), noise=1.0) -> dict:
    rng = np.random.default_rng(0)
    return {
        s: {p: 100.0 + offset * (p > 0) + noise * rng.standard_normal() for p in phases}
        for s in seeds
    }


def test_verdicts_read_the_paired_intervals():
    test = StudyTest(
        reference="reset",
        baseline="ppo",
        controls={"fix": "ppo", "bad": "ppo", "same": "ppo"},
        last_phases=5,
    )
    returns = {
        "reset": _returns(0.0),
        "ppo": _returns(-30.0),
        "fix": _returns(0.0),
        "bad": _returns(-60.0),
        "same": _returns(-30.0),
    }
    found = comparisons(returns, test)
    ppo = next(c for c in found if c.agent == "ppo" and c.kind == "reference")
    assert ppo.phases == (7, 8, 9, 10, 11)
    assert ppo.mean.mean == pytest.approx(-30.0, abs=2.0)
    lines = verdict_lines(found, test)
    assert lines[0].startswith("ppo: loss of plasticity: shown at 95%")
    assert "fix: fix holds: yes" in "\n".join(lines)
    assert "bad: fix holds: no, it hurts" in "\n".join(lines)
    same = next(line for line in lines if line.startswith("same:"))
    assert "fix holds: no at" in same
    # identical agents: no loss shown
    test_same = StudyTest(reference="reset", baseline="ppo", last_phases=5)
    lines = verdict_lines(
        comparisons({"reset": _returns(0), "ppo": _returns(0)}, test_same), test_same
    )
    assert "not shown" in lines[0]


def test_a_study_spec_names_its_test_and_refuses_what_is_not_a_test(tmp_path):
    shipped = load_study_spec("permuted-hopper")
    assert shipped.test.reference in shipped.agents and shipped.test.last_phases >= 2
    text = """\
envs = ["study-permuted-hopper"]
agents = ["perm-ppo", "perm-ppo-reset"]
steps = 1000
[test]
reference = "perm-ppo-reset"
baseline = "perm-ppo"
last_phases = {k}
{extra}
"""
    path = write_spec(tmp_path, "s", text.format(k=1, extra=""))
    with pytest.raises(ConfigError, match=r"s\.toml.*test\.last_phases.*no single phase"):
        load_study_spec(path)
    path = write_spec(tmp_path, "s", text.format(k=3, extra='[test.controls]\nx = "perm-ppo"'))
    with pytest.raises(ConfigError, match=r"test\.controls\.x"):
        load_study_spec(path)
