"""Schedules, config validation and presets of rl_plasticity.nonstationary (no stepping of envs)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rl_plasticity.errors import ConfigError
from rl_plasticity.nonstationary.config import NonstationaryConfig, describe
from rl_plasticity.nonstationary.parameters import PARAMETERS
from rl_plasticity.nonstationary.schedules import (
    Linear,
    Piecewise,
    Sinusoid,
    change_count,
    schedule_from_dict,
)

ENVS_DIR = Path(__file__).resolve().parents[1] / "envs"


def friction_table(**schedule) -> dict:
    base = {"kind": "piecewise", "every": 100, "sample": "log-uniform", "low": 0.02, "high": 2.0}
    return {"drift": [{"parameter": "friction", "schedule": {**base, **schedule}}]}


# -- schedules ------------------------------------------------------------------------------


def test_piecewise_value_depends_only_on_seed_and_segment():
    s = Piecewise(every=100, sample="log-uniform", low=0.02, high=2.0)
    forward = [s.at((0, 0), t) for t in range(0, 1000, 50)]
    backward = [s.at((0, 0), t) for t in reversed(range(0, 1000, 50))][::-1]
    assert forward == backward
    assert s.at((0, 0), 0) == s.at((0, 0), 99) != s.at((0, 0), 100)
    assert all(0.02 <= v <= 2.0 for v in forward)
    assert s.at((1, 0), 0) != s.at((0, 0), 0)


def test_log_uniform_draws_spread_over_decades():
    s = Piecewise(every=1, sample="log-uniform", low=0.01, high=100.0)
    logs = [math.log10(s.at(7, k)) for k in range(2000)]
    # log10 is uniform on [-2, 2]: a quarter of the draws in each decade-pair, mean 0
    assert abs(sum(logs) / len(logs)) < 0.1
    assert 0.2 < sum(x < -1 for x in logs) / len(logs) < 0.3


def test_cycle_initial_linear_sinusoid_values():
    cycle = Piecewise(every=10, sample="cycle", values=(1.0, 0.5, 2.0), initial=3.0)
    assert [cycle.at(0, t) for t in (0, 10, 20, 30, 40)] == [3.0, 0.5, 2.0, 1.0, 0.5]
    linear = Linear(start=1.0, end=3.0, over=100)
    assert [linear.at(0, t) for t in (0, 50, 100, 500)] == [1.0, 2.0, 3.0, 3.0]
    sine = Sinusoid(mean=1.0, amplitude=0.5, period=400)
    assert sine.at(0, 100) == pytest.approx(1.5)
    assert sine.at(0, 300) == pytest.approx(0.5)


def test_shuffled_cycle_keeps_one_order_per_seed_for_every_cycle():
    values = (0.3, 0.9, 2.0)
    cycle = Piecewise(every=10, sample="shuffled-cycle", values=values)
    orders = set()
    for seed in range(12):
        first = [cycle.at((seed, 0), 10 * k) for k in range(3)]
        assert sorted(first) == sorted(values)  # every value once per cycle
        later = [cycle.at((seed, 0), 10 * k) for k in range(3, 9)]
        assert later == first + first  # the same order in the second and third cycle
        orders.add(tuple(first))
    assert len(orders) > 1  # seeds differ in order
    table = schedule_from_dict(
        {"kind": "piecewise", "every": 10, "sample": "shuffled-cycle", "values": list(values)}
    )
    assert table == cycle and table.to_dict()["values"] == list(values)


def test_change_count_counts_shared_change_points_once():
    a, b = Piecewise(every=10, low=1, high=2), Piecewise(every=15, low=1, high=2)
    assert change_count([a], 29) == 2
    assert change_count([a, b], 30) == 4  # change points 10, 15, 20, 30
    assert change_count([a, a], 30) == 3
    assert change_count([], 1000) == 0


# -- config ---------------------------------------------------------------------------------


def test_from_dict_round_trip_of_every_kind():
    table = {
        "apply_at": "immediate",
        "schedule_seed": 3,
        "context_in_obs": True,
        "update_every": 500,
        "drift": [
            {
                "parameter": "friction",
                "mode": "absolute",
                "geoms": ["floor"],
                "schedule": {
                    "kind": "piecewise",
                    "every": 10,
                    "sample": "uniform",
                    "low": 0.1,
                    "high": 1.0,
                    "initial": 0.5,
                },
            },
            {
                "parameter": "gravity",
                "mode": "absolute",
                "schedule": {
                    "kind": "piecewise",
                    "every": 10,
                    "sample": "cycle",
                    "values": [[0.0, 0.0, -9.81], [1.0, 0.0, -5.0]],
                },
            },
            {
                "parameter": "body_mass",
                "bodies": ["torso"],
                "schedule": {"kind": "linear", "start": 1.0, "end": 2.0, "over": 1000},
            },
            {
                "parameter": "actuator_gear",
                "schedule": {"kind": "sinusoid", "mean": 1.0, "amplitude": 0.5, "period": 100},
            },
            {"parameter": "joint_damping", "schedule": {"kind": "constant", "value": 2.0}},
        ],
    }
    config = NonstationaryConfig.from_dict(table)
    assert NonstationaryConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["drift"][1]["schedule"]["values"][1] == [1.0, 0.0, -5.0]
    assert NonstationaryConfig.from_dict({}) == NonstationaryConfig()


def test_integral_float_and_single_drift_table_are_accepted():
    table = friction_table(every=2e6)
    table["drift"] = table["drift"][0]
    config = NonstationaryConfig.from_dict(table)
    assert config.drifts[0].schedule.every == 2_000_000


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        (
            {"drift": [{"parameter": "viscosity", "schedule": {"kind": "constant", "value": 1}}]},
            "drift[0].parameter",
            ", ".join(PARAMETERS),
        ),
        (friction_table(sample="uniform", low=-0.5, high=1.0), "drift[0].schedule.low", ">= 0"),
        (friction_table(low=2.0, high=0.5), "drift[0].schedule.low", "at most high"),
        (friction_table(low=0.0, high=0.5), "drift[0].schedule.low", "> 0 for a log-uniform"),
        (friction_table(every="often"), "drift[0].schedule.every", "an integer >= 1"),
        (friction_table(sample="gauss"), "drift[0].schedule.sample", "log-uniform, uniform, cycle"),
        (friction_table(mean=1.0), "drift[0].schedule.mean", "allowed: kind, every, sample"),
        ({**friction_table(), "seed": 1}, "seed", "allowed: apply_at, schedule_seed"),
        ({**friction_table(), "apply_at": "never"}, "apply_at", "episode_end, immediate"),
        ({**friction_table(), "update_every": 0}, "update_every", ">= 1"),
        (
            {
                "drift": [
                    {
                        "parameter": "friction",
                        "bodies": ["torso"],
                        "schedule": {"kind": "constant", "value": 1},
                    }
                ]
            },
            "drift[0].bodies",
            "only with parameter = body_mass",
        ),
        (
            {
                "drift": [
                    {"parameter": "gravity", "schedule": {"kind": "constant", "value": [0, 0, -1]}}
                ]
            },
            "drift[0].schedule.value",
            "only for gravity, absolute",
        ),
        (
            {
                "drift": [
                    {
                        "parameter": "body_mass",
                        "schedule": {
                            "kind": "sinusoid",
                            "mean": 1.0,
                            "amplitude": 1.0,
                            "period": 10,
                        },
                    }
                ]
            },
            "drift[0].schedule.amplitude",
            "mean - |amplitude| > 0 for body_mass",
        ),
        (
            {"drift": [friction_table()["drift"][0], friction_table()["drift"][0]]},
            "drift[1].parameter",
            "at most once",
        ),
        ({"drift": [{"parameter": "friction"}]}, "drift[0].schedule", "required"),
    ],
)
def test_bad_tables_name_key_and_what_is_allowed(table, key, words):
    with pytest.raises(ConfigError) as info:
        NonstationaryConfig.from_dict(table)
    assert info.value.key == key
    assert words in info.value.allowed


def test_error_under_spec_prefix_reads_as_dotted_key():
    with pytest.raises(ConfigError) as info:
        NonstationaryConfig.from_dict(friction_table(low=3.0, high=2.0))
    message = str(info.value.under("nonstationary").with_file("envs/x.toml"))
    assert (
        message == "envs/x.toml: nonstationary.drift[0].schedule.low: got 3.0; at most high (2.0)"
    )


def test_schedule_from_dict_cycle_needs_values():
    with pytest.raises(ConfigError) as info:
        schedule_from_dict({"kind": "piecewise", "every": 5, "sample": "cycle"})
    assert info.value.key == "values"


def test_describe_lists_first_values_with_their_steps():
    config = NonstationaryConfig.from_dict(
        {
            "drift": [
                {
                    "parameter": "gravity",
                    "schedule": {
                        "kind": "piecewise",
                        "every": 1000,
                        "sample": "cycle",
                        "values": [1, 0.5],
                    },
                }
            ]
        }
    )
    lines = describe(config, n_values=3)
    assert "episode end" in lines[0]
    assert lines[1].startswith("gravity (x the env's own value): new value every 1,000 steps")
    assert [line.split(":")[-1].strip() for line in lines[2:]] == ["1", "0.5", "1"]
    assert "step        1,000" in lines[3]


# -- presets --------------------------------------------------------------------------------

PRESETS = sorted(ENVS_DIR.glob("*.toml"))


def test_required_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {
        "slippery-ant",
        "slippery-halfcheetah",
        "slippery-hopper",
        "slippery-walker2d",
        "fast-slippery-cheetah",
        "gravity-hopper",
        "mass-gear-halfcheetah",
    } <= names


def test_slippery_ant_is_the_papers_setting():
    data = tomllib.loads((ENVS_DIR / "slippery-ant.toml").read_text())
    config = NonstationaryConfig.from_dict(data["nonstationary"])
    (drift,) = config.drifts
    assert data["env_id"] == "Ant-v5"
    assert (drift.parameter, drift.mode, drift.geoms) == ("friction", "absolute", None)
    assert drift.schedule == Piecewise(every=2_000_000, sample="log-uniform", low=0.02, high=2.0)
    assert config.apply_at == "episode_end"


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_parses_and_round_trips(path):
    data = tomllib.loads(path.read_text())
    assert set(data) <= {"description", "env_id", "gym_id", "env_kwargs", "nonstationary", "base"}
    assert isinstance(data["description"], str) and "\n" not in data["description"]
    if "base" in data:  # a variant of a preset: the merged spec is what runs
        from rl_plasticity.specs import load_env_spec

        data = {"nonstationary": load_env_spec(path).nonstationary.to_dict()}
    else:
        assert data["gym_id"].startswith("rl_plasticity/")
    config = NonstationaryConfig.from_dict(data["nonstationary"])
    assert config.drifts
    assert NonstationaryConfig.from_dict(config.to_dict()) == config
    assert len(describe(config)) > len(config.drifts)
