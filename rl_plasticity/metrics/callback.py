"""SB3 callback that measures plasticity metrics while an agent trains.

Every ``every`` environment steps it takes a batch of observations as the algorithm sees them
(on-policy: the rollout buffer just collected; off-policy: a replay-buffer sample, normalised by
the algorithm's ``VecNormalize`` if any), forwards it through each trained network with forward
hooks on the hidden layers' activation modules, and computes the metrics of
:mod:`rl_plasticity.metrics.functional` per hidden layer. Values go to the SB3 logger under short
keys that every SB3 output format takes whole (``plasticity/pi1/dead``: see
:mod:`rl_plasticity.sb3.layer_names`) and, with ``csv_path``, to one CSV row per measurement under
the full names ``plasticity/<net>/<layer>/<metric>``, with the timestep and the environment's
context (``info["context"]``: phase, physics values).

A measurement draws no number from the algorithm's random streams (numpy and torch states are
restored), so a run with the callback trains exactly as one without it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from torch import nn

from rl_plasticity.catalog import activation_of
from rl_plasticity.errors import warn_user
from rl_plasticity.metrics import functional as fm
from rl_plasticity.metrics.hessian import hessian_spectrum
from rl_plasticity.metrics.probe import probe_loss
from rl_plasticity.metrics.registry import column
from rl_plasticity.plasticity.layers import HiddenLayer
from rl_plasticity.sb3 import algorithms
from rl_plasticity.sb3.carried_state import carry_state
from rl_plasticity.sb3.layer_names import layer_labels
from rl_plasticity.sb3.networks import NetworkGroup, network_groups
from rl_plasticity.validate import check_int, check_number, check_optional_int

#: Largest batch, Lanczos and probe step count (a measurement holds the batch's activations).
MAX_BATCH = 1_000_000


class PlasticityMetrics(BaseCallback):
    """Measure dead/dormant/saturated/cloned units, feature ranks, weights and gradients.

    Works with PPO, A2C, SAC, TD3 and DQN (MLP policies). CSV columns, per network ``<net>``
    (``policy``, ``actor``, ``critic``, ``q_net``) and hidden layer ``<layer>`` (its incoming
    Linear's name, e.g. ``mlp_extractor.policy_net.0``), are ``plasticity/<net>/<layer>/<metric>``;
    the logger (stdout, tensorboard, progress.csv) gets ``plasticity/<label>/<metric>`` with the
    layer's short label (``pi1``, ``vf2``, ``qf0_1``, ``q1``; see
    :func:`rl_plasticity.sb3.layer_names.layer_labels`). Each ``<metric>`` is a key of
    :data:`rl_plasticity.metrics.registry.METRICS`, with its title, unit and figure (the report
    reads them there; ``docs/metrics.md`` lists them): per hidden layer the unit, rank, feature,
    weight and gradient metrics, per network the gradient norm, the policy's entropy or action
    std, and with the heavy options the Hessian's and the probe's.

    Definitions: ``dead`` is a unit with ``h == 0`` on every sample for ReLU/ReLU6 and
    ``|h| <= 1e-7`` on at least 99% of samples otherwise; ``rarely_active`` is active on at most 1%
    of samples (the Nature paper's "dormant"); weight metrics are of the layer's incoming weight
    matrix; ``weight_change`` is the RMS change since the previous measurement (NaN at the first);
    gradient norms are of the gradients the optimizer used at its last step (after SB3's gradient
    clipping; NaN before the first step).

    :param every: measure when ``num_timesteps`` crosses a multiple of this, once at the first
        opportunity (a baseline) and at the last step of a run that reaches its total (off the
        cadence: it changes neither the batch draws nor ``weight_change`` of later measurements).
        On-policy algorithms are measured at rollout ends (the rollout is the batch): an
        ``every`` that is not a multiple of the rollout's ``n_steps * n_envs`` steps is warned
        about at training start, with the spacing it gives. Default 20,480 (ten of the paper's
        2,048-step rollouts): about 1% of PPO's training time with the paper's settings
        (``bench/results/metrics.md``).
    :param csv_path: file to append one row per measurement to (header written when the file is
        new or empty; an existing header is reused), or ``None``
    :param batch_size: observations per measurement (fewer if the buffer holds fewer)
    :param hessian_every: measure the Hessian epsilon-rank and top eigenvalue of each network's
        training loss on the batch every this many steps (rounded to a measurement), or ``None``
    :param hessian_steps: Lanczos steps for the Hessian
    :param hessian_epsilon: eigenvalues with ``|lambda| > hessian_epsilon * |lambda|_max`` count
        for the rank (relative, so one setting suits a loss of any scale). The quadrature
        resolves the spectrum only to about ``top_eig / hessian_steps``: keep it at or above
        ``1 / hessian_steps`` (see :mod:`rl_plasticity.metrics.hessian`)
    :param probe_every: run the plasticity probe every this many steps (rounded to a
        measurement), or ``None``
    :param probe_steps: training steps of the probe's copy
    :param cloned_threshold: cosine similarity above which two units are clones
    :param seed: seed of the batch selection, Lanczos vectors and probe targets
    :param verbose: SB3 verbosity
    """

    def __init__(
        self,
        every: int = 20_480,
        csv_path: str | Path | None = None,
        batch_size: int = 1024,
        hessian_every: int | None = None,
        hessian_steps: int = 30,
        hessian_epsilon: float = 0.05,
        probe_every: int | None = None,
        probe_steps: int = 100,
        cloned_threshold: float = 0.95,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        check_int("every", every, 1)
        check_int("batch_size", batch_size, 2, MAX_BATCH)
        check_optional_int("hessian_every", hessian_every, 1)
        check_int("hessian_steps", hessian_steps, 1, MAX_BATCH)
        check_optional_int("probe_every", probe_every, 1)
        check_int("probe_steps", probe_steps, 1, MAX_BATCH)
        check_int("seed", seed, 0)
        check_number("hessian_epsilon", hessian_epsilon, 0.0, low_open=True)
        check_number("cloned_threshold", cloned_threshold, -1.0, 1.0, high_open=True)
        self.every = every
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.batch_size = batch_size
        self.hessian_every = hessian_every
        self.hessian_steps = hessian_steps
        self.hessian_epsilon = float(hessian_epsilon)
        self.probe_every = probe_every
        self.probe_steps = probe_steps
        self.cloned_threshold = float(cloned_threshold)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._last_bucket: dict[str, int] = {"metrics": -1, "hessian": -1, "probe": -1}
        self._groups: list[NetworkGroup] = []
        self._grad_norms: dict[str, dict[int, torch.Tensor]] = {}
        self._previous_weights: dict[tuple[str, str], torch.Tensor] = {}
        self._hook_handles: list[Any] = []
        self._last_infos: list[dict] | None = None
        self._columns: list[str] | None = None
        #: full metric name (the CSV column) -> its short logger key
        self._logger_keys: dict[str, str] = {}
        self.n_measurements = 0
        #: ``num_timesteps`` of the latest measurement
        self.last_measured_step: int | None = None

    # ----- attaching -------------------------------------------------------------------------

    def _on_training_start(self) -> None:
        self._groups = network_groups(self.model, features=True)
        for group in self._groups:
            # Kept across learn() calls: a measurement before the first step of a continued run
            # still reports the last step's gradients.
            self._grad_norms.setdefault(group.name, {})
            handle = group.optimizer.register_step_pre_hook(self._grad_hook(group.name))
            self._hook_handles.append(handle)
        saved = carry_state(self.model, "metrics", self.state_dict)
        if saved is not None and self.n_measurements == 0:
            self.load_state_dict(saved)
        self._check_cadence()

    def _check_cadence(self) -> None:
        if isinstance(self.model, OnPolicyAlgorithm):
            unit, size = "rollout", self.model.n_steps * self.model.n_envs
        else:
            unit, size = "step of all envs", self.model.n_envs
        if self.every % size:
            warn_user(
                f"PlasticityMetrics: every={self.every} is not a multiple of the {unit} "
                f"({size} env steps); each measurement waits for the first {unit} end at or "
                f"after a multiple of {self.every}, so measurements come every "
                f"{max(size, self.every)} steps on average, at multiples of {size}. Give a "
                f"multiple of {size} for exact spacing"
            )

    def _on_training_end(self) -> None:
        # The last step of a run that reached its total is always measured (its summary reads
        # the final state); a run stopped early (a signal) is not, so that its resume matches.
        finished = self.num_timesteps >= self.model._total_timesteps
        if finished and self.last_measured_step != self.num_timesteps and self._can_measure():
            self._measure_off_cadence()
        for handle in self._hook_handles:
            handle.remove()
        self._hook_handles.clear()

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to measure as the uninterrupted one would (while attached).
        It also travels with the model through SB3's ``save`` / ``load``
        (:mod:`rl_plasticity.sb3.carried_state`): a fresh callback on a loaded model continues
        from it.

        Gradient norms are kept by position in each network's optimizer, as a resumed model has
        new parameter objects.
        """
        return {
            "last_bucket": dict(self._last_bucket),
            "rng": self._rng.bit_generator.state,
            "previous_weights": dict(self._previous_weights),
            "grad_norms": {
                g.name: [self._grad_norms.get(g.name, {}).get(id(p)) for p in _parameters(g)]
                for g in self._groups
            },
            "n_measurements": self.n_measurements,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; call once training has started (the model is attached).

        :param state: from :meth:`state_dict` of the same callback settings and architecture
        """
        self._last_bucket.update(state["last_bucket"])
        self._rng.bit_generator.state = state["rng"]
        self._previous_weights = dict(state["previous_weights"])
        for group in self._groups:
            norms = state["grad_norms"].get(group.name, [])
            self._grad_norms[group.name] = {
                id(p): n for p, n in zip(_parameters(group), norms, strict=False) if n is not None
            }
        self.n_measurements = state["n_measurements"]

    def _grad_hook(self, name: str) -> Callable[..., None]:
        # Norms (not copies) of the gradients the optimizer is about to apply: later backward
        # passes (SAC's actor loss runs through the critic) must not change what is reported.
        def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self._grad_norms[name] = {
                id(p): torch.linalg.vector_norm(p.grad.detach())
                for group in optimizer.param_groups
                for p in group["params"]
                if p.grad is not None
            }

        return hook

    def record_gradient_norms(
        self, optimizer: torch.optim.Optimizer, norms: dict[int, torch.Tensor]
    ) -> None:
        """Take the gradient norms of an optimizer's last step from an update that ran outside
        it (a population's batched update, which steps stacks of the members' parameters), as
        this callback's step hook records them.

        :param optimizer: the network's optimizer
        :param norms: ``id(parameter)`` -> the norm of the gradient its last step applied
        """
        for group in self._groups:
            if group.optimizer is optimizer:
                self._grad_norms[group.name] = dict(norms)

    # ----- when to measure ---------------------------------------------------------------------

    def _due(self, kind: str, every: int | None) -> bool:
        if every is None:
            return False
        bucket = self.num_timesteps // every
        if bucket > self._last_bucket[kind]:
            self._last_bucket[kind] = bucket
            return True
        return False

    def _can_measure(self) -> bool:
        return algorithms.has_batch(self.model)

    def _on_step(self) -> bool:
        self._last_infos = self.locals.get("infos")
        if isinstance(self.model, OffPolicyAlgorithm) and self._can_measure():
            self._maybe_measure()
        return True

    def _on_rollout_end(self) -> None:
        if isinstance(self.model, OnPolicyAlgorithm):
            self._maybe_measure()

    def _maybe_measure(self) -> None:
        if not self._due("metrics", self.every):
            return
        with_hessian = self._due("hessian", self.hessian_every)
        with_probe = self._due("probe", self.probe_every)
        self._measure_and_record(with_hessian, with_probe)

    def _measure_off_cadence(self) -> None:
        # Leaves the batch generator and the previous weights as they were: a run extended
        # later measures on its cadence exactly as one that never stopped.
        rng, previous = self._rng, dict(self._previous_weights)
        self._rng = np.random.default_rng([self.seed, self.num_timesteps])
        try:
            self._measure_and_record(with_hessian=False, with_probe=False)
        finally:
            self._rng, self._previous_weights = rng, previous

    def _measure_and_record(self, with_hessian: bool, with_probe: bool) -> None:
        np_state = np.random.get_state()
        device = self.model.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            values = self.measure(with_hessian=with_hessian, with_probe=with_probe)
        np.random.set_state(np_state)
        for key, value in values.items():
            self.logger.record(self._logger_keys.get(key, key), value)
        if self.csv_path is not None:
            self._write_row(values)
        self.n_measurements += 1
        self.last_measured_step = self.num_timesteps

    # ----- the measurement ---------------------------------------------------------------------

    def measure(self, with_hessian: bool = False, with_probe: bool = False) -> dict[str, float]:
        """Measure now on a fresh batch; what the callback logs at each due step.

        :param with_hessian: also the Hessian metrics
        :param with_probe: also the plasticity probe
        :return: logger key -> value
        """
        model = self.model
        if not self._groups:
            self._groups = network_groups(model, features=True)
        batch = algorithms.sample_batch(model, self.batch_size, self._rng)
        values: dict[str, float] = {}
        activations: dict[int, torch.Tensor] = {}
        layers = [layer for group in self._groups for layer in group.layers]
        handles = [
            layer.activation.register_forward_hook(_store_output(activations, id(layer)))
            for layer in layers
        ]
        try:
            with torch.no_grad():
                algorithms.forward_all(model, batch)
                statistics = algorithms.policy_statistics(model, batch)
        finally:
            for handle in handles:
                handle.remove()
        labels = self._labels()
        for group in self._groups:
            norms = self._grad_norms.get(group.name, {})
            for layer in group.layers:
                h = activations[id(layer)].reshape(-1, layer.n_units)
                label = labels[(group.name, layer.name)]
                for metric, value in self._layer_metrics(group.name, layer, h, norms).items():
                    key = column(group.name, metric, layer.name)
                    values[key] = value
                    self._logger_keys[key] = f"plasticity/{label}/{metric}"
            values[column(group.name, "grad_norm")] = fm.global_norm(norms.values())
        values.update(statistics)
        if with_hessian:
            for name, loss_fn in algorithms.training_losses(model, batch).items():
                group = next(g for g in self._groups if g.name == name)
                params = [p for pg in group.optimizer.param_groups for p in pg["params"]]
                spectrum = hessian_spectrum(loss_fn, params, self.hessian_steps, seed=self.seed)
                values[column(name, "hessian_erank")] = spectrum.epsilon_rank(self.hessian_epsilon)
                values[column(name, "hessian_top_eig")] = spectrum.top_eigenvalues(1)[0]
        if with_probe:
            for key, (network, inputs) in algorithms.probe_networks(model, batch).items():
                values[f"plasticity/{key}"] = probe_loss(
                    network, inputs, steps=self.probe_steps, seed=self.seed
                )
        return values

    def _labels(self) -> dict[tuple[str, str], str]:
        return layer_labels((g.name, layer.name) for g in self._groups for layer in g.layers)

    def _layer_metrics(
        self, group: str, layer: HiddenLayer, h: torch.Tensor, norms: dict[int, torch.Tensor]
    ) -> dict[str, float]:
        weight = layer.incoming.weight.detach()
        metrics = fm.layer_metrics(
            h,
            activation_of(layer.activation),
            weight,
            self._previous_weights.get((group, layer.name)),
            norms.get(id(layer.incoming.weight)),
            self.cloned_threshold,
        )
        self._previous_weights[(group, layer.name)] = weight.clone()
        return metrics

    # ----- the CSV -----------------------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        contexts = [info["context"] for info in self._last_infos or () if "context" in info]
        if not contexts:
            return {}
        # Sub-envs may briefly disagree on the phase; the largest is the one that has changed.
        return dict(max(contexts, key=lambda c: c.get("phase", 0)))

    def _write_row(self, values: dict[str, float]) -> None:
        context = self._context()
        row = {"timestep": self.num_timesteps, "phase": context.pop("phase", ""), **context}
        row.update(values)
        path = self.csv_path
        assert path is not None
        exists = path.exists() and path.stat().st_size > 0
        if self._columns is None:
            if exists:
                with path.open(newline="") as f:
                    self._columns = next(csv.reader(f))
                missing = [key for key in row if key not in self._columns]
                if missing:
                    warn_user(
                        f"{path} exists and its header lacks {len(missing)} of the columns this "
                        f"run measures (first: {missing[0]}); they are not written to it. Give "
                        "csv_path a new file to keep them"
                    )
            else:
                self._columns = list(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, self._columns, restval="", extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow(row)


def _store_output(store: dict[int, torch.Tensor], key: int) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        store[key] = output.detach()

    return hook


def _parameters(group: NetworkGroup) -> list[torch.Tensor]:
    """A network's parameters in its optimizer's order."""
    return [p for pg in group.optimizer.param_groups for p in pg["params"]]
