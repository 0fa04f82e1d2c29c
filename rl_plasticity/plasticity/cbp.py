"""Continual backprop (Dohare et al., *Loss of plasticity in deep continual learning*, Nature 2024).

Plain PyTorch, two lines::

    from rl_plasticity.plasticity.cbp import CBP
    cbp = CBP(replacement_rate=1e-4, maturity_threshold=100).attach(net, optimizer)
    # the training loop is unchanged: forward, loss.backward(), optimizer.step()

A unit is replaced only once it is older than ``maturity_threshold`` optimizer steps (default
10,000): ``attach(..., expected_updates=n)`` warns at once when a loop of ``n`` steps is too
short for any, and ``cbp.detach()`` warns when none was replaced for that reason.

After every ``optimizer.step()``, for each hidden layer, with h the layer's features on that step's
minibatch (the latest forward run with gradients enabled):

* age_i += 1
* contribution utility u_i <- eta u_i + (1 - eta) mean_batch|h_i| sum_k |W_out[k, i]|, summed over
  every Linear that reads the layer (SAC's latent feeds both ``mu`` and ``log_std``)
* eligible units: age_i > maturity_threshold
* rho |eligible| is added to an accumulator; floor(accumulator) units are replaced and the
  fraction is kept, so the count has no randomness and no bursts
* the replaced units are the eligible ones of least bias-corrected utility u_i / (1 - eta^age_i):
  incoming weights re-drawn from the layer's initial distribution, incoming bias 0, outgoing
  weights 0, utility and age 0, optimizer state of those rows/columns 0 (see ``core.reinit_units_``)

Mean correction: the paper's algorithm also keeps a running mean f_i of h_i and adds
``W_out[:, i] * f_i / (1 - eta^age_i)`` to the outgoing bias before zeroing the column. The
official code zeroes that mean before using it, so the published results were obtained without it;
it is off by default here (``mean_correction=False``) and available as an option.

Instantaneous utility (the code's RL config ``cbpi``, ``lop/rl/cfg/ant/cbpi.yml``): ``cbp.yml``
with ``decay_rate: 0``, so u_i is the latest step's contribution alone (bias correction 1 - 0^age
= 1). It is this class with ``decay_rate=0`` (spec ``ppo-cbpi``). The code's contribution takes
the mean over outgoing weights, this class the sum: a constant factor per layer, same ranking.

Optimizer state of replaced units (fidelity check). Here each replaced unit's Adam moments
(``exp_avg``, ``exp_avg_sq``) are zeroed; the step count, one scalar per parameter tensor in torch's
Adam, is not. The authors' code differs in two ways. Its supervised experiments use ``AdamGnT``,
whose step count is per element and is reset to 0 with the moments. Its RL PPO
(``lop/rl/run_ppo.py``) builds ``torch.optim.Adam``, and ``GnT`` resets optimizer state only for
an ``AdamGnT`` (``opt_type`` stays ``"sgd"`` otherwise), so the published RL runs reset neither
moments nor step: a new unit's incoming row inherits the replaced unit's moments. What it changes,
with betas (0.99, 0.99), for an element whose gradient g is the same on each of the k steps since
its reset (global step t large, so 1 - beta^t = 1; eps neglected), update / lr =

* moments zeroed, shared step (here): (1 - 0.99^k) / sqrt(1 - 0.99^k) = sqrt(1 - 0.99^k):
  0.100 at k = 1, 0.309 at k = 10, 0.796 at k = 100, 0.975 at k = 300: a ~100-step warm-up;
* moments and per-element step reset (AdamGnT): 1 from the first step (exact bias correction),
  10x the first update here;
* nothing reset (the RL code): 0.99 m_old + 0.01 g over sqrt(0.99 v_old + 0.01 g^2), i.e.
  dominated by the replaced unit's history for ~100 steps; equal to the first case when that unit
  was silent long enough for its moments to decay.

``optimizer_state="keep"`` reproduces the RL code; the default ``"zero"`` is the first case.

Populations (P networks of one architecture trained as stacks: the PPO population engine, the
supervised population): :meth:`CBP.stacked_after_step` takes every member's step above at once,
one member's CBP each, equal to its single run (the bookkeeping on stacks is in ``cbp_stacked``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from rl_plasticity.catalog import activation_of, init_names
from rl_plasticity.plasticity.cbp_stacked import UnitState, members_due, stacked_units
from rl_plasticity.plasticity.core import reinit_units_
from rl_plasticity.plasticity.init import check_init, weight_bound
from rl_plasticity.plasticity.layers import HiddenLayer
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.plasticity.stacked import MemberStacks
from rl_plasticity.validate import check_bool, check_choice, check_int, check_number

#: Initial distributions CBP can re-draw incoming weights from (see ``init.weight_bound``).
CBP_INITS = init_names("unit")


_NONE = torch.empty(0, dtype=torch.long)


def least_useful_units(
    utility: torch.Tensor, age: torch.Tensor, maturity_threshold: int, decay_rate: float, n: int
) -> torch.Tensor:
    """The ``n`` eligible units (age above the maturity threshold) of least bias-corrected
    utility, u / (1 - eta^age): the units continual backprop replaces.

    :param utility: each unit's running utility
    :param age: each unit's age in steps
    :param maturity_threshold: m; only older units are eligible
    :param decay_rate: eta, the utility's decay
    :param n: how many to pick (at most the number eligible)
    :return: the units' indices
    """
    eligible = age > maturity_threshold
    ranked = (utility / (1 - decay_rate ** age.double())).masked_fill(~eligible, float("inf"))
    return torch.topk(ranked, n, largest=False).indices


def _nonnegative(activation: nn.Module) -> bool:
    """Whether |h| = h for this activation (then the abs can be skipped)."""
    entry = activation_of(activation)
    return entry is not None and entry.non_negative


@register_method("cbp")
class CBP(Method):
    """Continual backprop on the hidden layers of a network, acting after each optimizer step.

    :param replacement_rate: rho, fraction of eligible units replaced per step (paper, RL: 1e-4)
    :param maturity_threshold: m, optimizer steps a unit is protected after creation (paper, RL:
        10,000; supervised: 100)
    :param decay_rate: eta, decay of the running utility (paper: 0.99)
    :param init: incoming weights' distribution: ``"lecun_uniform"`` (the paper's),
        ``"kaiming_uniform"`` (torch's Linear default) or ``"match"`` (uniform with the standard
        deviation the layer's weights have now)
    :param mean_correction: fold a replaced unit's mean contribution into the next layer's bias
        (the paper's algorithm; off in the official code, off by default)
    :param optimizer_state: ``"zero"``: a replaced unit's optimizer state (Adam's moments of its
        rows and columns) is zeroed, as the paper's algorithm and the code's ``AdamGnT`` do;
        ``"keep"``: left as it is, as the code's RL PPO (torch's Adam) does
    :raises ValueError: when ``module`` has no hidden layer (the method would never act)
    """

    needs_layers = True
    records_features = True
    random = True
    population_form = True

    def __init__(
        self,
        *,
        replacement_rate: float = 1e-4,
        maturity_threshold: int = 10_000,
        decay_rate: float = 0.99,
        init: str = "lecun_uniform",
        mean_correction: bool = False,
        optimizer_state: str = "zero",
    ) -> None:
        self.replacement_rate = check_number("replacement_rate", replacement_rate, 0.0, 1.0)
        self.maturity_threshold = check_int("maturity_threshold", maturity_threshold, 0)
        self.decay_rate = check_number("decay_rate", decay_rate, 0.0, 1.0, high_open=True)
        self.init = check_init(init, allowed=CBP_INITS)
        self.mean_correction = check_bool("mean_correction", mean_correction)
        self.optimizer_state = check_choice("optimizer_state", optimizer_state, ("zero", "keep"))
        self.units: list[UnitState] = []
        super().__init__()

    def setup(self) -> None:
        self.units = [self._fresh_state(layer) for layer in self.layers]
        #: per layer, whether |h| = h (the abs is skipped on the hot path)
        self._nonnegative = [_nonnegative(layer.activation) for layer in self.layers]

    def _fresh_state(self, layer: HiddenLayer) -> UnitState:
        weight = layer.incoming.weight
        n = layer.n_units
        return UnitState(
            utility=torch.zeros(n, device=weight.device),
            mean=torch.zeros(n, device=weight.device),
            age=torch.zeros(n, dtype=torch.long, device=weight.device),
            accumulated=0.0,
            bound=weight_bound(layer.incoming, self.init),
            young=[[0, n]],
        )

    def after_step(self) -> None:
        self.step(self.take_features())

    def step(self, features: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """One CBP step, given each layer's features on the step's minibatch (called by the hook).

        :param features: per layer, activations of shape (samples, units), or None to skip the
            layer (no training forward went through it since the last step)
        :return: per layer, the indices of the units replaced
        """
        active = [i for i, h in enumerate(features) if h is not None]
        with torch.no_grad():
            if active:
                self._track_utility(active, features)
            return [
                self._replace_layer(layer, state) if h is not None else _NONE
                for layer, state, h in zip(self.layers, self.units, features, strict=True)
            ]

    def _track_utility(self, active: list[int], features: Sequence[torch.Tensor | None]) -> None:
        # Hot path, once per optimizer step: the layers' ages and utilities are updated together
        # (one multi-tensor call per operation instead of one call per layer).
        eta = self.decay_rate
        states = [self.units[i] for i in active]
        torch._foreach_add_([s.age for s in states], 1)
        outgoing, magnitude, scale = [], [], []
        for i in active:
            layer, h = self.layers[i], features[i]
            total = layer.outgoing[0].weight.abs().sum(0)
            for out in layer.outgoing[1:]:
                total += out.weight.abs().sum(0)
            outgoing.append(total)
            magnitude.append((h if self._nonnegative[i] else h.abs()).sum(0))
            scale.append((1 - eta) / h.shape[0])
        utility = [s.utility for s in states]
        torch._foreach_mul_(utility, eta)
        torch._foreach_addcmul_(utility, magnitude, outgoing, scale)
        if self.mean_correction:
            for i, state in zip(active, states, strict=True):
                state.mean.mul_(eta).add_(features[i].mean(0), alpha=1 - eta)

    def _replace_layer(self, layer: HiddenLayer, state: UnitState) -> torch.Tensor:
        """Replace this step's share of the layer's eligible units (after its utility update)."""
        n_replace = self._units_due(state)
        if n_replace == 0:
            return _NONE
        state.young.append([0, n_replace])
        optimizer = self.optimizer if self.optimizer_state == "zero" else None
        return self._replace_units(layer, state, n_replace, optimizer)

    def _units_due(self, state: UnitState) -> int:
        """Age the layer's young units and add this step's share to the accumulator; return how
        many units to replace now (taken from the accumulator)."""
        n_eligible = state.age_and_count_eligible(self.maturity_threshold)
        if n_eligible == 0:
            return 0
        state.accumulated += self.replacement_rate * n_eligible
        n_replace = min(int(state.accumulated), n_eligible)
        state.accumulated -= n_replace
        return n_replace

    def _replace_units(
        self, layer: HiddenLayer, state: UnitState, n_replace: int, optimizer: Any
    ) -> torch.Tensor:
        """Replace the ``n_replace`` eligible units of least utility (optimizer: whose state of
        those rows and columns is zeroed, or None)."""
        eta = self.decay_rate
        units = least_useful_units(
            state.utility, state.age, self.maturity_threshold, eta, n_replace
        )
        means = state.mean / (1 - eta ** state.age.double()) if self.mean_correction else None
        reinit_units_(layer, units, optimizer, state.bound, self.generator, means)
        state.utility[units] = 0
        state.mean[units] = 0
        state.age[units] = 0
        state.replaced_total += n_replace
        return units

    @classmethod
    def stacked_after_step(cls, methods: Sequence[CBP], stacks: MemberStacks) -> None:
        """CBP's step for P members, in one tensor operation per layer for all members: ages,
        utilities (and means) on (P, units) stacks, the eligible units counted and owed units
        accumulated on them (``cbp_stacked``; each member's state holds slices of the stacks).
        Then, only for the members with units due on this step (rare), its replacements on its
        slices of the stacks and of the optimizer state, drawn from its own generator, in the
        single CBP's order.

        :param methods: member k's CBP (equal settings) at index k
        :param stacks: the members' parameters after the step, and the step's features
        """
        first = methods[0]
        eta = first.decay_rate
        kept = stacked_units(first, [m.units for m in methods], stacks)
        with torch.no_grad():
            active = []
            for index, (layer, units) in enumerate(zip(first.layers, kept, strict=True)):
                h = stacks.layer_features(layer)
                if h is None:  # no training forward through it since the last step
                    continue
                active.append(index)
                units.age.add_(1)
                outgoing = stacks.stack(layer.outgoing[0].weight).abs().sum(1)
                for out in layer.outgoing[1:]:
                    outgoing += stacks.stack(out.weight).abs().sum(1)
                magnitude = (h if first._nonnegative[index] else h.abs()).sum(1)
                scale = (1 - eta) / h.shape[1]
                units.utility.mul_(eta).addcmul_(magnitude, outgoing, value=scale)
                if first.mean_correction:
                    units.mean.mul_(eta).add_(h.mean(1), alpha=1 - eta)
            rho, maturity = first.replacement_rate, first.maturity_threshold
            for index in active:
                layer = first.layers[index]
                for k, n_replace in members_due(kept[index], rho, maturity):
                    method = methods[k]
                    view = stacks.layer(layer, k)
                    optimizer = None
                    if method.optimizer_state == "zero":
                        params = [view.incoming.weight, view.incoming.bias]
                        params += [out.weight for out in view.outgoing]
                        optimizer = stacks.member_optimizer(k, [p for p in params if p is not None])
                    method._replace_units(view, method.units[index], n_replace, optimizer)

    @property
    def replaced_total(self) -> dict[str, int]:
        """Units replaced so far, by layer name."""
        return {
            layer.name: s.replaced_total for layer, s in zip(self.layers, self.units, strict=True)
        }

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: per-layer unit state and the generator's state.

        :return: a dict of tensors and numbers (``torch.save`` it beside the model)
        """
        return {
            **super().state_dict(),
            "layers": {
                layer.name: {
                    "utility": s.utility.clone(),
                    "mean": s.mean.clone(),
                    "age": s.age.clone(),
                    "accumulated": float(s.accumulated),
                    "bound": s.bound,
                    "replaced_total": s.replaced_total,
                }
                for layer, s in zip(self.layers, self.units, strict=True)
            },
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of a CBP on the same architecture).

        :param state: the saved state
        :raises KeyError: if a layer of this network is missing from ``state``
        """
        super().load_state_dict(state)
        for layer, s in zip(self.layers, self.units, strict=True):
            saved = state["layers"][layer.name]
            s.utility.copy_(saved["utility"])
            s.mean.copy_(saved["mean"])
            s.age.copy_(saved["age"])
            if torch.is_tensor(s.accumulated):  # a member's: its slice of the stack
                s.accumulated.fill_(float(saved["accumulated"]))
            else:
                s.accumulated = float(saved["accumulated"])
            s.bound = float(saved["bound"])
            s.replaced_total = int(saved["replaced_total"])
            s.young = None

    def check_reachable(self, updates: int) -> str | None:
        oldest = max(int(s.age.max()) for s in self.units)
        if oldest + updates > self.maturity_threshold:
            return None
        return (
            f"maturity_threshold={self.maturity_threshold} optimizer steps is beyond this run's at "
            f"most {updates} (oldest unit {oldest}): no unit becomes eligible, so none will be "
            "replaced. Train longer or lower maturity_threshold"
        )

    def idle_reason(self) -> str | None:
        if any(self.replaced_total.values()):
            return None
        oldest = max(int(s.age.max()) for s in self.units)
        if oldest > self.maturity_threshold:
            return None
        return (
            f"no unit became older than maturity_threshold={self.maturity_threshold} optimizer "
            f"steps in the {self.steps} it took (oldest unit {oldest}), so none was replaced. "
            "Train longer or lower maturity_threshold"
        )
