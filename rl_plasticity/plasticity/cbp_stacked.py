"""Continual backprop's bookkeeping for P members on stacks (the population form of ``cbp.CBP``).

``CBP.stacked_after_step`` keeps every member's per-layer state as slices of (P, units) stacks
(utility, age, mean) and of a (P,) float64 stack (the accumulated count of units owed), and runs
the single CBP's arithmetic on them for all members in one tensor operation each: the ages and
utilities (in ``cbp.py``), and here the count of eligible units, counted from the stacked ages,
and ``accumulated += rho * n_eligible``, in float64 as the single CBP's Python float. Only the
members with a unit due on this step are then visited one by one, to replace their units as the
single CBP does: a step on which no member replaces a unit does no per-member Python work.

The members' states stay single CBP states: their tensors are views of the stacks (a member's
``accumulated`` a 0-dim float64 view), so a member's ``state_dict`` and its own steps read and
write the stacks. Its young-unit groups (``UnitState.young``) are not kept on stacks: they are
set to None, and the member's next step of its own counts them from its ages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rl_plasticity.plasticity.stacked import MemberStacks, shared_stack

if TYPE_CHECKING:
    from rl_plasticity.plasticity.cbp import CBP, UnitState

#: UnitState fields a population keeps as slices of stacks
_STACKED = ("utility", "age", "mean", "accumulated")


@dataclass
class StackedUnits:
    """One hidden layer's CBP state for P members: member k's in row k.

    :param utility: running contribution utilities, (P, units)
    :param age: ages in steps, (P, units)
    :param mean: running mean activations, (P, units)
    :param accumulated: fractional numbers of units owed to replacement, (P,) float64
    """

    utility: torch.Tensor
    age: torch.Tensor
    mean: torch.Tensor
    accumulated: torch.Tensor


def stacked_units(methods: Sequence[CBP], stacks: MemberStacks) -> list[StackedUnits]:
    """Per hidden layer, the members' CBP state as stacks: made on the group's first step on
    ``stacks`` (the members' states then hold views of them) and kept in ``stacks.group_state``.

    :param methods: member k's CBP at index k
    :param stacks: the members' stacks
    :return: one :class:`StackedUnits` per hidden layer
    """
    first = methods[0]
    kept = stacks.group_state.get(first)
    if kept is None:
        kept = [_stack_layer([m.units[i] for m in methods]) for i in range(len(first.units))]
        stacks.group_state[first] = kept
    return kept


def _stack_layer(states: Sequence[UnitState]) -> StackedUnits:
    """The stacks whose slices the members' states of one layer are (made so where needed)."""
    for state in states:
        if not torch.is_tensor(state.accumulated):
            state.accumulated = torch.tensor(
                state.accumulated, dtype=torch.float64, device=state.age.device
            )
        state.young = None  # the stacks' steps age the units
    stacked = {}
    for name in _STACKED:
        stack, views = shared_stack([getattr(s, name) for s in states])
        if views is not None:
            for state, view in zip(states, views, strict=True):
                setattr(state, name, view)
        stacked[name] = stack
    return StackedUnits(**stacked)


def members_due(
    units: StackedUnits, replacement_rate: float, maturity_threshold: int
) -> list[tuple[int, int]]:
    """Count each member's eligible units and add its share to its accumulator (``CBP._units_due``
    for all members at once, after the step's aging); return the members with units to replace
    now, and how many each (taken from its accumulator).

    :param units: one layer's stacks, ages already counting this step
    :param replacement_rate: rho
    :param maturity_threshold: m; units older than m are eligible
    :return: (member index, number of units) for each member that replaces now, in member order
    """
    eligible = (units.age > maturity_threshold).sum(1)
    # rho * n rounded to float64, then added: the single CBP's `accumulated += rho * n_eligible`.
    units.accumulated.add_(eligible.double() * replacement_rate)
    # The accumulator is never negative: floor is the single CBP's int().
    due = torch.minimum(units.accumulated.floor().long(), eligible)
    members = due.nonzero().flatten().tolist()
    if not members:
        return []
    units.accumulated.sub_(due)
    return list(zip(members, due[members].tolist(), strict=True))
