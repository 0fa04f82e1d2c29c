"""Every shipped agent spec trains (one rollout) on a shipped env, and every env spec builds."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from rl_plasticity.experiment.build import rollout_steps
from rl_plasticity.experiment.run import train
from rl_plasticity.metrics.callback import PlasticityMetrics
from rl_plasticity.specs import available_specs, load_agent_spec, load_env_spec


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


@pytest.mark.parametrize("agent", sorted(available_specs("agents")))
def test_shipped_agent_measures_on_whole_rollouts(agent):
    # Otherwise PlasticityMetrics warns that its spacing is rounded, in the shipped demo too.
    spec = load_agent_spec(agent)
    every = spec.metrics.get("every", inspect.signature(PlasticityMetrics).parameters["every"])
    every = getattr(every, "default", every)
    assert every % rollout_steps(spec) == 0, (every, rollout_steps(spec))


def test_agents_readme_lists_every_registered_method():
    from rl_plasticity.plasticity.registry import registered_methods

    text = (Path(__file__).parent.parent / "agents" / "README.md").read_text()
    start = text.index("Method names, as registered")
    listed = re.findall(r"`([a-z_0-9]+)`", text[start : text.index("\n\n", start)])
    # Built-in methods only: other tests register toy methods.
    builtin = [n for n, c in registered_methods().items() if c.__module__.startswith("rl_plast")]
    assert sorted(listed) == sorted(["none", *builtin])
