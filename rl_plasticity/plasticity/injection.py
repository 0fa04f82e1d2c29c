"""Plasticity injection (Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney and Barreto, *Deep
reinforcement learning with plasticity injection*, NeurIPS 2023, arXiv 2305.15555).

At injection time the network's head h_theta (its last layers, on top of the encoder phi) is
frozen and a new head is added as the difference of two copies of one fresh draw theta':

    before:  f(x) = h_theta(phi(x))
    after:   f(x) = h_theta(phi(x)) + h_theta'(phi(x)) - h_theta'0(phi(x)),   theta'0 = theta'

with theta frozen, theta'0 frozen and theta' trained (with the encoder phi). At the moment of
injection h_theta' - h_theta'0 = 0, so the predictions are unchanged, and the number of trained
parameters is unchanged (theta' replaces theta). The paper injects once, partway through training
(Atari, DQN-style agents), to restore plasticity without a reset's performance drop.

Here the head is the last hidden layer and the Linears that read it (PPO's ``action_net`` and
``value_net`` with the last layer of each MLP, SAC's ``mu`` / ``log_std`` with the last layer of
``latent_pi``, a critic's or Q-net's last two Linears), i.e. h = W_out sigma(W_h x + b_h) + b_out.
Settings: ``at_change=True`` injects at each environment change, ``every_updates`` (optimizer steps,
0: off) periodically, at most ``max_injections`` times (default 1, the paper's single injection);
each injection freezes every head before it (theta <- theta + theta'_1 - theta'_1,0, ...). No paper
setting for PPO: ``agents/ppo-injection.toml`` injects at the first environment change.

Implementation: ``build_network`` builds the heads with room for ``max_injections`` injections
(the module structure never changes afterwards, so a saved model loads with SB3's ``load``; the
number of injections done is a buffer saved with the model, and the trainable flags are restored
from it on load). Until the k-th injection its branches are not computed. At the injection the new
head is drawn as the framework draws the network (``init="sb3"``: SB3's orthogonal gains for
PPO/A2C; else a named distribution), copied into theta'0, the earlier heads are frozen (their
gradients and optimizer state dropped), and theta' starts with fresh optimizer state. Every
parameter is in the optimizer from the start (frozen ones receive no gradient), so the new head
trains with the optimizer SB3 built and saves. Target networks (SAC, TD3, DQN) share the count
of injections with their network (they are built with the same structure), so they compute the
injected heads too, and their copies follow by Polyak averaging (at an environment change the SB3
callback sets them equal to the networks, ``syncs_targets``). The shared count is a plain Python
object (a device move copies buffers, not it); each module writes it to its ``injected`` buffer
when saved and reads it back when loaded.

Plasticine's ``pi`` scripts inject once at mid-training into the output Linears only (a linear
head: theta + theta' - theta'0 is then a reparametrization of one Linear), leave theta trainable,
and build theta' after the optimizer, so theta' never trains; here the head has a hidden layer,
theta is frozen and theta' trains.

The head's hidden layer is no longer a Linear -> activation chain, so unit-level methods (CBP,
ReDo, ReGraMa) and per-unit metrics see only the layers before it.

Hooks: ``build_network``, ``after_step`` (periodic) and ``on_context_change``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from rl_plasticity.plasticity.architecture import hidden_pairs, replace_module
from rl_plasticity.plasticity.core import check_schedule
from rl_plasticity.plasticity.init import check_init, reinit_linear_
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.plasticity.reset import RESET_INITS
from rl_plasticity.validate import check_int


def _trainable(k: int, n_branches: int) -> list[bool]:
    """Which branches train after ``k`` injections: the newest theta' only (branch 0 before)."""
    return [b == (2 * k - 1 if k else 0) for b in range(n_branches)]


class Count:
    """The number of injections done, shared by the modules of a network and of its target.

    :param value: injections so far
    """

    def __init__(self, value: int = 0) -> None:
        self.value = value


class _Site(nn.Module):
    """A module with branches 0 (theta), then (theta'_k, theta'_k0) for k = 1, 2, ...

    :param count: the number of injections done, shared with the network's other sites and the
        same site of its target (saved as the buffer ``injected``)
    """

    def __init__(self, count: Count) -> None:
        super().__init__()
        self.count = count
        self.register_buffer("injected", torch.tensor(count.value, dtype=torch.long))

    def branch_modules(self) -> list[nn.ModuleList]:
        raise NotImplementedError

    def set_trainable(self) -> None:
        """Set ``requires_grad`` of every branch from the number of injections."""
        branches = self.branch_modules()
        flags = _trainable(self.count.value, len(branches[0]))
        for modules in branches:
            for module, flag in zip(modules, flags, strict=True):
                for param in module.parameters():
                    param.requires_grad_(flag)

    def _save_to_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.injected.fill_(self.count.value)
        super()._save_to_state_dict(*args, **kwargs)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.count.value = int(self.injected)
        self.set_trainable()


class InjectedFeatures(_Site):
    """The head's hidden layer, once per branch: ``[sigma(W_b x + b_b) for active b]``.

    :param linear: the layer's Linear (branch 0 keeps this very module)
    :param activation: its activation
    :param n_branches: 1 + 2 * max_injections
    :param count: the shared injection count
    """

    def __init__(
        self, linear: nn.Linear, activation: nn.Module, n_branches: int, count: Count
    ) -> None:
        super().__init__(count)
        fresh = [copy.deepcopy(linear) for _ in range(n_branches - 1)]
        for extra in fresh:
            extra.reset_parameters()
        self.linears = nn.ModuleList([linear, *fresh])
        self.activations = nn.ModuleList([activation, *(copy.deepcopy(activation) for _ in fresh)])
        self.set_trainable()

    def branch_modules(self) -> list[nn.ModuleList]:
        return [self.linears]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = 1 + 2 * self.count.value
        if active == 1:
            return self.activations[0](self.linears[0](x))
        pairs = zip(self.linears[:active], self.activations[:active], strict=True)
        return torch.cat([act(lin(x)) for lin, act in pairs], dim=-1)


class InjectedLinear(_Site):
    """A Linear reading an :class:`InjectedFeatures`: ``sum_b s_b (W_b h_b + c_b)`` with
    s = +1 for theta and theta'_k, -1 for theta'_k0.

    :param linear: the reader (branch 0 keeps this very module)
    :param n_branches: 1 + 2 * max_injections
    :param count: the shared injection count
    """

    def __init__(self, linear: nn.Linear, n_branches: int, count: Count) -> None:
        super().__init__(count)
        fresh = [copy.deepcopy(linear) for _ in range(n_branches - 1)]
        for extra in fresh:
            extra.reset_parameters()
        self.linears = nn.ModuleList([linear, *fresh])
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.set_trainable()

    def branch_modules(self) -> list[nn.ModuleList]:
        return [self.linears]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.count.value
        if k == 0:
            return self.linears[0](x)
        chunks = x.split(self.in_features, dim=-1)
        out = self.linears[0](chunks[0])
        for j in range(1, k + 1):
            new, new0 = self.linears[2 * j - 1], self.linears[2 * j]
            # theta' - theta'0 first: exactly 0 at the injection (equal weights, equal inputs)
            out = out + (new(chunks[2 * j - 1]) - new0(chunks[2 * j]))
        return out


def sites(module: nn.Module) -> list[_Site]:
    """The injection sites of ``module``, in registration order."""
    return [m for m in module.modules() if isinstance(m, _Site)]


@register_method("injection")
class Injection(Method):
    """Plasticity injection into the head of each network.

    :param at_change: inject at each environment change
    :param every_updates: optimizer steps between injections; 0: none periodically
    :param max_injections: at most this many injections (the heads are built with room for them)
    :param init: how the new head is drawn: ``"sb3"`` (as the framework builds the network) or a
        distribution name
    """

    random = True
    syncs_targets = True
    model_counters = ("injections",)

    def __init__(
        self,
        *,
        at_change: bool = True,
        every_updates: int = 0,
        max_injections: int = 1,
        init: str = "sb3",
    ) -> None:
        self.every_updates, self.at_change = check_schedule(every_updates, at_change)
        self.max_injections = check_int("max_injections", max_injections, 1, 100)
        self.init = check_init(init, allowed=RESET_INITS)
        #: injection counts shared by networks of the same structure (a network and its target)
        self._shared: dict[tuple, list[Count]] = {}
        self.sites: list[_Site] = []
        super().__init__()

    @property
    def acts_on_change(self) -> bool:  # type: ignore[override]
        return self.at_change and self.every_updates == 0

    # -- architecture ------------------------------------------------------------------------

    def build_network(self, module: nn.Module) -> nn.Module:
        """Build each head with room for ``max_injections`` injections (nothing injected yet).

        :return: ``module``, changed in place
        :raises ValueError: when the network has no hidden layer
        """
        pairs = hidden_pairs(module)
        incoming = {id(p.linear) for p in pairs}
        last = [p for p in pairs if not any(id(r) in incoming for r in p.readers)]
        if not last:
            raise ValueError(
                f"Injection found no hidden layer (a Linear followed by an activation module in "
                f"an nn.Sequential) in {type(module).__name__}"
            )
        signature = tuple(
            (tuple(p.linear.weight.shape), tuple(tuple(r.weight.shape) for r in p.readers))
            for p in last
        )
        shared = self._shared.get(signature)
        if shared is None:  # the first network of this structure; its target will share it
            shared = [Count() for _ in last]
            self._shared[signature] = shared
        n_branches = 1 + 2 * self.max_injections
        wrapped: dict[int, InjectedLinear] = {}
        for pair, count in zip(last, shared, strict=True):
            features = InjectedFeatures(pair.linear, pair.seq[pair.index + 1], n_branches, count)
            items = list(pair.seq)
            items[pair.index : pair.index + 2] = [features]
            pair.seq._modules = OrderedDict((str(i), m) for i, m in enumerate(items))
            for reader in pair.readers:
                if id(reader) not in wrapped:
                    wrapped[id(reader)] = InjectedLinear(reader, n_branches, count)
                    replace_module(module, reader, wrapped[id(reader)])
        return module

    # -- acting ------------------------------------------------------------------------------

    def setup(self) -> None:
        self.sites = sites(self.module)
        if not self.sites:
            raise ValueError(
                "Injection needs the heads that build_network makes: build the network with it "
                "(SB3: the policy from rl_plasticity.sb3.policies.method_policy)"
            )
        room = (len(self.sites[0].branch_modules()[0]) - 1) // 2
        if room != self.max_injections:
            raise ValueError(
                f"Injection: the network was built with room for {room} injections and this "
                f"instance has max_injections={self.max_injections}; give the callback the "
                "settings the policy was built with"
            )

    @property
    def injections(self) -> int:
        """Injections done so far in this network."""
        return self.sites[0].count.value if self.sites else 0

    def after_step(self) -> None:
        if self.every_updates and self.steps % self.every_updates == 0:
            self.inject()

    def on_context_change(self, phase: int) -> None:
        if self.at_change:
            self.inject()

    def inject(self) -> bool:
        """Inject now: freeze the heads, add theta' - theta'0 drawn afresh.

        :return: False when ``max_injections`` were done already (nothing changes)
        """
        k = self.injections + 1
        if k > self.max_injections:
            return False
        new, new0 = 2 * k - 1, 2 * k
        drawn = self._fresh_heads()
        with torch.no_grad():
            for site, fresh in zip(self.sites, drawn, strict=True):
                for linears, values in zip(site.branch_modules(), fresh, strict=True):
                    for target in (linears[new], linears[new0]):
                        for param, value in zip(target.parameters(), values, strict=True):
                            param.copy_(value)
        for site in self.sites:
            site.count.value = k
            site.set_trainable()
            for linears in site.branch_modules():
                for module in linears:
                    for param in module.parameters():
                        if not param.requires_grad:
                            param.grad = None
                        if self.optimizer is not None:
                            self.optimizer.state.pop(param, None)
        return True

    def _fresh_heads(self) -> list[list[list[torch.Tensor]]]:
        """Branch 0 of every site as the network's initialization would draw it now, per site
        and branch list: the whole network is re-drawn and then restored exactly."""
        if self.init != "sb3":
            drawn = []
            for site in self.sites:
                per_site = []
                for linears in site.branch_modules():
                    fresh = copy.deepcopy(linears[0])
                    reinit_linear_(fresh, self.init, self.generator)
                    per_site.append([p.detach().clone() for p in fresh.parameters()])
                drawn.append(per_site)
            return drawn
        kept = [(p, p.detach().clone()) for p in self.module.parameters()]
        self.reinit(self.module, "default", self.generator)
        drawn = [
            [
                [p.detach().clone() for p in linears[0].parameters()]
                for linears in s.branch_modules()
            ]
            for s in self.sites
        ]
        with torch.no_grad():
            for param, value in kept:
                param.copy_(value)
        return drawn

    def counters(self) -> dict[str, float]:
        return {"injections": self.injections}
