"""Agent specs: the validated :class:`AgentSpec` and :func:`load_agent_spec`."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rl_plasticity.catalog import SPEC_ACTIVATIONS, init_names
from rl_plasticity.errors import ConfigError, one_of
from rl_plasticity.overrides import Assignment, name_suffix
from rl_plasticity.overrides import apply as apply_overrides
from rl_plasticity.specs.checks import check_kwargs, check_named_table, check_table
from rl_plasticity.specs.files import load_table
from rl_plasticity.validate import (
    HYPERPARAMETER_RULES,
    MAX_ENVS,
    MAX_ROLLOUT,
    OPTIMIZER_RULES,
    check_finite_tree,
    check_int,
    check_net_arch,
)

ALGORITHMS = ("PPO", "A2C", "SAC", "TD3", "DQN", "FastPPO")
INITS = init_names("agent")
VEC_ENVS = ("auto", "dummy", "subproc")
DEVICES = ("auto", "cpu", "cuda")
ACTIVATIONS = SPEC_ACTIVATIONS

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
    "method": (
        (dict, list),
        "a table with 'name' and the plasticity method's settings, or a list of such tables "
        "([[method]]: several methods, applied in order)",
    ),
    "metrics": (dict, "a table of PlasticityMetrics settings, or enabled = false"),
    "method_modules": (
        list,
        "a list of a user's modules of methods to import: .py files (relative to this spec's "
        "folder) or module names",
    ),
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
    :param optimizer: ``name`` (a key of ``rl_plasticity.plasticity.optimizers.OPTIMIZERS``) and
        its kwargs
    :param method: ``name`` (``none`` or a registered method's name) and its settings; or a list
        of such tables, several methods composed in their listed order (see
        :func:`check_composition`)
    :param metrics: PlasticityMetrics settings; ``enabled = false`` turns the callback off
    :param method_modules: a user's modules of methods, imported before a method is looked up
        (absolute ``.py`` paths or module names; see ``docs/methods.md``)
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
    method: dict[str, Any] | list[dict[str, Any]] = field(default_factory=lambda: {"name": "none"})
    metrics: dict[str, Any] = field(default_factory=dict)
    method_modules: list[str] = field(default_factory=list)

    def import_methods(self) -> None:
        """Import :attr:`method_modules` (their methods register; importing again does nothing).
        Called wherever a method is built, so a process that received the spec (a sweep's
        worker) finds the user's methods too."""
        from rl_plasticity.plasticity.registry import import_methods

        for source in self.method_modules:
            import_methods(source)

    @property
    def methods(self) -> list[dict[str, Any]]:
        """The method tables, in order (empty when there is none)."""
        tables = self.method if isinstance(self.method, list) else [self.method]
        return [t for t in tables if t.get("name", "none") != "none"]

    @property
    def method_name(self) -> str:
        """The plasticity method's name, ``a+b`` for several (``none`` when there is none)."""
        return "+".join(str(t["name"]) for t in self.methods) or "none"

    @property
    def metrics_enabled(self) -> bool:
        """Whether the PlasticityMetrics callback runs."""
        return bool(self.metrics.get("enabled", True))

    def make_method_callback(self) -> Any:
        """A fresh ``MethodCallback`` of the spec's plasticity method, or None for ``none``; for
        several methods one :class:`~rl_plasticity.sb3.callbacks.MethodCallbacks` of their
        callbacks.

        :raises ConfigError: for a setting the method does not allow (key under ``method``)
        """
        from rl_plasticity.sb3.callbacks import MethodCallback, MethodCallbacks

        self.import_methods()
        callbacks = []
        for i, table in enumerate(self.methods):
            settings = {k: v for k, v in table.items() if k != "name"}
            try:
                callbacks.append(MethodCallback(table["name"], **settings))
            except ConfigError as e:
                raise e.under(
                    "method" if isinstance(self.method, dict) else f"method[{i}]"
                ) from None
        if not callbacks:
            return None
        return callbacks[0] if isinstance(self.method, dict) else MethodCallbacks(callbacks)

    def make_metrics(self, csv_path: Path | None) -> Any:
        """A fresh PlasticityMetrics callback writing ``csv_path``, or None when disabled.

        :raises ConfigError: for a setting the callback does not allow (key under ``metrics``)
        """
        from rl_plasticity.metrics.callback import PlasticityMetrics

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


def algorithm_class(name: str) -> type:
    """The SB3 algorithm class of that name (one of :data:`ALGORITHMS`; ``FastPPO`` is
    :class:`rl_plasticity.sb3.FastPPO`, SB3's PPO made faster)."""
    if name == "FastPPO":
        from rl_plasticity.sb3.fast_ppo import FastPPO

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


def _method_tables(raw: Any, registry: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
    """The checked ``[method]`` table, or the list of ``[[method]]`` tables."""
    if isinstance(raw, dict):
        table = {"name": "none", **raw}
        check_named_table(table, "method", registry, extra=("none",))
        return table
    tables = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(f"method[{i}]", item, "a table with 'name' and the method's settings")
        check_named_table(dict(item), f"method[{i}]", registry)
        tables.append(dict(item))
    check_composition(tables)
    return tables


def check_composition(tables: list[dict[str, Any]]) -> None:
    """Refuse a list of methods that cannot work together.

    Composition order: every method's architecture hook builds the network in list order, then
    each optimizer hook wraps the optimizer in list order, then at every optimizer step the
    loss terms, ``before_step`` and ``after_step`` hooks run method by method in list order, and
    at an environment change each method's ``on_context_change`` in list order. Refused: an empty
    list, a method listed twice, two methods that change the architecture (their changes would
    depend on each other's), two that replace the optimizer (only one optimizer can train the
    network), and ``reset`` with another method (the fresh network would drop the other's
    architecture-independent state at every change).

    :param tables: the ``[[method]]`` tables, each with a registered ``name``
    :raises ConfigError: naming the offending entry
    """
    from rl_plasticity.plasticity.protocol import implements, make_method

    if not tables:
        raise ConfigError("method", [], "at least one [[method]] table")
    seen: dict[str, int] = {}
    builders: list[int] = []
    optimizers: list[int] = []
    for i, table in enumerate(tables):
        name = table["name"]
        if name in seen:
            raise ConfigError(f"method[{i}].name", name, f"each method once (method[{seen[name]}])")
        seen[name] = i
        method = make_method(name, {k: v for k, v in table.items() if k != "name"})
        if implements(method, "build_network"):
            builders.append(i)
        if implements(method, "wrap_optimizer"):
            optimizers.append(i)
    for found, what, does in (
        (builders, "architecture", "changes the architecture"),
        (optimizers, "optimizer", "replaces the optimizer"),
    ):
        if len(found) > 1:
            first, i = found[0], found[1]
            raise ConfigError(
                f"method[{i}].name",
                tables[i]["name"],
                f"one {what} method per agent; method[{first}] ({tables[first]['name']}) "
                f"{does} already",
            )
    if "reset" in seen and len(tables) > 1:
        i = seen["reset"]
        raise ConfigError(f"method[{i}].name", "reset", "reset does not compose with other methods")


def load_agent_spec(name_or_path: str | Path, overrides: Assignment = ()) -> AgentSpec:
    """Load and validate an agent spec.

    :param name_or_path: a shipped spec name (``ppo-cbp``) or a path to a TOML file
    :param overrides: ``--set`` values laid over the file's table before it is validated (see
        :mod:`rl_plasticity.overrides`); they are named in the spec's name
    :raises ConfigError: naming the file, key, value and what is allowed
    """
    from rl_plasticity.metrics.callback import PlasticityMetrics
    from rl_plasticity.plasticity.optimizers import OPTIMIZERS
    from rl_plasticity.plasticity.registry import import_methods, registered_methods

    path, data = load_table("agents", name_or_path)
    try:
        data = apply_overrides(data, overrides)
        check_table(data, AGENT_KEYS)
        check_finite_tree(data)
        modules = _method_modules(data.get("method_modules", []), path.parent)
        for source in modules:
            import_methods(source)
        algorithm = data.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise ConfigError("algorithm", algorithm, one_of(algorithm, ALGORITHMS))
        policies = algorithm_class(algorithm).policy_aliases
        if "policy" in data and data["policy"] not in policies:
            raise ConfigError("policy", data["policy"], one_of(data["policy"], policies))
        for key, allowed in (("init", INITS), ("vec_env", VEC_ENVS), ("device", DEVICES)):
            if key in data and data[key] not in allowed:
                raise ConfigError(key, data[key], one_of(data[key], allowed))
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
                "policy_kwargs.activation", activation, one_of(activation, ACTIVATIONS)
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
        check_named_table(optimizer, "optimizer", OPTIMIZERS, rules=OPTIMIZER_RULES)
        _check_optimizer_builds(optimizer, OPTIMIZERS[optimizer["name"]])
        method = _method_tables(data.get("method", {"name": "none"}), registered_methods())
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
            method_modules=modules,
        )
        # Build the method and metrics objects once so that value errors (a negative rate) surface
        # now, with the file named, rather than minutes into a run.
        spec.make_method_callback()
        spec.make_metrics(csv_path=None)
        return spec
    except ConfigError as e:
        raise e.with_file(_blame(path, e.key, overrides)) from None


def _method_modules(sources: list[Any], folder: Path) -> list[str]:
    """``method_modules`` with each ``.py`` file made absolute (from the spec's folder), so that
    the spec, wherever it is used next (a sweep's worker, ``config.json``), names the same file.

    :raises ConfigError: for an entry that is not a string, or a file that does not exist
    """
    resolved = []
    for i, source in enumerate(sources):
        if not isinstance(source, str) or not source:
            raise ConfigError(f"method_modules[{i}]", source, "a .py file or a module name")
        if source.endswith(".py"):
            path = (folder / source).resolve()
            if not path.is_file():
                raise ConfigError(
                    f"method_modules[{i}]", source, f"an existing .py file ({path} is none)"
                )
            source = str(path)
        resolved.append(source)
    return resolved


def _blame(path: Path, key: str, overrides: Assignment) -> str:
    """Where a bad key came from: the ``--set`` that gave it (or a table around or inside it),
    else the spec file."""
    for set_key, _, text in overrides:
        if key == set_key or key.startswith(f"{set_key}.") or set_key.startswith(f"{key}."):
            return f"--set {set_key}={text}"
    return str(path)
