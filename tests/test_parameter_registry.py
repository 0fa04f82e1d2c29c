"""The registry of drifting parameters: every entry complete, every setter registered, and the
readers (config validation, the physics, the report's names) taking their facts from it."""

from __future__ import annotations

import inspect
import math

import mujoco
import pytest
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

from rl_plasticity.errors import ConfigError
from rl_plasticity.nonstationary import permutation, physics
from rl_plasticity.nonstationary.config import NonstationaryConfig, describe
from rl_plasticity.nonstationary.parameters import PARAMETERS, PHYSICS, TRANSFORMS
from rl_plasticity.report.names import parameter_name


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    env = HopperEnv()
    yield env.unwrapped.model
    env.close()


def constant(parameter: str, value: float, mode: str = "scale") -> dict:
    return {
        "drift": [
            {"parameter": parameter, "mode": mode, "schedule": {"kind": "constant", "value": value}}
        ]
    }


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_every_parameter_has_a_name_a_bound_and_a_setter(name):
    entry = PARAMETERS[name]
    assert entry.title and entry.touches, (
        f"{name}: no readable name or no words for what it touches"
    )
    assert math.isfinite(entry.lower_bound), f"{name}: no finite lower bound"
    cls = entry.setter_class()  # raises when the entry point names nothing
    assert callable(getattr(cls, "apply", None)), f"{name}: setter {entry.setter} has no apply"
    assert entry.selects in (None, "geoms", "bodies"), f"{name}: selects {entry.selects!r}"


def test_every_setter_class_has_an_entry():
    """A setter written without its registry entry is never used: name the forgotten class."""
    setters = {
        f"{module.__name__}:{name}"
        for module in (physics, permutation)
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and callable(getattr(cls, "apply", None))
    }
    registered = {entry.setter for entry in PARAMETERS.values()}
    assert setters - {f"{physics.__name__}:Setter"} == registered


@pytest.mark.parametrize("name", PHYSICS)
@pytest.mark.parametrize("mode", ["scale", "absolute"])
def test_make_setter_builds_each_physics_parameters_class(model, name, mode):
    setter = physics.make_setter(name, model, mode)
    assert type(setter) is PARAMETERS[name].setter_class()
    setter.apply(1.0)  # writes without error; the values are tested in test_nonstationary_envs


def test_make_setter_refuses_a_transform_and_suggests_a_name(model):
    with pytest.raises(ConfigError, match=r"observation_permutation.*one of: friction"):
        physics.make_setter("observation_permutation", model, "scale")
    with pytest.raises(ConfigError, match=r"did you mean friction\?"):
        physics.make_setter("fricton", model, "scale")


@pytest.mark.parametrize("name", PHYSICS)
def test_config_validation_reads_the_lower_bound(name):
    entry = PARAMETERS[name]
    below = entry.lower_bound - 0.5
    with pytest.raises(ConfigError, match=f"drift\\[0\\].schedule.value.*{name}"):
        NonstationaryConfig.from_dict(constant(name, below))
    if entry.bound_allowed:
        NonstationaryConfig.from_dict(constant(name, entry.lower_bound))
    else:
        with pytest.raises(ConfigError, match="> 0"):
            NonstationaryConfig.from_dict(constant(name, entry.lower_bound))


def test_geoms_and_bodies_only_where_the_entry_selects_them():
    table = constant("gravity", 1.0)
    table["drift"][0]["geoms"] = ["floor"]
    with pytest.raises(ConfigError, match=r"drift\[0\].geoms.*used only with parameter = friction"):
        NonstationaryConfig.from_dict(table)
    table = constant("body_mass", 1.0)
    table["drift"][0]["bodies"] = ["torso"]
    config = NonstationaryConfig.from_dict(table)
    assert describe(config)[1].startswith("body_mass of torso (x the env's own value)")
    assert describe(NonstationaryConfig.from_dict(constant("friction", 1.0)))[1].startswith(
        "friction of every geom"
    )


def test_the_reports_names_come_from_the_registry():
    assert parameter_name("gravity") == "gravity (m/s^2)"
    assert parameter_name("gravity", {"gravity": "scale"}) == "gravity (x)"
    assert parameter_name("gravity_z", {"gravity": "absolute"}) == "gravity z (m/s^2)"
    assert parameter_name("body_mass", {"body_mass": "absolute"}) == "body mass (kg)"
    assert parameter_name("friction") == "friction coefficient"
    assert parameter_name("some_new_column") == "some new column"
    for name, entry in PARAMETERS.items():
        assert parameter_name(name).startswith(entry.title)


def test_transforms_are_the_permutations():
    assert TRANSFORMS == ("observation_permutation", "action_permutation")
    assert set(PHYSICS) | set(TRANSFORMS) == set(PARAMETERS)
