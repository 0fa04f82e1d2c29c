"""The report's figures: every metric the callback records has a readable name and reaches a
figure; names of layers; one colour per row; change steps and drifting values."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC

from rl_plasticity import report
from rl_plasticity.metrics.callback import PlasticityMetrics
from rl_plasticity.metrics.registry import column, metric_info, split_column
from rl_plasticity.report.figures import PALETTE, bar_words, colors_for
from rl_plasticity.report.metric_figures import family_plan, method_counters
from rl_plasticity.sb3.layer_names import layer_names
from tests.test_report import ENV, make_run


def _recorded_keys(model) -> set[str]:
    callback = PlasticityMetrics(every=64, batch_size=32, hessian_steps=3, probe_steps=2)
    model.learn(64 if isinstance(model, PPO) else 120, callback=callback)
    return set(callback.measure(with_hessian=True, with_probe=True))


def test_every_metric_the_callback_records_has_a_name_and_a_figure() -> None:
    torch.set_num_threads(1)
    ppo = PPO(
        "MlpPolicy",
        gym.make("Pendulum-v1"),
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [8, 8], "activation_fn": torch.nn.Tanh},
    )
    sac = SAC(
        "MlpPolicy",
        gym.make("Pendulum-v1"),
        learning_starts=50,
        batch_size=16,
        seed=0,
        policy_kwargs={"net_arch": [8, 8]},
    )
    keys = _recorded_keys(ppo) | _recorded_keys(sac)
    assert "plasticity/policy/mlp_extractor.policy_net.0/saturated" in keys
    assert "plasticity/actor/ent_coef" in keys and "plasticity/policy/probe_loss_vf" in keys
    unnamed = sorted(
        {split_column(k)[2] for k in keys if metric_info(split_column(k)[2]).family == "other"}
    )
    assert unnamed == [], f"metrics without an entry in metrics.registry.METRICS: {unnamed}"
    for key in keys:  # the callback writes its columns with the registry's column()
        net, layer, metric = split_column(key)
        assert column(net, metric, layer) == key
    plan = family_plan(keys)
    placed = [c for panels in plan.values() for _, _, columns in panels for c in columns]
    assert sorted(placed) == sorted(keys)  # each exactly once


def test_layer_names_read_like_a_paper() -> None:
    assert layer_names(
        [
            "mlp_extractor.policy_net.0",
            "mlp_extractor.policy_net.2",
            "mlp_extractor.value_net.0",
            "mlp_extractor.value_net.2",
        ]
    ) == {
        "mlp_extractor.policy_net.0": "policy layer 1",
        "mlp_extractor.policy_net.2": "policy layer 2",
        "mlp_extractor.value_net.0": "value layer 1",
        "mlp_extractor.value_net.2": "value layer 2",
    }
    assert layer_names(["qf1.2", "qf1.0", "latent_pi.0", "q_net.4", "mu.0"]) == {
        "qf1.0": "critic Q2 layer 1",
        "qf1.2": "critic Q2 layer 2",
        "latent_pi.0": "actor layer 1",
        "q_net.4": "Q layer 1",
        "mu.0": "actor layer 1",
    }


def test_one_colour_per_row_whatever_the_order() -> None:
    first = colors_for(["b", "a", "c"])
    assert first == colors_for(["c", "b", "a", "a"])
    assert len(set(first.values())) == 3


def test_an_agent_keeps_its_colour_in_every_report() -> None:
    demo = colors_for(["demo-ppo", "demo-ppo-reset", "demo-ppo-cbp", "demo-ppo-redo"])
    assert len(set(demo.values())) == 4
    study = ["ppo", "ppo-reset", "ppo-cbp", "ppo-redo", "ppo-snp", "ppo-trac", "ppo-l2init"]
    alone = {name: colors_for([name])[name] for name in study}
    # Without a collision in the report, an agent's colour is its own whatever the others are.
    assert colors_for(study) == alone
    assert colors_for(["ppo-cbp", "sac-cbp"])["ppo-cbp"] == alone["ppo-cbp"]
    assert set(alone.values()) <= set(PALETTE)
    # ppo-er's own colour is ppo-snp's: side by side, the later name (sorted) takes a free one.
    assert colors_for(["ppo-er"])["ppo-er"] == alone["ppo-snp"]
    both = colors_for(["ppo-er", "ppo-snp"])
    assert both["ppo-er"] == alone["ppo-snp"] and both["ppo-snp"] not in (alone["ppo-snp"], None)
    # More rows than colours: every colour is used before any repeats.
    many = colors_for([f"agent-{i}" for i in range(len(PALETTE) + 3)])
    assert set(many.values()) == set(PALETTE)


def test_error_bars_say_what_they_are() -> None:
    assert bar_words(3, 3) == "bars: bootstrap over n=3 seeds, within their range (< 5: no CI)"
    assert bar_words(5, 8) == "bars: bootstrap 95% CI (n=5-8 seeds)"
    assert bar_words(1, 1) == "no bars (1 seed)"


def test_method_counters_keep_the_cumulative_one() -> None:
    columns = {
        "method/policy/mlp_extractor.policy_net.0/replaced",
        "method/policy/mlp_extractor.policy_net.0/replaced_total",
        "method/resets",
        "train/loss",
    }
    assert method_counters(columns) == {
        "replaced_total": ["method/policy/mlp_extractor.policy_net.0/replaced_total"],
        "resets": ["method/resets"],
    }


def test_every_column_reaches_a_figure_file(tmp_path: Path) -> None:
    run = make_run(tmp_path, "ppo", 0)
    # Add a network-level metric, a metric the naming table does not know and method counters.
    lines = (run / "metrics.csv").read_text().splitlines()
    extra = ["plasticity/policy/grad_norm", "plasticity/policy/brand_new_metric"]
    lines = [lines[0] + "," + ",".join(extra)] + [line + ",1.5,2.5" for line in lines[1:]]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run / "progress.csv").write_text(
        "time/total_timesteps,method/policy/a.0/replaced_total,method/policy/a.2/replaced_total\n"
        "1000,1,2\n2000,3,4\n3000,5,6\n"
    )
    out = tmp_path / "out"
    text = report.write_report(tmp_path, out).read_text()
    for family in ("units", "rank", "weights", "gradients", "other"):
        assert f"(metrics_{family}_{ENV}.png)" in text
        assert (out / f"metrics_{family}_{ENV}.png").stat().st_size > 5_000
    assert (out / f"methods_{ENV}.png").stat().st_size > 5_000
    assert (out / f"around_changes_{ENV}.png").stat().st_size > 5_000
    # progress.csv's step column is SB3's time/total_timesteps.
    steps = report.load_runs(tmp_path)[0].progress["timestep"]
    np.testing.assert_array_equal(steps, [1000.0, 2000.0, 3000.0])


def _with_schedule(run: Path, apply_at: str) -> None:
    config = json.loads((run / "config.json").read_text())
    config["env"]["nonstationary"] = {
        "apply_at": apply_at,
        "schedule_seed": 0,
        "update_every": 1000,
        "drift": [
            {
                "parameter": "gravity",
                "mode": "scale",
                "schedule": {"kind": "piecewise", "every": 950, "sample": "cycle",
                             "values": [1.0, 2.0, 3.0]},
            }
        ],
    }  # fmt: skip
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(("apply_at", "expected"), [("episode_end", [1000.0, 2000.0]),
                                                    ("immediate", [950.0, 1900.0])])  # fmt: skip
def test_change_steps_follow_apply_at(tmp_path: Path, apply_at: str, expected: list) -> None:
    # make_run's episodes switch phase after steps 1000 and 2000; the schedule's change points
    # are 950 and 1900: at an episode end, the change waits for the episode ending at 1000.
    _with_schedule(make_run(tmp_path, "ppo", 0), apply_at)
    run = report.load_runs(tmp_path)[0]
    assert report.change_steps(run) == expected


def test_drift_values_switch_at_the_change_steps(tmp_path: Path) -> None:
    _with_schedule(make_run(tmp_path, "ppo", 0), "episode_end")
    run = report.load_runs(tmp_path)[0]
    values = report.drift_values(run, np.array([0.0, 999.0, 1000.0, 1500.0, 2500.0]))
    assert list(values) == ["gravity"]
    np.testing.assert_array_equal(values["gravity"], [1.0, 1.0, 2.0, 2.0, 3.0])


def test_a_run_without_changes_and_one_measurement_says_so(tmp_path: Path) -> None:
    for agent in ("ppo", "ppo-cbp"):
        run = make_run(tmp_path, agent, 0, phases=1)
        lines = (run / "metrics.csv").read_text().splitlines()
        (run / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")
    out = tmp_path / "out"
    text = report.write_report(tmp_path, out).read_text()
    assert "### Return at the end of the run" in text and "| agent | end of run |" in text
    # make_run measures step / steps: 500 / 1000 at its only measurement.
    assert "| ppo | 0.5 (one measurement) | 50% (one measurement) |" in text
    # One environment and one seed: performance profiles would be degenerate, and the report
    # says why it leaves them out.
    assert "![performance profiles](profiles.png)" not in text
    assert "Performance profiles and the probability of improvement are not shown" in text
