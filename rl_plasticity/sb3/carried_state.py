"""Callback state that travels with an SB3 model through ``model.save`` and ``load``.

SB3's ``save`` writes the policy's and optimizers' tensors and pickles the model's other
attributes; callbacks are no part of the model, so a plasticity method's unit ages, utilities,
counters and generator would be lost with every reload (SB3's ``CheckpointCallback`` included),
and training would continue as another algorithm. A callback that must continue exactly calls
:func:`carry_state` when training starts: the model gets the attribute :data:`ATTRIBUTE`, which
``save`` pickles as a plain dict of every registered callback's ``state_dict()`` at the time of
the save (tensors and numbers only, so a saved model loads without rl_plasticity). After
``load``, the same call in the next ``learn()`` returns the saved state.

This module knows of SB3 only that ``save`` pickles the model's attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The model attribute that carries the callbacks' states.
ATTRIBUTE = "callback_states"


class CarriedStates:
    """The live form of :data:`ATTRIBUTE`: each key's ``state_dict`` source, and the states
    loaded with the model that no callback has taken yet; pickled as a plain dict of states.

    :param saved: states loaded with the model, by key
    """

    __slots__ = ("saved", "sources")  # no __dict__: SB3's save would print its items as text

    def __init__(self, saved: dict[str, Any] | None = None) -> None:
        self.saved: dict[str, Any] = dict(saved or {})
        self.sources: dict[str, Callable[[], Any]] = {}

    def states(self) -> dict[str, Any]:
        """Every key's state now: the sources' current states over the saved ones."""
        return {**self.saved, **{key: source() for key, source in self.sources.items()}}

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return dict, (self.states(),)


def carry_state(model: Any, key: str, state_dict: Callable[[], Any]) -> Any | None:
    """Make ``state_dict()`` part of what ``model.save`` writes, under ``key``.

    :param model: the SB3 algorithm
    :param key: the callback's key (``method/cbp``, ``metrics``): one callback per key and model
    :param state_dict: returns the callback's state at the time of a save
    :return: the state saved under ``key`` that this model carries (loaded with it, or from
        another callback registered before under ``key``), or None (also when ``state_dict`` is
        the one registered: a callback continuing its own training keeps its own state)
    """
    carried = getattr(model, ATTRIBUTE, None)
    if not isinstance(carried, CarriedStates):
        carried = CarriedStates(carried if isinstance(carried, dict) else None)
        setattr(model, ATTRIBUTE, carried)
    previous = carried.sources.get(key)
    if previous is not None:
        saved = None if previous == state_dict else previous()
    else:
        saved = carried.saved.pop(key, None)
    carried.sources[key] = state_dict
    return saved
