"""NonstationaryWrapper on real MuJoCo envs: physics changes, timing, VecEnv agreement, presets."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from rl_plasticity.errors import ConfigError
from rl_plasticity.nonstationary.schedules import Piecewise
from rl_plasticity.nonstationary.wrapper import NonstationaryWrapper

ENVS_DIR = Path(__file__).resolve().parents[1] / "envs"


def constant(parameter: str, value, mode: str = "scale", **names) -> dict:
    drift = {"parameter": parameter, "mode": mode, **names}
    drift["schedule"] = {"kind": "constant", "value": value}
    return {"drift": [drift]}


def piecewise_friction(every: int, apply_at: str = "immediate", seed: int = 0) -> dict:
    return {
        "apply_at": apply_at,
        "schedule_seed": seed,
        "drift": [
            {
                "parameter": "friction",
                "mode": "absolute",
                "schedule": {"kind": "piecewise", "every": every, "low": 0.02, "high": 2.0},
            }
        ],
    }


def rollout(env: gym.Env, n: int = 60, seed: int = 0) -> np.ndarray:
    """Observations of ``n`` steps of fixed pseudo-random actions from the state of reset(seed)."""
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(1).uniform(-1, 1, size=(n, *env.action_space.shape))
    observations = [obs]
    for action in actions:
        obs, _, terminated, _, _ = env.step(action)
        observations.append(obs)
        if terminated:
            break
    return np.array(observations)


# -- each parameter changes the trajectory ----------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "config"),
    [
        ("HalfCheetah-v5", constant("friction", 0.05, "absolute")),
        ("HalfCheetah-v5", constant("gravity", 0.5)),
        ("Hopper-v5", constant("gravity", [1.0, 0.0, -9.81], "absolute")),
        ("HalfCheetah-v5", constant("body_mass", 2.0)),
        ("Hopper-v5", constant("body_mass", 3.0, "absolute", bodies=["torso"])),
        ("HalfCheetah-v5", constant("actuator_gear", 0.5)),
        ("HalfCheetah-v5", constant("joint_damping", 3.0)),
    ],
    ids=["friction", "gravity", "gravity-vector", "mass", "mass-torso", "gear", "damping"],
)
def test_parameter_change_changes_trajectory(env_id, config):
    raw = rollout(gym.make(env_id))
    unchanged = rollout(NonstationaryWrapper(gym.make(env_id), constant("friction", 1.0)))
    changed = rollout(NonstationaryWrapper(gym.make(env_id), config))
    np.testing.assert_array_equal(unchanged, raw)  # the wrapper alone changes nothing
    n = min(len(raw), len(changed))
    assert np.abs(changed[:n] - raw[:n]).max() > 1e-3
    np.testing.assert_array_equal(changed[0], raw[0])  # same start state


def test_setters_write_the_model_and_keep_the_env_state():
    env = NonstationaryWrapper(
        gym.make("HalfCheetah-v5"),
        {
            "drift": [
                {"parameter": "body_mass", "schedule": {"kind": "constant", "value": 2.0}},
                {"parameter": "actuator_gear", "schedule": {"kind": "constant", "value": 0.5}},
                {"parameter": "joint_damping", "schedule": {"kind": "constant", "value": 2.0}},
                {"parameter": "gravity", "schedule": {"kind": "constant", "value": 0.5}},
            ]
        },
    )
    base = gym.make("HalfCheetah-v5").unwrapped.model
    model = env.unwrapped.model
    np.testing.assert_allclose(model.body_mass, 2 * base.body_mass)
    np.testing.assert_allclose(model.body_inertia, 2 * base.body_inertia)
    # mj_setConst ran: the subtree masses follow (body 0's subtree is the whole cheetah)
    np.testing.assert_allclose(model.body_subtreemass, 2 * base.body_subtreemass)
    np.testing.assert_allclose(model.actuator_gear[:, 0], [60, 45, 30, 60, 30, 15])
    np.testing.assert_allclose(model.dof_damping, [0, 0, 0, 12, 9, 6, 9, 6, 3])
    np.testing.assert_allclose(model.opt.gravity, [0, 0, -4.905])
    # a mass change mid-episode leaves the running state alone (mj_setConst uses scratch data)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    qpos = env.unwrapped.data.qpos.copy()
    env._setters[0].apply(3.0)
    np.testing.assert_array_equal(env.unwrapped.data.qpos, qpos)


def test_hopper_floor_only_friction_does_nothing_every_geom_does():
    raw = gym.make("Hopper-v5")
    model = raw.unwrapped.model
    floor, foot = model.geom("floor").id, model.geom("foot_geom").id
    assert (model.geom_friction[floor, 0], model.geom_friction[foot, 0]) == (1.0, 2.0)
    baseline = rollout(raw)
    assert raw.unwrapped.data.ncon > 0  # the foot touches the floor: friction matters
    floor_only = NonstationaryWrapper(
        gym.make("Hopper-v5"), constant("friction", 0.1, geoms=["floor"])
    )
    # MuJoCo uses the larger friction of the two geoms: max(0.1, 2.0) = max(1.0, 2.0)
    np.testing.assert_array_equal(rollout(floor_only), baseline)
    assert floor_only.unwrapped.model.geom_friction[floor, 0] == pytest.approx(0.1)
    every_geom = rollout(NonstationaryWrapper(gym.make("Hopper-v5"), constant("friction", 0.1)))
    n = min(len(every_geom), len(baseline))
    assert np.abs(every_geom[:n] - baseline[:n]).max() > 1e-3


def test_unknown_body_or_geom_lists_the_models_names():
    with pytest.raises(ConfigError) as info:
        NonstationaryWrapper(gym.make("Hopper-v5"), constant("body_mass", 2.0, bodies=["tail"]))
    assert info.value.key == "drift[0].bodies"
    assert "torso, thigh, leg, foot" in info.value.allowed
    with pytest.raises(ConfigError) as info:
        NonstationaryWrapper(gym.make("Hopper-v5"), constant("friction", 2.0, geoms=["ice"]))
    assert "floor, torso_geom" in info.value.allowed


# -- timing and context -----------------------------------------------------------------------


def contexts(env: gym.Env, n: int, env_seed: int) -> list[dict]:
    env.reset(seed=env_seed)
    env.action_space.seed(env_seed)
    out = []
    for _ in range(n):
        *_, terminated, truncated, info = env.step(env.action_space.sample())
        out.append(info["context"])
        if terminated or truncated:
            env.reset()
    return out


def test_same_schedule_seed_same_contexts_whatever_the_env_seed():
    a = contexts(NonstationaryWrapper(gym.make("HalfCheetah-v5"), piecewise_friction(20)), 90, 1)
    b = contexts(NonstationaryWrapper(gym.make("HalfCheetah-v5"), piecewise_friction(20)), 90, 2)
    c = contexts(
        NonstationaryWrapper(gym.make("HalfCheetah-v5"), piecewise_friction(20, seed=1)), 90, 1
    )
    assert a == b
    assert [x["phase"] for x in a][18:23] == [0, 0, 1, 1, 1]
    assert a[-1]["phase"] == 4
    assert [x["friction"] for x in a] != [x["friction"] for x in c]


def test_immediate_change_applies_after_the_step_that_reaches_it():
    env = NonstationaryWrapper(gym.make("HalfCheetah-v5"), piecewise_friction(50))
    schedule = Piecewise(every=50, low=0.02, high=2.0)
    got = contexts(env, 51, 0)
    assert got[49] == {"phase": 0, "global_step": 50, "friction": schedule.at((0, 0), 0)}
    assert got[50] == {"phase": 1, "global_step": 51, "friction": schedule.at((0, 0), 50)}
    assert env.unwrapped.model.geom_friction[0, 0] == schedule.at((0, 0), 50)


def test_episode_end_change_waits_for_reset():
    env = NonstationaryWrapper(
        gym.make("HalfCheetah-v5", max_episode_steps=120), piecewise_friction(50, "episode_end")
    )
    schedule = Piecewise(every=50, low=0.02, high=2.0)
    _, info = env.reset(seed=0)
    assert info["context"]["phase"] == 0
    phases = [x["phase"] for x in contexts(env, 120, 0)]
    assert phases == [0] * 120  # the whole first episode keeps its physics
    _, info = env.reset()
    assert info["context"] == {"phase": 2, "global_step": 120, "friction": schedule.at((0, 0), 100)}
    assert env.unwrapped.model.geom_friction[3, 0] == schedule.at((0, 0), 100)


def test_start_step_set_global_step_and_context_in_obs():
    config = {**piecewise_friction(100), "context_in_obs": True}
    resumed = NonstationaryWrapper(gym.make("HalfCheetah-v5"), config, n_envs=4, start_step=250)
    assert resumed.observation_space.shape == (18,)
    obs, info = resumed.reset(seed=0)
    assert info["context"]["phase"] == 2
    assert obs[-1] == info["context"]["friction"]
    obs, *_, info = resumed.step(resumed.action_space.sample())
    assert info["context"]["global_step"] == 254
    assert obs.shape == (18,) and obs[-1] == info["context"]["friction"]
    evaluation = NonstationaryWrapper(gym.make("HalfCheetah-v5"), config)
    evaluation.set_global_step(254)
    _, eval_info = evaluation.reset(seed=5)
    assert eval_info["context"] == info["context"]


def test_linear_drift_updates_every_update_every_steps():
    config = {
        "apply_at": "immediate",
        "update_every": 10,
        "drift": [
            {
                "parameter": "joint_damping",
                "schedule": {"kind": "linear", "start": 1.0, "end": 2.0, "over": 100},
            }
        ],
    }
    env = NonstationaryWrapper(gym.make("HalfCheetah-v5"), config)
    damping = [x["joint_damping"] for x in contexts(env, 40, 0)]
    assert damping[:10] == [1.0] * 10  # steps 1..10 ran with the value of step 0
    assert damping[10:20] == [1.1] * 10
    assert env.unwrapped.model.dof_damping[3] == pytest.approx(6.0 * 1.4)


# -- vector envs --------------------------------------------------------------------------------


def make_env(config: dict, n_envs: int, max_steps: int | None = None):
    def thunk():
        return NonstationaryWrapper(
            gym.make("HalfCheetah-v5", max_episode_steps=max_steps), config, n_envs=n_envs
        )

    return thunk


def vec_contexts(vec, n: int) -> list[list[dict]]:
    vec.seed(0)
    vec.reset()
    rows = []
    for _ in range(n):
        actions = np.random.default_rng(len(rows)).uniform(-1, 1, (vec.num_envs, 6))
        *_, infos = vec.step(actions)
        rows.append([info["context"] for info in infos])
    return rows


def test_subproc_workers_agree_across_changes():
    vec = SubprocVecEnv([make_env(piecewise_friction(30), 2)] * 2, start_method="fork")
    try:
        rows = vec_contexts(vec, 50)
    finally:
        vec.close()
    assert all(a == b for a, b in rows)
    assert [row[0]["global_step"] for row in rows] == list(range(2, 102, 2))
    assert rows[-1][0]["phase"] == 3  # changes at 30, 60, 90
    assert len({row[0]["friction"] for row in rows}) == 4


def test_dummy_vec_env_episode_end_with_fixed_length_episodes():
    config = piecewise_friction(30, "episode_end")
    vec = DummyVecEnv([make_env(config, 3, max_steps=25)] * 3)
    rows = vec_contexts(vec, 60)
    assert all(a == b == c for a, b, c in rows)
    phases = [row[0]["phase"] for row in rows]
    # episodes end at global steps 75 and 150: the first change (due at 30) waits until then
    assert phases[:25] == [0] * 25 and phases[25:50] == [2] * 25 and phases[50:] == [5] * 10
    schedule = Piecewise(every=30, low=0.02, high=2.0)
    assert rows[30][1]["friction"] == schedule.at((0, 0), 75)


# -- presets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(ENVS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_preset_builds_and_steps(path):
    from rl_plasticity.specs import load_env_spec

    spec = load_env_spec(path)
    env = NonstationaryWrapper(gym.make(spec.env_id, **spec.env_kwargs), spec.nonstationary, seed=0)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for _ in range(3):
        obs, reward, *_, info = env.step(env.action_space.sample())
    assert np.isfinite(obs).all() and np.isfinite(reward)
    assert {"phase", "global_step"} <= set(info["context"]) and info["context"]["global_step"] == 3
    assert isinstance(env.unwrapped.model, mujoco.MjModel)


def test_model_is_written_only_when_a_value_changes():
    env = NonstationaryWrapper(gym.make("HalfCheetah-v5"), piecewise_friction(50))
    writes = []
    setter = env._setters[0]
    original = setter.apply
    setter.apply = lambda value: (writes.append(value), original(value))
    contexts(env, 200, 0)
    assert len(writes) == 4  # at steps 50, 100, 150, 200; none in between
