"""Environment and agent specs: TOML files loaded and validated into typed objects.

A spec is found by name (the file stem, e.g. ``slippery-ant`` or ``ppo-cbp``) among the specs that
ship with the package (``envs/`` and ``agents/`` at the repository root, carried inside the wheel),
or by path to a user's own ``.toml`` file. Every problem is a :class:`ConfigError` naming the file,
the key, the value and what is allowed.

Env spec keys: ``description``, ``env_id`` (a gymnasium id), ``gym_id`` (optional id to register
the preset under), ``env_kwargs`` (passed to ``gymnasium.make``), ``[nonstationary]`` (what drifts
and when; see :mod:`rl_plasticity.nonstationary`).

Agent spec keys: see :data:`AGENT_KEYS` and ``agents/README.md``.

Either kind may start from another spec: ``base = "ppo"`` (a name, or a path relative to the
file) takes every key of that spec, and the file's own keys are laid over it (tables merge key by
key; see :func:`merge_tables`). The spec keeps its own name (and not its base's ``gym_id``), and
config.json records the merged result.

Here: ``files`` finds, reads and merges spec files, ``checks`` checks their tables, ``env`` and
``agent`` make the validated specs, ``presets`` registers the env presets with gymnasium.
"""

from __future__ import annotations

from rl_plasticity.specs.agent import (
    ACTIVATIONS,
    AGENT_KEYS,
    ALGORITHMS,
    DEVICES,
    INITS,
    POLICY_SET_BY_US,
    VEC_ENVS,
    AgentSpec,
    algorithm_class,
    load_agent_spec,
)
from rl_plasticity.specs.checks import check_kwargs
from rl_plasticity.specs.env import ENV_KEYS, MAKE_KWARGS, EnvSpec, load_env_spec
from rl_plasticity.specs.files import (
    KINDS,
    available_specs,
    find_spec,
    merge_tables,
    spec_dirs,
)
from rl_plasticity.specs.presets import make_preset, register_presets

__all__ = [
    "ACTIVATIONS",
    "AGENT_KEYS",
    "ALGORITHMS",
    "DEVICES",
    "ENV_KEYS",
    "INITS",
    "KINDS",
    "MAKE_KWARGS",
    "POLICY_SET_BY_US",
    "VEC_ENVS",
    "AgentSpec",
    "EnvSpec",
    "algorithm_class",
    "available_specs",
    "check_kwargs",
    "find_spec",
    "load_agent_spec",
    "load_env_spec",
    "make_preset",
    "merge_tables",
    "register_presets",
    "spec_dirs",
]
