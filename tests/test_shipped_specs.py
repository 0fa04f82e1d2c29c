"""Every shipped agent spec trains (one rollout) on a shipped env, and every env spec builds."""

from __future__ import annotations

import pytest

from rl_plasticity.experiment.run import train
from rl_plasticity.specs import available_specs, load_env_spec


@pytest.mark.parametrize("agent", sorted(available_specs("agents")))
def test_shipped_agent_trains_one_rollout(agent, tmp_path):
    result = train("fast-slippery-cheetah", agent, 0, 2048, root=tmp_path)
    assert result.status == "done", result.reason


@pytest.mark.parametrize("env", sorted(available_specs("envs")))
def test_shipped_env_builds_and_steps(env):
    spec = load_env_spec(env)
    made = spec.make(seed=0)  # the run seed: per-run schedules need one
    made.reset(seed=0)
    _, _, _, _, info = made.step(made.action_space.sample())
    assert info["context"]["phase"] == 0
    made.close()
