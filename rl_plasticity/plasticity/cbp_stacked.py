"""Continual backprop's per-layer unit state (:class:`UnitState`), and its bookkeeping for P
members on stacks (the population form of ``cbp.CBP``).

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
from dataclasses import dataclass, field

import torch

from rl_plasticity.plasticity.protocol import Method
from rl_plasticity.plasticity.stacked import MemberStacks, shared_stack


@dataclass
class UnitState:
    """CBP's state of one hidden layer's units.

    :param utility: running contribution utility u (not bias-corrected), one per unit
    :param mean: running mean activation f (used only with mean correction)
    :param age: steps since each unit was created
    :param accumulated: fractional number of units owed to replacement: a float, or in a
        population a 0-dim float64 view of the members' stack (:func:`stacked_units`), updated
        in place by the same float64 arithmetic
    :param bound: half-width of the incoming weights' initial distribution
    :param replaced_total: units replaced so far
    """

    utility: torch.Tensor
    mean: torch.Tensor
    age: torch.Tensor
    accumulated: float | torch.Tensor
    bound: float
    replaced_total: int = 0
    #: groups [age, count] of units not yet older than the maturity threshold, oldest first: the
    #: number of eligible units is known without a tensor reduction on every step. None when the
    #: ages were set or advanced elsewhere (a loaded state, a population's steps): counted from
    #: :attr:`age` at the next step
    young: list[list[int]] | None = field(default_factory=list)

    def age_and_count_eligible(self, maturity_threshold: int) -> int:
        """Age the young units by this step; return the units older than ``maturity_threshold``.

        :param maturity_threshold: m
        :return: the number of eligible units
        """
        if self.young is None:
            self.recount_young(maturity_threshold)  # from ages that already count this step
        else:
            for group in self.young:
                group[0] += 1
        while self.young and self.young[0][0] > maturity_threshold:
            self.young.pop(0)
        return len(self.age) - sum(count for _, count in self.young)

    def recount_young(self, maturity_threshold: int) -> None:
        """Rebuild :attr:`young` from :attr:`age` (after loading a state)."""
        ages, counts = torch.unique(self.age[self.age <= maturity_threshold], return_counts=True)
        self.young = [[int(a), int(c)] for a, c in sorted(zip(ages, counts, strict=True))][::-1]


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


def stacked_units(
    first: Method, units: Sequence[Sequence[UnitState]], stacks: MemberStacks
) -> list[StackedUnits]:
    """Per hidden layer, the members' CBP state as stacks: made on the group's first step on
    ``stacks`` (the members' states then hold views of them) and kept in ``stacks.group_state``.

    :param first: member 0's CBP (the group's key in ``stacks.group_state``)
    :param units: member k's per-layer states (``CBP.units``) at index k
    :param stacks: the members' stacks
    :return: one :class:`StackedUnits` per hidden layer
    """
    kept = stacks.group_state.get(first)
    if kept is None:
        kept = [_stack_layer([member[i] for member in units]) for i in range(len(units[0]))]
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
