"""Building a run from its specs: the vectorized training env and the SB3 algorithm, new or loaded
from a checkpoint, and the unit a run's length is counted in."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from rl_plasticity.catalog import activation_class
from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.checkpoint import ResumableEnv
from rl_plasticity.sb3.networks import sync_targets
from rl_plasticity.sb3.policies import method_policy
from rl_plasticity.specs import AgentSpec, EnvSpec, algorithm_class


class RunSetupError(RuntimeError):
    """The environment or the algorithm could not be built from valid-looking specs."""


def make_env_fn(
    spec: EnvSpec, n_envs: int, start_step: int, in_worker: bool = False, seed: int | None = None
) -> Callable[[], gym.Env]:
    """A picklable factory of one sub-env: the spec's env in a Monitor (episode returns).

    :param spec: the env spec
    :param n_envs: sub-envs stepping in lockstep
    :param start_step: global step of the first step
    :param in_worker: the env lives in a SubprocVecEnv worker (which then ignores SIGINT/SIGTERM)
    :param seed: the run's seed (the schedule's, for ``schedule_seed = "run"``)
    """

    def make() -> gym.Env:
        env = Monitor(spec.make(n_envs=n_envs, start_step=start_step, seed=seed))
        return ResumableEnv(env, ignore_signals=in_worker)

    return make


def make_vec_env(
    spec: EnvSpec, agent: AgentSpec, start_step: int = 0, seed: int | None = None
) -> VecEnv:
    """The training VecEnv: SubprocVecEnv when ``n_envs > 1`` (unless the spec says dummy).

    :param spec: the env spec
    :param agent: the agent spec
    :param start_step: global step of the first step
    :param seed: the run's seed (the schedule's, for ``schedule_seed = "run"``)
    """
    use_subproc = agent.vec_env == "subproc" or (agent.vec_env == "auto" and agent.n_envs > 1)
    fns = [
        make_env_fn(spec, agent.n_envs, start_step, use_subproc, seed) for _ in range(agent.n_envs)
    ]
    return SubprocVecEnv(fns) if use_subproc else DummyVecEnv(fns)


def rollout_steps(agent: AgentSpec) -> int:
    """Environment steps between two rounds of training: the unit of a run's length.

    On-policy: ``n_steps * n_envs``; off-policy: ``train_freq * n_envs`` (``n_envs`` when
    ``train_freq`` counts episodes). Checkpoints are taken, and runs end, on multiples of it.

    :param agent: the agent spec
    """
    params = inspect.signature(algorithm_class(agent.algorithm)).parameters
    if "n_steps" in params:
        return int(agent.hyperparameters.get("n_steps", params["n_steps"].default)) * agent.n_envs
    if "train_freq" not in params:
        return agent.n_envs
    freq = agent.hyperparameters.get("train_freq", params["train_freq"].default)
    if isinstance(freq, (list, tuple)):
        return agent.n_envs if freq[1] == "episode" else int(freq[0]) * agent.n_envs
    return int(freq) * agent.n_envs


def round_up(steps: int, unit: int) -> int:
    """``steps`` rounded up to a multiple of ``unit``."""
    return math.ceil(steps / unit) * unit


def _policy_kwargs(agent: AgentSpec) -> dict[str, Any]:
    from rl_plasticity.plasticity.optimizers import OPTIMIZERS

    kwargs = {k: v for k, v in agent.policy_kwargs.items() if k != "activation"}
    kwargs["activation_fn"] = activation_class(agent.policy_kwargs.get("activation", "relu"))
    optimizer = dict(agent.optimizer)
    kwargs["optimizer_class"] = OPTIMIZERS[optimizer.pop("name")]
    kwargs["optimizer_kwargs"] = optimizer
    return kwargs


def build_model(agent: AgentSpec, env: VecEnv, seed: int, device: str) -> BaseAlgorithm:
    """A new SB3 algorithm from the agent spec, initialised as the spec says."""
    cls = algorithm_class(agent.algorithm)
    agent.import_methods()  # a user's methods, for the architecture and optimizer hooks
    policy, method_kwargs = (agent.policy, {})
    if agent.methods:  # architecture and optimizer hooks are built with the policy
        policy, method_kwargs = method_policy(cls, agent.policy, agent.method)
    model = cls(
        policy,
        env,
        policy_kwargs={**_policy_kwargs(agent), **method_kwargs},
        seed=seed,
        device=device,
        **agent.hyperparameters,
    )
    if agent.init == "lecun_uniform":
        from rl_plasticity.plasticity.init import lecun_uniform_

        # Every trained network; target networks are copied from them so they start equal.
        lecun_uniform_(model.policy)
        sync_targets(model)
    return model


def load_model(
    agent: AgentSpec, folder: Path, env: VecEnv, device: str, exact: bool
) -> BaseAlgorithm:
    """The model of a checkpoint, on the training env.

    :param agent: the agent spec the run was made with
    :param folder: the checkpoint folder
    :param env: the training env
    :param device: the torch device
    :param exact: the checkpoint holds the sub-envs' states (else the env is reset)
    """
    cls = algorithm_class(agent.algorithm)
    return cls.load(folder / "model.zip", env=env, device=device, force_reset=not exact)


def resolve_device(requested: str | None, agent: AgentSpec) -> str:
    """The torch device: ``requested`` or the agent spec's.

    :raises ConfigError: for cuda where there is none
    """
    device = requested or agent.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", device, "cuda is not available here; use cpu or auto")
    return device


def build(
    env: EnvSpec,
    agent: AgentSpec,
    seed: int,
    device: str,
    start_step: int = 0,
    checkpoint: Path | None = None,
    exact: bool = True,
) -> tuple[VecEnv, BaseAlgorithm]:
    """The training env and the model of a run: new, or loaded from ``checkpoint``.

    :param env: the env spec
    :param agent: the agent spec (its ``torch_threads`` are set here)
    :param seed: the run's seed (a new model's)
    :param device: the torch device
    :param start_step: global step of the first step (a resumed run's)
    :param checkpoint: the checkpoint folder to load the model from, or None for a new model
    :param exact: the checkpoint holds the sub-envs' states
    :raises RunSetupError: if the environment or the algorithm cannot be built
    """
    torch.set_num_threads(agent.torch_threads)
    try:
        vec_env = make_vec_env(env, agent, start_step, seed)
        if checkpoint is None:
            return vec_env, build_model(agent, vec_env, seed, device)
        return vec_env, load_model(agent, checkpoint, vec_env, device, exact)
    except ConfigError:
        raise
    except Exception as e:  # a base env that fails to build, kwargs gymnasium rejects, ...
        raise RunSetupError(f"could not build the run: {type(e).__name__}: {e}") from e
