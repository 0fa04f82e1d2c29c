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
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rl_plasticity.errors import ConfigError
from rl_plasticity.overrides import Assignment, name_suffix
from rl_plasticity.overrides import apply as apply_overrides
from rl_plasticity.validate import (
    HYPERPARAMETER_RULES,
    MAX_ENVS,
    MAX_ROLLOUT,
    OPTIMIZER_RULES,
    check_finite_tree,
    check_int,
    check_net_arch,
)

KINDS = ("envs", "agents")

ALGORITHMS = ("PPO", "A2C", "SAC", "TD3", "DQN", "FastPPO")
INITS = ("sb3_default", "lecun_uniform")
VEC_ENVS = ("auto", "dummy", "subproc")
DEVICES = ("auto", "cpu", "cuda")
ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu", "sigmoid")

ENV_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "description": (str, "a one-line string"),
    "env_id": (str, "a gymnasium environment id such as 'Ant-v5'"),
    "gym_id": (str, "an id to register the preset under, such as 'rl_plasticity/SlipperyAnt-v0'"),
    "env_kwargs": (dict, "a table of keyword arguments for gymnasium.make"),
    "nonstationary": (dict, "a table describing what drifts and when"),
}

AGENT_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "description": (str, "a one-line string"),
    "algorithm": (str, f"one of: {', '.join(ALGORITHMS)}"),
    "policy": (str, "an SB3 policy name such as 'MlpPolicy'"),
    "n_envs": (int, "a positive integer"),
    "vec_env": (str, f"one of: {', '.join(VEC_ENVS)}"),
    "device": (str, f"one of: {', '.join(DEVICES)}"),
    "torch_threads": (int, "a positive integer (torch threads per run)"),
    "init": (str, f"one of: {', '.join(INITS)}"),
    "checkpoint_every": (int, "a positive number of steps"),
    "hyperparameters": (dict, "a table of the SB3 algorithm's keyword arguments"),
    "policy_kwargs": (dict, "a table of policy keyword arguments (net_arch, activation, ...)"),
    "optimizer": (dict, "a table with 'name' and the optimizer's keyword arguments"),
    "method": (dict, "a table with 'name' and the plasticity method's settings"),
    "metrics": (dict, "a table of PlasticityMetrics settings, or enabled = false"),
}


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names |= {dict: "a table", list: "a list"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def _is_instance(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # TOML true is not the number 1
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def spec_dirs(kind: str) -> list[Path]:
    """Folders holding the shipped specs of ``kind`` (``"envs"`` or ``"agents"``).

    Inside an installed wheel they are ``rl_plasticity/_specs/<kind>``; in a source checkout
    (editable install) they are ``<repo>/<kind>``.
    """
    package = Path(__file__).resolve().parent
    candidates = [package / "_specs" / kind, package.parent / kind]
    return [d for d in candidates if d.is_dir()]


def available_specs(kind: str) -> dict[str, Path]:
    """Shipped spec names of ``kind`` mapped to their files, sorted by name."""
    found: dict[str, Path] = {}
    for folder in spec_dirs(kind):
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def find_spec(kind: str, name_or_path: str | Path) -> Path:
    """The file of a spec given by shipped name or by path.

    :raises ConfigError: if there is no such spec
    """
    key = kind.rstrip("s")
    text = str(name_or_path)
    looks_like_path = text.endswith(".toml") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text)
        if path.is_file():
            return path
        raise ConfigError(key, text, "no such file; give an existing .toml path or a spec name")
    shipped = available_specs(kind)
    if text in shipped:
        return shipped[text]
    raise ConfigError(key, text, f"a spec name (one of: {', '.join(shipped)}) or a .toml path")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", path.name, f"not valid TOML ({e})", str(path)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            "",
            path.name,
            f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); save it as "
            "UTF-8",
            str(path),
        ) from None
    except OSError as e:
        raise ConfigError("", str(path), f"cannot be read ({e.strerror})", str(path)) from None


def _check_table(
    data: dict[str, Any], schema: dict[str, tuple[type | tuple[type, ...], str]]
) -> None:
    for key, value in data.items():
        if key not in schema:
            raise ConfigError(key, value, f"unknown key; allowed keys: {', '.join(schema)}")
        expected, allowed = schema[key]
        if not _is_instance(value, expected):
            raise ConfigError(key, value, f"expected {_type_name(expected)}: {allowed}")


def check_kwargs(
    target: Any,
    kwargs: dict[str, Any],
    skip: tuple[str, ...] = (),
    rules: dict[str, Any] | None = None,
) -> None:
    """Check ``kwargs`` against the keyword parameters of ``target`` (a class or function).

    Unknown names are errors listing the allowed ones. A value with a rule in ``rules`` (a
    ``check(key, value)`` from :mod:`rl_plasticity.validate`) is checked by it; any other value is
    type-checked against the parameter's default when that default is a plain scalar, list or
    tuple.

    :raises ConfigError: with the key of the offending argument
    """
    signature = inspect.signature(target)
    params = {
        name: p
        for name, p in signature.parameters.items()
        if name not in ("self", *skip)
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    for key, value in kwargs.items():
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ConfigError(key, value, f"unknown setting; allowed: {allowed}")
        if rules and key in rules:
            rules[key](key, value)
            continue
        default = params[key].default
        if default is inspect.Parameter.empty or default is None:
            continue
        expected: type | tuple[type, ...]
        if isinstance(default, bool):
            expected = bool
        elif isinstance(default, (int, float)):
            # torch writes float parameters with int defaults (Adam's weight_decay=0)
            is_float = isinstance(default, float) or "float" in str(params[key].annotation)
            expected = (int, float) if is_float else int
        elif isinstance(default, (str, list, tuple)):
            expected = (list, tuple) if isinstance(default, (list, tuple)) else str
        else:
            continue
        if not _is_instance(value, expected):
            raise ConfigError(key, value, f"expected {_type_name(expected)}")


@dataclass
class EnvSpec:
    """A validated environment spec.

    :param name: the spec's name (its file stem)
    :param path: the file it was loaded from
    :param env_id: the gymnasium id of the base environment
    :param description: one line for ``rlp envs``
    :param gym_id: the id the preset is registered under, if any
    :param env_kwargs: keyword arguments for ``gymnasium.make``
    :param nonstationary: what drifts and when, or None for a stationary env
    """

    name: str
    path: Path
    env_id: str
    description: str = ""
    gym_id: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    nonstationary: Any = None

    def make(self, n_envs: int = 1, start_step: int = 0, **kwargs: Any) -> Any:
        """Build one environment: the base env, wrapped to drift as the spec says.

        :param n_envs: sub-envs stepping in lockstep beside this one (for the global step)
        :param start_step: global step at which this env starts (a resumed run's)
        :param kwargs: extra keyword arguments for ``gymnasium.make`` (e.g. ``render_mode``)
        :return: the environment
        """
        import gymnasium as gym

        from rl_plasticity.nonstationary import NonstationaryWrapper

        env = gym.make(self.env_id, **{**self.env_kwargs, **kwargs})
        if self.nonstationary is not None:
            env = NonstationaryWrapper(
                env, self.nonstationary, n_envs=n_envs, start_step=start_step
            )
        return env

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for config.json)."""
        ns = self.nonstationary.to_dict() if self.nonstationary is not None else None
        return {
            "name": self.name,
            "path": str(self.path),
            "env_id": self.env_id,
            "description": self.description,
            "gym_id": self.gym_id,
            "env_kwargs": self.env_kwargs,
            "nonstationary": ns,
        }


@dataclass
class AgentSpec:
    """A validated agent spec: an SB3 algorithm, its settings and a plasticity method.

    :param name: the spec's name (its file stem)
    :param path: the file it was loaded from
    :param algorithm: one of :data:`ALGORITHMS`
    :param description: one line for ``rlp agents``
    :param policy: the SB3 policy name
    :param n_envs: parallel environments (SubprocVecEnv when > 1 and ``vec_env`` is auto)
    :param vec_env: ``auto``, ``dummy`` or ``subproc``
    :param device: ``auto``, ``cpu`` or ``cuda``
    :param torch_threads: torch threads per run (1 is fastest for small MLPs; see README)
    :param init: ``sb3_default`` or ``lecun_uniform`` (the paper's: LeCun uniform, zero biases)
    :param checkpoint_every: steps between checkpoints
    :param hyperparameters: keyword arguments of the SB3 algorithm
    :param policy_kwargs: policy keyword arguments; ``activation`` is a name from
        :data:`ACTIVATIONS`
    :param optimizer: ``name`` (a key of ``rl_plasticity.plasticity.OPTIMIZERS``) and its kwargs
    :param method: ``name`` (``none`` or a key of ``rl_plasticity.plasticity.METHODS``) and its
        settings
    :param metrics: PlasticityMetrics settings; ``enabled = false`` turns the callback off
    """

    name: str
    path: Path
    algorithm: str
    description: str = ""
    policy: str = "MlpPolicy"
    n_envs: int = 1
    vec_env: str = "auto"
    device: str = "auto"
    torch_threads: int = 1
    init: str = "sb3_default"
    checkpoint_every: int = 50_000
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def method_name(self) -> str:
        """The plasticity method's name (``none`` when there is none)."""
        return str(self.method.get("name", "none"))

    @property
    def metrics_enabled(self) -> bool:
        """Whether the PlasticityMetrics callback runs."""
        return bool(self.metrics.get("enabled", True))

    def make_method(self) -> Any:
        """A fresh callback of the spec's plasticity method, or None for ``none``.

        :raises ConfigError: for a setting the method does not allow (key under ``method``)
        """
        from rl_plasticity.plasticity import METHODS

        if self.method_name == "none":
            return None
        settings = {k: v for k, v in self.method.items() if k != "name"}
        try:
            return METHODS[self.method_name](**settings)
        except ConfigError as e:
            raise e.under("method") from None

    def make_metrics(self, csv_path: Path | None) -> Any:
        """A fresh PlasticityMetrics callback writing ``csv_path``, or None when disabled.

        :raises ConfigError: for a setting the callback does not allow (key under ``metrics``)
        """
        from rl_plasticity.metrics import PlasticityMetrics

        if not self.metrics_enabled:
            return None
        settings = {k: v for k, v in self.metrics.items() if k != "enabled"}
        try:
            return PlasticityMetrics(csv_path=csv_path, **settings)
        except ConfigError as e:
            raise e.under("metrics") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for config.json)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def merge_tables(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, table by table.

    A key of ``override`` replaces the base's value, except that tables merge key by key. A
    table with a ``name`` (``[optimizer]``, ``[method]``) that names something else is replaced
    whole: the base's settings belong to the base's method.
    """
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            renamed = "name" in value and value["name"] != old.get("name")
            merged[key] = value if renamed else merge_tables(old, value)
        else:
            merged[key] = value
    return merged


def _load(
    kind: str, name_or_path: str | Path, seen: tuple[Path, ...] = ()
) -> tuple[Path, dict[str, Any]]:
    """The spec's file and its table, with its ``base`` spec (if any) merged under it."""
    path = find_spec(kind, name_or_path)
    data = _read_toml(path)
    if "base" not in data:
        return path, data
    base = given = data.pop("base")
    try:
        if not isinstance(base, str):
            raise ConfigError("base", base, "a spec name or a .toml path (relative to this file)")
        if (base.endswith(".toml") or "/" in base) and not Path(base).is_absolute():
            base = str(path.parent / base)
        try:
            base_path = find_spec(kind, base)
        except ConfigError as e:
            raise ConfigError("base", given, e.allowed) from None
        if base_path.resolve() in (*seen, path.resolve()):
            raise ConfigError("base", given, "a spec that does not lead back here")
    except ConfigError as e:
        raise e.with_file(str(path)) from None
    _, base_data = _load(kind, base_path, (*seen, path.resolve()))
    base_data.pop("gym_id", None)  # the id under which the base is registered is the base's
    return path, merge_tables(base_data, data)


#: Keyword arguments ``gymnasium.make`` itself takes besides the env's.
MAKE_KWARGS = ("max_episode_steps", "autoreset", "disable_env_checker", "render_mode")


def _check_env_kwargs(entry_point: Any, kwargs: dict[str, Any]) -> None:
    """Check ``env_kwargs`` against the env's constructor: names it has, types of its defaults.

    A constructor that passes ``**kwargs`` on (the MuJoCo envs pass them to ``MujocoEnv``) may
    take names it does not list; only the listed ones are checked then.
    """
    from gymnasium.envs.registration import load_env_creator

    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    params = inspect.signature(creator).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    own = {k: v for k, v in kwargs.items() if k not in MAKE_KWARGS}
    if open_ended:
        own = {k: v for k, v in own.items() if k in params}
    check_kwargs(creator, own)


def load_env_spec(name_or_path: str | Path) -> EnvSpec:
    """Load and validate an environment spec.

    :param name_or_path: a shipped spec name (``slippery-ant``) or a path to a TOML file
    :raises ConfigError: naming the file, key, value and what is allowed
    """
    import gymnasium as gym

    from rl_plasticity.nonstationary import NonstationaryConfig

    path, data = _load("envs", name_or_path)
    try:
        _check_table(data, ENV_KEYS)
        check_finite_tree(data)
        if "env_id" not in data:
            raise ConfigError("env_id", None, "required: " + ENV_KEYS["env_id"][1])
        env_id = data["env_id"]
        try:
            entry_point = gym.spec(env_id).entry_point
        except gym.error.Error:
            mujoco = sorted(k for k in gym.registry if k.endswith("-v5") and "/" not in k)
            raise ConfigError(
                "env_id", env_id, f"not a registered gymnasium id; e.g. {', '.join(mujoco)}"
            ) from None
        try:
            _check_env_kwargs(entry_point, data.get("env_kwargs", {}))
        except ConfigError as e:
            raise e.under("env_kwargs") from None
        ns = None
        if "nonstationary" in data:
            try:
                ns = NonstationaryConfig.from_dict(data["nonstationary"])
            except ConfigError as e:
                raise e.under("nonstationary") from None
        return EnvSpec(
            name=path.stem,
            path=path,
            env_id=env_id,
            description=data.get("description", ""),
            gym_id=data.get("gym_id"),
            env_kwargs=dict(data.get("env_kwargs", {})),
            nonstationary=ns,
        )
    except ConfigError as e:
        raise e.with_file(str(path)) from None


def algorithm_class(name: str) -> type:
    """The SB3 algorithm class of that name (one of :data:`ALGORITHMS`; ``FastPPO`` is
    :class:`rl_plasticity.sb3.FastPPO`, SB3's PPO made faster)."""
    if name == "FastPPO":
        from rl_plasticity.sb3 import FastPPO

        return FastPPO
    import stable_baselines3 as sb3

    return getattr(sb3, name)


#: Policy keyword arguments rl_plasticity sets (from the env, the spec's activation and optimizer).
POLICY_SET_BY_US = ("observation_space", "action_space", "lr_schedule", "optimizer_kwargs")


def _check_rollout(cls: type, hyper: dict[str, Any], n_envs: int) -> None:
    """An on-policy rollout that fits in memory, and PPO's minibatch within it."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    if not issubclass(cls, OnPolicyAlgorithm):  # SAC's n_steps are n-step returns
        return
    params = inspect.signature(cls).parameters
    n_steps = hyper.get("n_steps", params["n_steps"].default)
    rollout = n_steps * n_envs
    if rollout > MAX_ROLLOUT:
        raise ConfigError("n_steps", n_steps, f"n_steps * n_envs at most {MAX_ROLLOUT:,}")
    if "batch_size" not in params:  # A2C
        return
    batch_size = hyper.get("batch_size", params["batch_size"].default)
    if not 2 <= batch_size <= rollout:
        raise ConfigError(
            "batch_size",
            batch_size,
            f"an integer in [2, n_steps * n_envs = {rollout:,}] (a minibatch of one rollout)",
        )


def _check_optimizer_builds(settings: dict[str, Any], optimizer: type) -> None:
    """Build the optimizer on a throwaway parameter: what torch alone refuses is found now."""
    import torch

    kwargs = {k: v for k, v in settings.items() if k != "name"}
    try:
        optimizer([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, **kwargs)
    except ConfigError as e:
        raise e.under("optimizer") from None
    except (ValueError, TypeError, RuntimeError) as e:
        raise ConfigError("optimizer", kwargs, f"refused by {optimizer.__name__}: {e}") from None


def _check_named_table(
    table: dict[str, Any],
    key: str,
    registry: dict[str, Any],
    extra: tuple[str, ...] = (),
    rules: dict[str, Any] | None = None,
) -> None:
    name = table.get("name")
    allowed = [*extra, *registry]
    if name not in allowed:
        raise ConfigError(f"{key}.name", name, f"one of: {', '.join(allowed)}")
    settings = {k: v for k, v in table.items() if k != "name"}
    if name in extra:
        if settings:
            first = next(iter(settings))
            raise ConfigError(f"{key}.{first}", settings[first], f"'{name}' takes no settings")
        return
    target = registry[name]
    try:
        check_kwargs(target, settings, skip=("params", "lr", "verbose"), rules=rules)
    except ConfigError as e:
        raise e.under(key) from None


def load_agent_spec(name_or_path: str | Path, overrides: Assignment = ()) -> AgentSpec:
    """Load and validate an agent spec.

    :param name_or_path: a shipped spec name (``ppo-cbp``) or a path to a TOML file
    :param overrides: ``--set`` values laid over the file's table before it is validated (see
        :mod:`rl_plasticity.overrides`); they are named in the spec's name
    :raises ConfigError: naming the file, key, value and what is allowed
    """
    from rl_plasticity.metrics import PlasticityMetrics
    from rl_plasticity.plasticity import METHODS, OPTIMIZERS

    path, data = _load("agents", name_or_path)
    try:
        data = apply_overrides(data, overrides)
        _check_table(data, AGENT_KEYS)
        check_finite_tree(data)
        algorithm = data.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise ConfigError("algorithm", algorithm, f"one of: {', '.join(ALGORITHMS)}")
        policies = algorithm_class(algorithm).policy_aliases
        if "policy" in data and data["policy"] not in policies:
            raise ConfigError("policy", data["policy"], f"one of: {', '.join(policies)}")
        for key, allowed in (("init", INITS), ("vec_env", VEC_ENVS), ("device", DEVICES)):
            if key in data and data[key] not in allowed:
                raise ConfigError(key, data[key], f"one of: {', '.join(allowed)}")
        for key, most in (("n_envs", MAX_ENVS), ("torch_threads", 1024)):
            check_int(key, data.get(key, 1), 1, most)
        check_int("checkpoint_every", data.get("checkpoint_every", 1), 1)
        hyper = dict(data.get("hyperparameters", {}))
        reserved = ("policy", "env", "policy_kwargs", "seed", "device", "tensorboard_log")
        for key in reserved:
            if key in hyper:
                raise ConfigError(f"hyperparameters.{key}", hyper[key], "set by rl_plasticity")
        try:
            cls = algorithm_class(algorithm)
            check_kwargs(cls, hyper, skip=("_init_setup_model",), rules=HYPERPARAMETER_RULES)
            _check_rollout(cls, hyper, data.get("n_envs", 1))
        except ConfigError as e:
            raise e.under("hyperparameters") from None
        policy_kwargs = dict(data.get("policy_kwargs", {}))
        activation = policy_kwargs.get("activation", "relu")
        if activation not in ACTIVATIONS:
            raise ConfigError(
                "policy_kwargs.activation", activation, f"one of: {', '.join(ACTIVATIONS)}"
            )
        if "net_arch" in policy_kwargs:
            check_net_arch("policy_kwargs.net_arch", policy_kwargs["net_arch"])
        if "activation_fn" in policy_kwargs or "optimizer_class" in policy_kwargs:
            bad = "activation_fn" if "activation_fn" in policy_kwargs else "optimizer_class"
            raise ConfigError(
                f"policy_kwargs.{bad}",
                policy_kwargs[bad],
                "use policy_kwargs.activation (a name) and the [optimizer] table instead",
            )
        others = {k: v for k, v in policy_kwargs.items() if k not in ("activation", "net_arch")}
        try:
            check_kwargs(policies[data.get("policy", "MlpPolicy")], others, skip=POLICY_SET_BY_US)
        except ConfigError as e:
            raise e.under("policy_kwargs") from None
        optimizer = dict(data.get("optimizer", {"name": "adam"}))
        optimizer.setdefault("name", "adam")
        _check_named_table(optimizer, "optimizer", OPTIMIZERS, rules=OPTIMIZER_RULES)
        _check_optimizer_builds(optimizer, OPTIMIZERS[optimizer["name"]])
        method = dict(data.get("method", {"name": "none"}))
        method.setdefault("name", "none")
        _check_named_table(method, "method", METHODS, extra=("none",))
        metrics = dict(data.get("metrics", {}))
        enabled = metrics.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError("metrics.enabled", enabled, "true or false")
        try:
            check_kwargs(PlasticityMetrics, metrics, skip=("csv_path", "verbose"))
        except ConfigError as e:
            raise e.under("metrics") from None
        spec = AgentSpec(
            name=path.stem + name_suffix(overrides),
            path=path,
            algorithm=algorithm,
            description=data.get("description", ""),
            policy=data.get("policy", "MlpPolicy"),
            n_envs=data.get("n_envs", 1),
            vec_env=data.get("vec_env", "auto"),
            device=data.get("device", "auto"),
            torch_threads=data.get("torch_threads", 1),
            init=data.get("init", "sb3_default"),
            checkpoint_every=data.get("checkpoint_every", 50_000),
            hyperparameters=hyper,
            policy_kwargs=policy_kwargs,
            optimizer=optimizer,
            method=method,
            metrics={"enabled": enabled, **metrics},
        )
        # Build the method and metrics objects once so that value errors (a negative rate) surface
        # now, with the file named, rather than minutes into a run.
        spec.make_method()
        spec.make_metrics(csv_path=None)
        return spec
    except ConfigError as e:
        raise e.with_file(str(path)) from None


def make_preset(spec: str, **kwargs: Any) -> Any:
    """Entry point of the registered gymnasium ids: build the env of a shipped spec.

    :param spec: the spec's name
    :param kwargs: extra keyword arguments for ``gymnasium.make``
    """
    return load_env_spec(spec).make(**kwargs)


def register_presets() -> list[str]:
    """Register every shipped env spec that has a ``gym_id`` with gymnasium; return the ids.

    Reads only the ``gym_id`` line of each file, so importing the package stays cheap; the spec is
    validated when the env is made.
    """
    import gymnasium as gym

    ids = []
    for name, path in available_specs("envs").items():
        try:
            gym_id = _read_toml(path).get("gym_id")
        except ConfigError:
            continue  # a broken file is reported when it is used, not on import
        if isinstance(gym_id, str) and gym_id not in gym.registry:
            gym.register(
                gym_id,
                entry_point="rl_plasticity.specs:make_preset",
                kwargs={"spec": name},
                disable_env_checker=True,
            )
            ids.append(gym_id)
    return ids
