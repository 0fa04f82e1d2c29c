"""The report on synthetic run directories laid out as experiment.py writes them.

Numbers chosen so every table cell can be checked by hand:
- 3 phases of 10 episodes of 100 steps each (phase k holds episodes ending at steps
  1000k + 100 ... 1000k + 1000);
- ppo's return of the i-th episode (i = 0..9) of phase p with seed s is 100(p+1) + 10s + i, so the
  end of a phase (its last 20% = 2 episodes, i = 8, 9) is 100(p+1) + 10s + 8.5;
- over seeds 0..3 the interquartile mean drops seeds 0 and 3: 100(p+1) + 8.5 + 15;
- ppo-reset returns 50p more than ppo in every episode, so ppo - reset = -50p on every seed.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rl_plasticity import report
from rl_plasticity.report.metric_figures import family_plan
from rl_plasticity.report.tables import layer_mean

ENV = "fast-slippery-cheetah"
SEEDS = (0, 1, 2, 3)
PHASES = 3
EPISODES_PER_PHASE = 10
EPISODE_LENGTH = 100
LAYERS = ("mlp_extractor.policy_net.0", "mlp_extractor.value_net.0")
METRICS = (
    "dead",
    "rarely_active",
    "dormant_0.025",
    "dormant_0.1",
    "effective_rank",
    "weight_mean_abs",
)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def make_run(
    root: Path,
    agent: str,
    seed: int,
    *,
    offset_per_phase: float = 0.0,
    status: str = "done",
    reason: str | None = None,
    method: str = "none",
    group: str = "g",
    phases: int = PHASES,
    agent_settings: dict | None = None,
) -> Path:
    """One run directory following the contract, with the returns of the module docstring."""
    path = root / group / f"{ENV}__{agent}__s{seed}"
    path.mkdir(parents=True)
    steps = phases * EPISODES_PER_PHASE * EPISODE_LENGTH
    config = {
        "env": {"name": ENV},
        "agent": {"name": agent, "method": {"name": method}, **(agent_settings or {})},
        "seed": seed,
        "steps": steps,
        "env_name": ENV,
        "agent_name": agent,
        "group": group,
        "versions": {},
        "git_commit": None,
    }
    (path / "config.json").write_text(json.dumps(config))
    (path / "status.json").write_text(
        json.dumps({"status": status, "reason": reason, "timestep": steps})
    )
    episodes = []
    for p in range(phases):
        for i in range(EPISODES_PER_PHASE):
            step = (p * EPISODES_PER_PHASE + i + 1) * EPISODE_LENGTH
            ret = 100 * (p + 1) + 10 * seed + i + offset_per_phase * p
            episodes.append([step, ret, EPISODE_LENGTH, p])
    _write_csv(path / "episodes.csv", ["timestep", "return", "length", "phase"], episodes)
    columns = [f"plasticity/policy/{layer}/{m}" for layer in LAYERS for m in METRICS]
    rows = []
    for step in range(500, steps + 1, 500):
        phase = (step - 1) // (EPISODES_PER_PHASE * EPISODE_LENGTH)
        rows.append([step, phase, 1.0 / (phase + 1)] + [step / steps] * len(columns))
    _write_csv(path / "metrics.csv", ["timestep", "phase", "friction", *columns], rows)
    return path


@pytest.fixture
def sweep_root(tmp_path: Path) -> Path:
    for seed in SEEDS:
        make_run(tmp_path, "ppo", seed)
        make_run(tmp_path, "ppo-reset", seed, offset_per_phase=50.0, method="reset")
    make_run(tmp_path, "ppo-cbp", 0, status="failed", reason="non-finite loss at step 1234")
    make_run(tmp_path, "ppo-cbp", 1, status="running")
    return tmp_path


def test_end_of_phase_returns_mean_of_last_fifth(sweep_root: Path) -> None:
    run = next(r for r in report.load_runs(sweep_root) if r.agent == "ppo" and r.seed == 2)
    assert report.end_of_phase_returns(run) == {0: 128.5, 1: 228.5, 2: 328.5}


def test_a_last_phase_of_a_few_episodes_is_left_out(sweep_root: Path) -> None:
    run = next(r for r in report.load_runs(sweep_root) if r.agent == "ppo" and r.seed == 2)
    # The run stopped 2 episodes into phase 3 (against 10 per phase before): not a phase's end.
    steps = run.episodes["timestep"][-1] + EPISODE_LENGTH * np.arange(1, 3)
    for key, extra in (("timestep", steps), ("return", [-1.0, -1.0]), ("phase", [3.0, 3.0])):
        run.episodes[key] = np.concatenate([run.episodes[key], extra])
    assert report.end_of_phase_returns(run) == {0: 128.5, 1: 228.5, 2: 328.5}


def test_phase_table_is_iqm_over_seeds(sweep_root: Path) -> None:
    done = [r for r in report.load_runs(sweep_root) if r.status == "done"]
    table = report.phase_table(done)
    assert [table["ppo"][p].iqm for p in range(PHASES)] == [123.5, 223.5, 323.5]
    assert [table["ppo-reset"][p].iqm for p in range(PHASES)] == [123.5, 273.5, 423.5]
    est = table["ppo"][0]
    # Seeds give 108.5, 118.5, 128.5, 138.5: any bootstrap IQM lies within them.
    assert est.n == 4 and 108.5 <= est.low <= 123.5 <= est.high <= 138.5


def test_relative_to_reset_is_paired_difference(sweep_root: Path) -> None:
    done = [r for r in report.load_runs(sweep_root) if r.status == "done"]
    assert report.reset_reference(done) == "ppo-reset"
    rel = report.relative_table(done, "ppo-reset")
    assert list(rel) == ["ppo"]
    for p in range(PHASES):
        assert (rel["ppo"][p].iqm, rel["ppo"][p].low, rel["ppo"][p].high) == (-50 * p,) * 3


def test_reset_agent_found_by_method_name(tmp_path: Path) -> None:
    make_run(tmp_path, "ppo", 0)
    make_run(tmp_path, "my-fresh-net", 0, method="reset")
    assert report.reset_reference(report.load_runs(tmp_path)) == "my-fresh-net"


def test_phase_boundaries_at_the_exact_change_step(sweep_root: Path) -> None:
    runs = report.load_runs(sweep_root)
    # Changes apply at the episode end after the change point: the last episode of phase 0 ends
    # at step 1000, the first of phase 1 (run in the new physics) at 1100.
    assert report.phase_boundaries(runs) == [1000.0, 2000.0]


def test_binned_on_grid_interpolates_within_samples() -> None:
    edges = np.array([0.0, 10, 20, 30, 40, 50])
    steps = np.array([5.0, 8, 25, 32])
    values = np.array([1.0, 3, 7, 9])
    out = report.binned_on_grid(steps, values, edges)
    # bins: (0,10] mean(1,3) = 2, (10,20] empty -> halfway from 2 to 7, (20,30] 7, (30,40] 9,
    # (40,50] after the last sample -> nan
    np.testing.assert_array_equal(out[:4], [2.0, 4.5, 7.0, 9.0])
    assert math.isnan(out[4])


def test_mean_with_band_no_band_for_one_seed() -> None:
    mean, low, high = report.mean_with_band(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(mean, [1.0, 2.0])
    assert np.isnan(low).all() and np.isnan(high).all()


def test_read_csv_skips_a_cut_off_last_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("timestep,x\n1,0.5\n2,\n3")
    cols = report.read_csv_columns(path)
    np.testing.assert_array_equal(cols["timestep"], [1.0, 2.0])
    assert cols["x"][0] == 0.5 and math.isnan(cols["x"][1])


def test_family_plan_places_every_plasticity_column_once() -> None:
    columns = [
        "timestep",
        "phase",
        "plasticity/policy/a.0/dead",
        "plasticity/policy/a.0/dormant_0.025",
        "plasticity/policy/a.0/dormant_0.1",
        "plasticity/policy/a.0/grad_norm",
        "plasticity/policy/grad_norm",
        "plasticity/critic/q.0/effective_rank",
    ]
    plan = family_plan(set(columns))
    assert plan == {
        "units": [
            ("dead", None, ["plasticity/policy/a.0/dead"]),
            ("dormant_0.025", None, ["plasticity/policy/a.0/dormant_0.025"]),
            ("dormant_0.1", None, ["plasticity/policy/a.0/dormant_0.1"]),
        ],
        "rank": [("effective_rank", None, ["plasticity/critic/q.0/effective_rank"])],
        "gradients": [
            ("grad_norm", None, ["plasticity/policy/a.0/grad_norm"]),
            ("grad_norm", "policy", ["plasticity/policy/grad_norm"]),
        ],
    }


def test_write_report_figures_tables_and_failures(sweep_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = report.write_report(sweep_root, out)
    text = path.read_text()
    assert path == out / "report.md"
    assert (out / f"returns_{ENV}.png").stat().st_size > 10_000
    for family in ("units", "rank", "weights"):
        assert (out / f"metrics_{family}_{ENV}.png").stat().st_size > 10_000
    assert (out / f"phases_{ENV}.csv").read_text().startswith("agent,phase,iqm,low,high,n")
    assert "10 runs (8 done, 1 failed, 1 running)" in text
    assert "| ppo | 123.5 [" in text
    assert "| ppo | 0.0 [0.0, 0.0] | -50.0 [-50.0, -50.0] | -100.0 [-100.0, -100.0] |" in text
    assert "non-finite loss at step 1234" in text
    assert "| `g/fast-slippery-cheetah__ppo-cbp__s1` | running |" in text


def test_write_report_without_reset_agent_or_metrics(tmp_path: Path) -> None:
    run = make_run(tmp_path, "ppo", 0)
    (run / "metrics.csv").unlink()
    text = report.write_report(tmp_path).read_text()
    assert "Return relative to" not in text
    assert "| ppo | 108.5 (n=1) | 208.5 (n=1) | 308.5 (n=1) |" in text
    assert not list((tmp_path / "report").glob("metrics_*.png"))


def test_layer_mean_averages_the_layers(sweep_root: Path) -> None:
    run = next(r for r in report.load_runs(sweep_root) if r.agent == "ppo")
    # Every layer reports step/3000 at steps 500, 1000, ..., 3000.
    np.testing.assert_allclose(layer_mean(run, "weight_mean_abs"), np.arange(1, 7) / 6)
    assert layer_mean(run, "no_such_metric") is None


def test_summary_figure_with_and_without_reset_agent(sweep_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    text = report.write_report(sweep_root, out).read_text()
    assert (out / f"summary_{ENV}.png").stat().st_size > 10_000
    assert f"![summary {ENV}](summary_{ENV}.png)" in text
    alone = tmp_path / "alone"
    run = make_run(alone, "ppo", 0)
    (run / "metrics.csv").unlink()
    report.write_report(alone)
    assert (alone / "report" / f"summary_{ENV}.png").stat().st_size > 5_000


def test_metric_change_table_first_and_last(sweep_root: Path, tmp_path: Path) -> None:
    runs = [r for r in report.load_runs(sweep_root) if r.status == "done"]
    table = report.metric_change_table(runs)
    # Every metric column is step/3000, measured from step 500 to 3000.
    first, last, n = table["ppo"]["dead units"]
    assert first == pytest.approx(500 / 3000) and last == pytest.approx(1.0) and n == 6
    text = report.write_report(sweep_root, tmp_path / "out").read_text()
    assert "| agent | weight mean \\|w\\| | dead units (%) | effective rank |" in text
    assert "| ppo | 0.167 -> 1 | 16.7% -> 100% | 0.167 -> 1 |" in text


def test_rows_whose_runs_are_identical_are_named(tmp_path: Path) -> None:
    """A CBP that never acted gives its control's runs (paired seeds): the report says so."""
    for seed in (0, 1):
        make_run(tmp_path, "ppo", seed)
        make_run(tmp_path, "ppo-cbp", seed, method="cbp")
        make_run(tmp_path, "ppo-reset", seed, offset_per_phase=50.0, method="reset")
    make_run(tmp_path, "ppo-cbp", 2, method="cbp")  # a seed the control lacks: not compared
    text = report.write_report(tmp_path).read_text()
    lines = [line for line in text.splitlines() if "identical runs" in line]
    assert len(lines) == 1
    assert f"identical runs in {ENV}:" in lines[0] and "(seeds 0, 1)" in lines[0]
    assert "ppo-cbp" in lines[0] and " ppo " in lines[0] and "ppo-reset" not in lines[0]


def test_one_differing_seed_makes_rows_not_identical(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path, "ppo", seed)
        make_run(tmp_path, "ppo-cbp", seed, method="cbp", offset_per_phase=float(seed))
    runs = report.load_runs(tmp_path)
    report.runs.label_rows(runs)
    assert report.runs.identical_warnings(runs) == []
