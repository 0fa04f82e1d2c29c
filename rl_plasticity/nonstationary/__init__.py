"""Nonstationary MuJoCo environments: physics that change on a schedule of the global step.

Three parts, one concern each: :mod:`.schedules` (what value, when: pure functions of
``(seed, step)``), :mod:`.physics` (how a value reaches ``mjModel``), :mod:`.wrapper` (when to ask
and where to report it). :mod:`.config` validates the ``[nonstationary]`` table of an env spec;
its docstring and ``envs/README.md`` give the schema. Import each name from its module: this file
imports nothing, so the pure ``schedules`` load neither gymnasium nor mujoco.

    >>> import gymnasium as gym
    >>> from rl_plasticity.nonstationary.wrapper import NonstationaryWrapper
    >>> env = NonstationaryWrapper(gym.make("HalfCheetah-v5"), {"drift": [{
    ...     "parameter": "friction", "mode": "absolute",
    ...     "schedule": {"kind": "piecewise", "every": 20_000, "low": 0.02, "high": 2.0}}]})
    >>> obs, info = env.reset(seed=0)
    >>> sorted(info["context"])
    ['friction', 'global_step', 'phase']
"""
