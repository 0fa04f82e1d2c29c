"""The controls a reviewer asks for: common random numbers, per-seed schedules, permuted phases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rl_plasticity.cli import main
from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.run import train
from rl_plasticity.nonstationary.config import NonstationaryConfig
from rl_plasticity.nonstationary.permutation import signed_permutation
from rl_plasticity.nonstationary.wrapper import NonstationaryWrapper
from rl_plasticity.seeding import derive_seed
from rl_plasticity.specs import load_env_spec
from tests.conftest import write_spec

PERMUTED_HOPPER = """\
description = "Hopper whose observations are permuted every 1,024 steps"
env_id = "Hopper-v5"

[nonstationary]
apply_at = "episode_end"
schedule_seed = "run"

[[nonstationary.drift]]
parameter = "observation_permutation"
[nonstationary.drift.schedule]
kind = "piecewise"
sample = "permutation"
every = 1024
"""

STUDY = """\
envs = ["{env}"]
agents = ["{plain}", "tiny-reset"]
steps = 2048
[test]
reference = "tiny-reset"
baseline = "{plain}"
last_phases = 2
"""

RESET_AGENT = """\
base = "{base}"
description = "the tiny agent, reset at every change"
[method]
name = "reset"
init = "lecun_uniform"
"""


def permute(every: int = 100, *, actions: bool = False, signs: bool = True) -> dict:
    drift = [
        {
            "parameter": "observation_permutation",
            "signs": signs,
            "schedule": {"kind": "piecewise", "sample": "permutation", "every": every},
        }
    ]
    if actions:
        drift.append({**drift[0], "parameter": "action_permutation"})
    return {"apply_at": "immediate", "schedule_seed": 5, "drift": drift}


def test_derived_seeds_depend_on_the_seed_and_stream_only():
    assert derive_seed(3, "method") == derive_seed(3, "method")
    assert len({derive_seed(3, "method"), derive_seed(4, "method"), derive_seed(3, "x")}) == 3
    assert 0 <= derive_seed(2**40, "method") < 2**63


def test_a_permutation_phase_is_the_base_observation_in_new_coordinates():
    base = gym.make("Hopper-v5")
    env = NonstationaryWrapper(gym.make("Hopper-v5"), permute(every=100))
    raw, _ = base.reset(seed=1)
    obs, info = env.reset(seed=1)
    perm, sign = signed_permutation(11, (5, 0), 0, True)
    np.testing.assert_allclose(obs, sign * raw[perm])
    assert sorted(np.abs(obs)) == pytest.approx(sorted(np.abs(raw)))
    assert info["context"]["observation_permutation"] == 0.0
    action = np.full(3, 0.1)
    for _ in range(100):
        raw, *_ = base.step(action)
        obs, _, _, _, info = env.step(action)
    # the 100th step was taken under phase 0; the change applies from the next step on
    np.testing.assert_allclose(obs, sign * raw[perm])
    raw, *_ = base.step(action)
    obs, _, _, _, info = env.step(action)
    perm1, sign1 = signed_permutation(11, (5, 0), 1, True)
    assert info["context"]["observation_permutation"] == 1.0
    assert not np.array_equal(perm1, perm)
    np.testing.assert_allclose(obs, sign1 * raw[perm1])


def test_an_action_permutation_drives_actuator_perm_j_with_agent_entry_j():
    base = gym.make("Hopper-v5")
    env = NonstationaryWrapper(gym.make("Hopper-v5"), permute(actions=True, signs=True))
    base.reset(seed=2)
    env.reset(seed=2)
    perm, sign = signed_permutation(3, (5, 1), 0, True)
    agent_action = np.array([0.3, -0.2, 0.9])
    env_action = np.empty(3)
    env_action[perm] = sign * agent_action
    raw, *_ = base.step(env_action)
    obs, *_ = env.step(agent_action)
    operm, osign = signed_permutation(11, (5, 0), 0, True)
    np.testing.assert_allclose(obs, osign * raw[operm])


def test_permutations_refuse_what_they_cannot_permute():
    with pytest.raises(ConfigError, match="sample"):
        NonstationaryConfig.from_dict(
            {"drift": [{"parameter": "friction", "schedule": permute()["drift"][0]["schedule"]}]}
        )
    bad = {"parameter": "observation_permutation", "mode": "scale"}
    with pytest.raises(ConfigError, match=r"drift\[0\]\.mode"):
        NonstationaryConfig.from_dict({"drift": [{**permute()["drift"][0], **bad}]})
    uniform = {"kind": "piecewise", "every": 10, "low": 0.0, "high": 1.0, "sample": "uniform"}
    with pytest.raises(ConfigError, match="permutation"):
        NonstationaryConfig.from_dict(
            {"drift": [{"parameter": "observation_permutation", "schedule": uniform}]}
        )
    table = permute()
    table["schedule_seed"] = "run"
    with pytest.raises(ConfigError, match="run's seed"):
        NonstationaryWrapper(gym.make("Hopper-v5"), table)
    config = NonstationaryConfig.from_dict(table)
    assert config.to_dict()["schedule_seed"] == "run"
    assert NonstationaryConfig.from_dict(config.to_dict()) == config
    assert config.for_seed(7).schedule_seed == 7


def test_each_seed_draws_its_own_schedule_and_every_agent_shares_it():
    spec = load_env_spec("permuted-hopper")
    first = [spec.make(seed=s).reset(seed=0)[0] for s in (0, 0, 1)]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.allclose(first[0], first[2])
    assert spec.nonstationary.for_seed(4).schedule_seed == 4
    assert load_env_spec("slippery-ant").nonstationary.for_seed(4).schedule_seed == 0


def _episodes(run: Path) -> list[dict]:
    with (run / "episodes.csv").open() as f:
        return list(csv.DictReader(f))


def test_ppo_and_ppo_reset_with_one_seed_are_identical_until_the_first_change(
    tmp_path, tiny_agent, capsys
):
    env = write_spec(tmp_path, "tiny-permuted-hopper", PERMUTED_HOPPER)
    reset = write_spec(tmp_path, "tiny-reset", RESET_AGENT.format(base=tiny_agent.name))
    runs = [
        train(env, agent, seed=3, steps=2048, root=tmp_path / "runs").path
        for agent in (tiny_agent, reset)
    ]
    plain, with_reset = (_episodes(r) for r in runs)
    before = [row for row in plain if int(row["phase"]) == 0]
    assert len(before) >= 5
    assert with_reset[: len(before)] == before
    # the reset acted at the change: afterwards the two agents differ
    assert with_reset[len(before) :] != plain[len(before) :]
    # and `rlp report --study` applies a study's test to them, printing its verdict line
    study = write_spec(tmp_path, "study", STUDY.format(plain=tiny_agent.stem, env=env.stem))
    assert main(["report", str(tmp_path / "runs"), "--study", str(study)]) == 0
    out = capsys.readouterr().out
    assert "tiny-ppo: loss of plasticity: not shown at 95%" in out
    assert "1 seeds" in out
    report = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "## Pre-registered test" in report and "not shown" in report
    assert (tmp_path / "runs" / "report" / "paired_differences.csv").read_text().count("\n") == 2


COMPOSED = """\
base = "{base}"
description = "LayerNorm with soft shrink-and-perturb"
[[method]]
name = "layernorm"
[[method]]
name = "snp"
shrink = 0.99
every_updates = 1
"""


def test_an_agent_composes_methods_in_order_and_records_each(tmp_path, tiny_agent, tiny_env):
    from rl_plasticity.specs import load_agent_spec
    from rl_plasticity.specs.agent import check_composition

    path = write_spec(tmp_path, "composed", COMPOSED.format(base=tiny_agent.name))
    spec = load_agent_spec(path)
    assert spec.method_name == "layernorm+snp"
    run = train(tiny_env, path, seed=0, steps=1024, root=tmp_path / "runs")
    assert run.status == "done"

    config = json.loads((run.path / "config.json").read_text())
    assert [m["name"] for m in config["agent"]["method"]] == ["layernorm", "snp"]
    model = PPO.load(run.path / "final_model.zip")
    assert any(isinstance(m, torch.nn.LayerNorm) for m in model.policy.modules())
    progress = (run.path / "progress.csv").read_text().splitlines()[0]
    assert "method/policy/events" in progress
    refused = [
        ([{"name": "layernorm"}, {"name": "crelu"}], "one architecture method"),
        ([{"name": "trac"}, {"name": "upgd"}], "one optimizer method"),
        ([{"name": "snp"}, {"name": "snp"}], "each method once"),
        ([{"name": "reset"}, {"name": "cbp"}], "reset does not compose"),
        ([], "at least one"),
    ]
    for tables, message in refused:
        with pytest.raises(ConfigError, match=message):
            check_composition(tables)
