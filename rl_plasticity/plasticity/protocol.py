"""The one protocol every plasticity method implements: optional hooks, a registry, settings.

A method is a subclass of :class:`Method` in one file (the paper's math on top, its hooks below),
registered with one line, ``@register_method("cbp")``. Its constructor takes its settings only
(keyword-only, validated there), written once: the SB3 callback
(``rl_plasticity.sb3.callbacks.MethodCallback``), an agent spec's ``[method]`` table and plain
PyTorch code all take them from there. :meth:`Method.attach` puts it on one network (a module and
the optimizer that trains it) and returns it::

    cbp = CBP(replacement_rate=1e-4).attach(net, optimizer, seed=0)

The SB3 callback makes one instance per network the algorithm trains (PPO's policy, SAC's actor
and critic, DQN's Q-net), with seeds ``seed, seed + 1, ...``. Every ``every_updates`` setting
counts optimizer steps of the network the method acts on (:attr:`Method.steps`), not environment
steps.

When each hook runs (one SB3 training iteration; FastPPO calls them at the same points, see the
comment at its ``policy.optimizer.step()``)::

    model built     build_network(net)      each network, before its optimizer exists
                    wrap_optimizer(opt)     each optimizer, once built
    learn() starts  attach(net, opt)        MethodCallback._on_training_start
    rollout start                           forward hooks paused (rollouts run without grad)
    each env step   on_context_change(k)    when info["context"]["phase"] grows (MethodCallback
                                            ._on_step), then target networks are synced for
                                            methods with ``syncs_targets``
    rollout end                             forward hooks resumed; counters logged
    train(), per minibatch:
      forward                               hidden features recorded (``records_features``), the
                                            Sequentials' inputs kept (``loss_features``)
      loss.backward(); clip_grad_norm_      the algorithm's own
      optimizer.step():
        pre-step    loss_term(features)     its gradient added to .grad (features recomputed)
        pre-step    before_step()           on the finished gradient (noisy SGD)
        step                                the optimizer's update
        post-step   after_step()            steps already counts this step (CBP, ReDo, ...)
    learn() ends    detach()                hooks removed; state kept by the callback

The hooks, each a no-op by default:

* :meth:`Method.build_network` -- the architecture (LayerNorm, CReLU, Fourier features, an extra
  head): change the network before its optimizer is built, and return it. Everything the method
  later needs must live in the modules it builds (they are saved with the model), because the
  instance that builds the network is not always the one that trains it (SB3 builds a policy anew
  on ``load``). SB3: ``rl_plasticity.sb3.policies`` runs it inside the policy's construction.
* :meth:`Method.wrap_optimizer` -- the optimizer (TRAC, UPGD): return an optimizer that replaces
  the one built for the network; it must have the same parameters and be a
  ``torch.optim.Optimizer`` (its ``state_dict`` is saved with the model).
* :meth:`Method.loss_term` -- a loss term on the step's minibatch (effective-rank regularizer,
  Parseval, L2-init, spectral regularization). SB3 computes its loss inside ``train()``, so the
  term is added as a gradient in an optimizer pre-step hook, after the algorithm's ``backward()``
  and gradient clipping: the term is computed (with ``features`` recomputed with gradients from
  the inputs the hidden layers' ``nn.Sequential`` containers saw in the step's training forward)
  and its gradient is added to each parameter's ``.grad``. This works for every algorithm and
  optimizer, without subclassing. Clipping: the references add such terms to the loss, so they
  are clipped with it. When :meth:`Method.attach` is told the algorithm's ``max_grad_norm`` (the
  SB3 callback does), the method records the gradient's norm before the algorithm clips it (a
  hook on each parameter's gradient accumulation), undoes the clip's factor, adds the term and
  clips the sum as ``clip_grad_norm_`` would have clipped the loss's gradient with the term in
  it. Without a ``max_grad_norm`` (plain PyTorch, SAC, TD3) nothing is clipped here. This
  assumes the algorithm clips exactly the optimizer's parameters (SB3's PPO, A2C, DQN do).
* :meth:`Method.before_step` -- before each optimizer step, on the finished gradient (noisy SGD:
  its noise is part of its optimizer's step in the authors' code, so it comes after clipping;
  L2-init's closed-form pull toward the initial parameters, which sets ``before_step_is_loss``
  and is clipped with the loss like a ``loss_term``).
* :meth:`Method.after_step` -- after each optimizer step (CBP, ReDo, shrink-and-perturb, weight
  clipping, projections). :meth:`Method.take_features` gives each hidden layer's features on the
  step's minibatch when the class sets ``records_features``.
* :meth:`Method.on_context_change` -- when the environment changes: reset, shrink-and-perturb at
  shifts, injection at shifts.
* :meth:`Method.state_dict` / :meth:`Method.load_state_dict` -- everything needed to continue
  exactly (the base keeps the step count and the method's random generator).

The registry (``register_method``, ``make_method``, ...) is in ``registry``; the names a method
file needs are importable from here too. How a loss term's gradient is added and clipped with the
loss is in ``loss_terms``. This module knows nothing of SB3 or gymnasium.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from rl_plasticity.errors import warn_user
from rl_plasticity.plasticity.core import (
    ActivationRecorder,
    InputRecorder,
    default_reinit,
    new_generator,
    sequential_roots,
)
from rl_plasticity.plasticity.layers import HiddenLayer, find_hidden_layers, required_layers
from rl_plasticity.plasticity.loss_terms import ClipWithLoss, add_term_gradient, recompute_features
from rl_plasticity.plasticity.registry import (
    make_method,
    method_class,
    method_settings,
    register_method,
    registered_methods,
)
from rl_plasticity.validate import check_int, check_optional_int

if TYPE_CHECKING:
    from rl_plasticity.plasticity.stacked import MemberStacks

__all__ = [
    "Method",
    "Reinit",
    "implements",
    "make_method",  # the registry's names, re-exported for method files
    "method_class",
    "method_settings",
    "register_method",
    "registered_methods",
]

#: Re-draws a whole network: ``reinit(module, init, generator)``; init ``"default"`` means as its
#: framework builds it (SB3: orthogonal with gains for PPO/A2C). See :func:`default_reinit`.
Reinit = Callable[[nn.Module, str, torch.Generator], None]


def implements(method: Method | type[Method], hook: str) -> bool:
    """Whether a method implements the hook ``hook`` (its class overrides the base's no-op).

    :param method: a method, or its class
    :param hook: a hook's name, e.g. ``"loss_term"``
    :return: True if its class defines its own
    """
    cls = method if isinstance(method, type) else type(method)
    return getattr(cls, hook) is not getattr(Method, hook)


class Method:
    """Base of every plasticity method: settings in the constructor, :meth:`attach` to a network,
    the hooks, the state.

    A subclass's ``__init__`` takes the method's settings, keyword-only, validates them and calls
    ``super().__init__()``. Per-network state is built in :meth:`setup`, which :meth:`attach`
    runs.
    """

    #: registered name (set by :func:`register_method`)
    name: ClassVar[str] = ""
    #: the method acts on hidden units: attaching to a network without any is an error
    needs_layers: ClassVar[bool] = False
    #: keep each hidden layer's features of the latest training forward (:meth:`take_features`)
    records_features: ClassVar[bool] = False
    #: :meth:`loss_term` reads the hidden layers' features (recomputed with gradients)
    loss_features: ClassVar[bool] = False
    #: the method draws random numbers (it gets its own generator)
    random: ClassVar[bool] = False
    #: the method acts only when the environment changes (the SB3 callback warns when the
    #: environment reports no context phase); a property where it depends on a setting
    acts_on_change: bool = False
    #: after :meth:`on_context_change`, target networks are set equal to the trained ones
    syncs_targets: ClassVar[bool] = False
    #: :meth:`counters` keys that count for the whole model (logged once as ``method/<key>``)
    model_counters: ClassVar[tuple[str, ...]] = ()
    #: :meth:`before_step` adds a loss term's gradient (clipped with the loss, like loss_term's)
    before_step_is_loss: ClassVar[bool] = False
    #: the update hooks it implements have a population form (:meth:`stacked_before_step`,
    #: :meth:`stacked_after_step`; a method that hooks no update step needs none)
    population_form: ClassVar[bool] = False

    def __init__(self) -> None:
        #: seed of the method's generator (set by :meth:`attach`)
        self.seed: int | None = None
        self.module: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.layers: list[HiddenLayer] = []
        self.generator: torch.Generator | None = None
        #: optimizer steps of this network since the method was first attached
        self.steps = 0
        self.reinit: Reinit = default_reinit
        self._recorder: ActivationRecorder | None = None
        self._inputs: InputRecorder | None = None
        self._roots: list[nn.Module] = []
        self._handles: list = []
        #: with a max_grad_norm: clips a loss term with the loss
        self._clip: ClipWithLoss | None = None
        #: a warning that it cannot act (or did not) was given: each instance warns once
        self._warned_idle = False

    # -- hooks (override what the method needs) --------------------------------------------------

    def build_network(self, module: nn.Module) -> nn.Module:
        """Change the architecture before the optimizer is built; return the network.

        :param module: the network (SB3: each network the algorithm builds, targets included)
        :return: the network to use (``module`` changed in place, or a new one)
        """
        return module

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Replace or wrap the optimizer built for a network.

        :param optimizer: the optimizer as built
        :return: the optimizer to use (same parameters)
        """
        return optimizer

    def setup(self) -> None:
        """Build per-network state once attached (:attr:`module`, :attr:`layers` are set)."""

    def after_step(self) -> None:
        """Called after each optimizer step (:attr:`steps` already counts it)."""

    def before_step(self) -> None:
        """Called before each optimizer step, once the step's gradient (``loss_term``'s included)
        is in ``.grad``: change the gradient (noisy SGD). :attr:`steps` does not count it yet."""

    def loss_term(self, features: list[torch.Tensor] | None) -> torch.Tensor | None:
        """A term added to the loss of each optimizer step (its gradient is added to ``.grad``).

        :param features: with ``loss_features``, each hidden layer's features on the step's
            minibatch, recomputed with gradients; else None
        :return: a scalar, or None to add nothing this step
        """
        return None

    def loss_term_due(self) -> bool:
        """Whether :meth:`loss_term` acts on the coming step; when False the step's features are
        not recomputed (a term taken every k-th step costs nothing in between).

        :return: True by default
        """
        return True

    @classmethod
    def stacked_before_step(cls, methods: Sequence[Method], stacks: MemberStacks) -> None:
        """:meth:`before_step` for P members' instances at once (``methods[k]`` is member k's,
        each attached to its own network), on the gradients of ``stacks`` (a loss term's
        before the per-member clip, as with one network)."""

    @classmethod
    def stacked_after_step(cls, methods: Sequence[Method], stacks: MemberStacks) -> None:
        """:meth:`after_step` for P members' instances at once, on ``stacks`` after the
        optimizer's step (each instance's ``steps`` already counts it)."""

    def on_context_change(self, phase: int) -> None:
        """Called when the environment changes.

        :param phase: the number of changes applied so far
        """

    def counters(self) -> dict[str, float]:
        """Values to log (``method/<net>/<key>``, or ``method/<key>`` for :attr:`model_counters`).

        :return: key -> value
        """
        return {}

    @property
    def replaced_total(self) -> dict[str, int]:
        """Units replaced so far, by hidden layer name (empty for methods that replace none)."""
        return {}

    def check_reachable(self, updates: int) -> str | None:
        """Why a setting cannot act within ``updates`` more optimizer steps, or None.

        :param updates: optimizer steps of this network still to come in the run
        :return: a warning message, or None
        """
        return None

    def idle_reason(self) -> str | None:
        """Why the method has not acted in the optimizer steps it took so far, or None (it acted,
        or it has no setting that holds it back). Read by :meth:`detach`.

        :return: a warning message, or None
        """
        return None

    def warn_idle(self, reason: str) -> None:
        """Warn once per instance, plainly and naming the method, that it cannot act (or did not).

        :param reason: what :meth:`check_reachable` or :meth:`idle_reason` said
        """
        if not self._warned_idle:
            self._warned_idle = True
            warn_user(f"{type(self).__name__}: {reason}")

    # -- attaching -------------------------------------------------------------------------------

    def attach(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        seed: int | None = None,
        layers: Sequence[HiddenLayer] | None = None,
        heads: Mapping[str, Sequence[nn.Linear]] | None = None,
        reinit: Reinit | None = None,
        max_grad_norm: float | None = None,
        expected_updates: int | None = None,
    ) -> Method:
        """Attach to ``module`` trained by ``optimizer`` and install the hooks it needs.

        :param module: the network (any ``nn.Module`` whose hidden layers are Linear ->
            activation -> Linear chains inside ``nn.Sequential`` containers)
        :param optimizer: its optimizer, or None (then no step hook is installed: call the hooks
            yourself)
        :param seed: seed of the method's generator; None derives one from torch's seed
            (:func:`~rl_plasticity.plasticity.core.new_generator`)
        :param layers: its hidden layers; None: found by ``find_hidden_layers(module, heads)``
        :param heads: for ``find_hidden_layers``: Linears outside a Sequential that read its last
            layer
        :param reinit: how to re-draw the whole network (default: :func:`default_reinit`)
        :param max_grad_norm: the norm to which the algorithm clips the gradient of the
            optimizer's parameters before each step (None: it does not clip); a loss term is
            then clipped with the loss, as the references add it (see the module docstring)
        :param expected_updates: optimizer steps this network will take (your loop's length);
            when given, a setting that cannot act within them warns now (CBP's maturity
            threshold beyond the run). Without it, :meth:`detach` warns if the method never
            acted; the SB3 callback passes the run's own count
        :return: self
        :raises ValueError: when the method needs hidden layers and ``module`` has none
        """
        self.module, self.optimizer = module, optimizer
        self.seed = check_optional_int("seed", seed, 0)
        if reinit is not None:
            self.reinit = reinit
        name = type(self).__name__
        if self.needs_layers:
            self.layers = required_layers(module, layers, heads, name)
        else:
            self.layers = list(layers) if layers is not None else find_hidden_layers(module, heads)
        if self.random:
            self.generator = new_generator(self.seed)
        if self.records_features:
            self._recorder = ActivationRecorder(self.layers)
        if self.loss_features:
            self._roots = sequential_roots(module, self.layers)
            self._inputs = InputRecorder(self._roots)
        if optimizer is not None:
            self._handles.append(optimizer.register_step_post_hook(self._post_step))
            adds_loss = implements(self, "loss_term") or (
                self.before_step_is_loss and implements(self, "before_step")
            )
            clip = adds_loss and max_grad_norm is not None and math.isfinite(max_grad_norm)
            if clip:
                self._clip = ClipWithLoss(optimizer, float(max_grad_norm))
                self._handles += self._clip.install()
            if implements(self, "loss_term"):
                self._handles.append(optimizer.register_step_pre_hook(self._pre_step))
            if implements(self, "before_step"):
                hook = optimizer.register_step_pre_hook(lambda *_: self.before_step())
                self._handles.append(hook)
            if clip:
                self._handles.append(optimizer.register_step_pre_hook(self._clip.clip_again))
        self.setup()
        if expected_updates is not None:
            reason = self.check_reachable(check_int("expected_updates", expected_updates, 0))
            if reason is not None:
                self.warn_idle(reason)
        return self

    def detach(self, *, warn_if_idle: bool = True) -> None:
        """Remove every hook; the network and optimizer stay as they are.

        :param warn_if_idle: warn (once) when the method took optimizer steps and never acted
            (:meth:`idle_reason`): plain PyTorch's point to learn that a setting held it back.
            The SB3 callback passes False: it detaches after every ``learn()``, which may be one
            part of a longer run, and warns at the start from the run's length instead
        """
        if warn_if_idle and self.steps:
            reason = self.idle_reason()
            if reason is not None:
                self.warn_idle(reason)
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for recorder in (self._recorder, self._inputs):
            if recorder is not None:
                recorder.pause()

    def pause(self) -> None:
        """Remove the forward hooks until :meth:`resume` (SB3: while collecting rollouts, which
        run without gradients and would take PyTorch's slower hooked call path)."""
        for recorder in (self._recorder, self._inputs):
            if recorder is not None:
                recorder.pause()

    def resume(self) -> None:
        """Put the forward hooks back."""
        for recorder in (self._recorder, self._inputs):
            if recorder is not None:
                recorder.resume()

    def take_features(self) -> list[torch.Tensor | None]:
        """Each hidden layer's features (samples x units) from the latest training forward since
        the last call, or None for a layer with none; needs ``records_features``."""
        if self._recorder is None:
            raise RuntimeError(f"{type(self).__name__} does not set records_features")
        return self._recorder.take()

    def _post_step(self, *_: object) -> None:
        self.steps += 1
        self.after_step()

    def _pre_step(self, optimizer: torch.optim.Optimizer, *_: object) -> None:
        if not self.loss_term_due():
            return
        with torch.enable_grad():
            features = None
            if self.loss_features:
                assert self._inputs is not None
                features = recompute_features(self._roots, self._inputs.latest, self.layers)
            loss = self.loss_term(features)
            if loss is not None:
                add_term_gradient(loss, optimizer)

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (subclasses add theirs to this dict).

        :return: the step count and the generator's state
        """
        state: dict[str, Any] = {"steps": self.steps}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (after :meth:`attach`).

        :param state: the saved state
        """
        self.steps = int(state["steps"])
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"])
