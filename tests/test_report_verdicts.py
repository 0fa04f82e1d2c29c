"""The pre-registered test: end-of-phase windows in steps, t-intervals, paired verdicts, studies."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from rl_plasticity.errors import ConfigError
from rl_plasticity.report import write_report
from rl_plasticity.report.paired import end_of_phase_from_evaluations, holm, t_test_p
from rl_plasticity.report.secondaries import cycle_comparisons
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


def test_holm_adjusts_by_hand():
    # sorted: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.035 (x1, but never below the previous: 0.04)
    assert holm([0.035, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.035, 0.5, 0.2, 0.1]) == pytest.approx([0.14, 0.5, 0.4, 0.3])
    adjusted = holm([0.3, math.nan])
    assert adjusted[0] == pytest.approx(0.3) and math.isnan(adjusted[1])


def test_t_test_p_agrees_with_the_interval():
    values = [0.5, 1.5, 1.0, 2.0, -0.2]
    ci, p = t_interval(values, 0.95), t_test_p(values)
    assert (ci.low > 0) == (p < 0.05)
    # at level 1 - p the interval just touches 0: a little narrower excludes it, wider holds it
    assert t_interval(values, 1 - p - 1e-6).low > 0 > t_interval(values, 1 - p + 1e-6).low
    assert math.isnan(t_test_p([1.0]))


def test_the_end_of_a_phase_in_evaluations_is_its_evaluation_when_the_next_begins():
    # every 50 steps, phases of 100, one earlier phase evaluated: at 100 and 200 the phase just
    # ended; at 150 and 250 the phase before the current one again (what it kept: not its end)
    timesteps = np.array([50, 100, 100, 150, 150, 200, 200, 250, 250], dtype=float)
    phases = np.array([0, 1, 0, 1, 0, 2, 1, 2, 1], dtype=float)
    returns = np.array([10, 5, 20, 15, 3, 4, 30, 12, 2], dtype=float)
    ends = end_of_phase_from_evaluations(timesteps, phases, returns)
    assert ends == {0: 20.0, 1: 30.0}  # phase 2 never ended: left out
    # without earlier-phase rows: the last evaluation inside the phase
    current = phases[[0, 1, 3, 5, 7]], timesteps[[0, 1, 3, 5, 7]], returns[[0, 1, 3, 5, 7]]
    assert end_of_phase_from_evaluations(current[1], current[0], current[2]) == {0: 10.0, 1: 15.0}


def test_log_ratio_verdicts_are_holm_corrected_and_say_so():
    test = StudyTest(
        reference="reset",
        baseline="ppo",
        controls={f"fix{i}": "ppo" for i in range(4)},
        last_phases=3,
        statistic="log_ratio",
    )
    base = _returns(0.0, seeds=range(8), phases=range(4), noise=10.0)
    returns = {"reset": base, "ppo": base}
    # fix0 above ppo by these per-seed log-ratios: mean 0.07375, t-test p = 0.0392 alone
    shift = dict(enumerate([0.2, -0.03, 0.15, 0.02, 0.1, 0.12, -0.02, 0.05]))
    returns["fix0"] = {
        s: {p: v * math.exp(shift[s]) for p, v in ph.items()} for s, ph in base.items()
    }
    for i in (1, 2, 3):  # equal to ppo: p = 1
        returns[f"fix{i}"] = base
    found = comparisons(returns, test)
    fix0 = next(c for c in found if c.agent == "fix0" and c.kind == "control")
    assert fix0.mean.mean == pytest.approx(np.mean(list(shift.values())))
    assert fix0.p == pytest.approx(0.0392, abs=5e-4)
    assert fix0.p_adjusted == pytest.approx(4 * fix0.p)  # Holm: the smallest of 4 p-values x 4
    line = next(v for v in verdict_lines(found, test) if v.startswith("fix0"))
    assert "fix holds: no at 95%, Holm over 4 comparisons" in line and "Holm-adjusted" in line
    assert "mean log-ratio fix0 / ppo over phases 1-3" in line
    uncorrected = replace(test, correction="none")
    line = next(
        v for v in verdict_lines(comparisons(returns, uncorrected), uncorrected) if "fix0" in v
    )
    assert "fix holds: yes at 95%, uncorrected" in line


def test_robust_secondaries_count_seeds_and_phases():
    reset = {s: {p: 100.0 for p in range(3)} for s in range(3)}
    # seed 0 far above in one phase (an outlier carries the mean), below in two; seeds 1, 2 below
    ppo = {
        0: {0: 100.0, 1: 90.0, 2: 900.0},
        1: {0: 100.0, 1: 90.0, 2: 80.0},
        2: {0: 100.0, 1: 95.0, 2: 85.0},
    }
    ppo[0][0] = 80.0
    test = StudyTest(reference="reset", baseline="ppo", first_phase=0, last_phases=3)
    (c,) = comparisons({"reset": reset, "ppo": ppo}, test)
    assert c.mean.mean > 0  # the arithmetic mean is carried by one seed-phase
    s = c.secondary
    assert s.median_difference == pytest.approx(-10.0)
    assert (s.seeds_below, s.seeds_above) == (3, 0)
    assert (s.cells_below, s.cells_above) == (6, 1)  # two seed-phases tie at 0
    assert s.log_ratio.n == 3 and s.non_positive == 0


def test_each_agent_against_itself_on_the_same_physics_a_cycle_later():
    test = StudyTest(reference="reset", baseline="ppo", cycle=3, statistic="log_ratio")
    # 2 cycles of 3 phases; the second cycle is half the first on every physics
    ppo = {s: {p: 200.0 if p < 3 else 100.0 for p in range(6)} for s in range(4)}
    reset = {s: {p: 150.0 for p in range(7)} for s in range(4)}
    cycles = cycle_comparisons({"ppo": ppo, "reset": reset}, test)
    ci, label = cycles["ppo"]
    assert ci.mean == pytest.approx(math.log(0.5)) and label == "phases 3-5 vs 0-2"
    assert cycles["reset"][0].mean == pytest.approx(0.0)  # 7 phases: 2 complete cycles used


def test_study_specs_declare_metric_statistic_correction_and_evaluation(tmp_path):
    friction = load_study_spec("friction-hopper")
    assert friction.test.correction == "holm" and friction.test.statistic == "log_ratio"
    assert friction.evaluation["phases"] >= 1
    assert load_study_spec("permuted-hopper").test.correction == "holm"  # the default
    text = """\
envs = ["study-permuted-hopper"]
agents = ["perm-ppo", "perm-ppo-reset"]
steps = 1000
{evaluation}
[test]
reference = "perm-ppo-reset"
baseline = "perm-ppo"
{extra}
"""
    cases = [
        ("", 'correction = "bonferroni"', r"test\.correction.*bonferroni.*holm, none"),
        ("", 'statistic = "ratio"', r"test\.statistic.*difference, log_ratio"),
        ("", "cycle = 1", r"test\.cycle.*>= 2"),
        ("", 'metric = "evaluation"', r"evaluation.*phases >= 1"),
        ("[evaluation]\nepisodes = 3", "", r"evaluation\.every"),
    ]
    for evaluation, extra, match in cases:
        path = write_spec(tmp_path, "s", text.format(evaluation=evaluation, extra=extra))
        with pytest.raises(ConfigError, match=match):
            load_study_spec(path)


def test_report_with_a_study_uses_its_envs_runs_and_evaluations(tmp_path):
    from tests.test_report import ENV, make_run

    root = tmp_path / "runs"
    # ppo ends phases 1 and 2 at half the reset agent's evaluation return, on seeds 0-2
    for seed in range(3):
        for agent, factor in (("ppo", 0.5), ("ppo-reset", 1.0)):
            path = make_run(root, agent, seed, method="reset" if agent == "ppo-reset" else "none")
            rows = [[t, "current", p, 100.0 * (1 + seed)] for t, p in ((500, 0), (1500, 1))]
            rows += [[1000 * p, "earlier", p - 1, 100.0 * (1 + seed) * factor] for p in (1, 2, 3)]
            rows += [[1000 * p, "current", p, 1.0] for p in (1, 2, 3)]
            with (path / "eval.csv").open("w") as f:
                f.write("timestep,target,phase,return_mean\n")
                f.writelines(",".join(map(str, r)) + "\n" for r in sorted(rows))
    # a stationary run of the same agent and seed in another env: not part of the study
    other = make_run(root, "ppo", 0, group="stationary")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "env_name": "study-hopper"}))
    text = f"""\
envs = ["{ENV}"]
agents = ["ppo", "ppo-reset"]
steps = 3000
[evaluation]
every = 500
phases = 1
[test]
reference = "ppo-reset"
baseline = "ppo"
metric = "evaluation"
statistic = "log_ratio"
first_phase = 1
last_phases = 2
"""
    spec = load_study_spec(write_spec(tmp_path, "study", text))
    out = write_report(root, tmp_path / "report", study=spec)
    verdicts = (out.parent / "verdicts.txt").read_text()
    assert verdicts.startswith("ppo: loss of plasticity: shown at 95%")  # every seed at -0.693
    assert "mean log-ratio ppo / ppo-reset over phases 1-2: -0.693" in verdicts
    body = out.read_text()
    assert "| ppo | ppo-reset | -100.0 | 3 / 0 | 6 / 0 | -0.693" in body


def test_sweep_study_takes_its_evaluation_and_refuses_a_second_one():
    import argparse

    from rl_plasticity.cli import _grid

    args = argparse.Namespace(
        study="friction-hopper-pilot",
        envs=None,
        agents=None,
        seeds=None,
        steps=None,
        group=None,
        eval_every=None,
        eval_episodes=5,
        eval_phases="all",
    )
    envs, agents, seeds, steps, group, evaluation = _grid(args)
    assert (agents, steps, group) == (["fric-ppo", "fric-ppo-reset"], 3_276_800, "friction-pilot3")
    assert envs == ["study-friction-hopper"] and seeds == [1000, 1010]
    assert (evaluation.every, evaluation.episodes, evaluation.phases) == (204_800, 10, 1)
    with pytest.raises(ConfigError, match=r"--eval-every.*not with --study"):
        _grid(argparse.Namespace(**{**vars(args), "eval_every": 1000}))
