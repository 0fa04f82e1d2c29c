"""Context-change hook: record the phases at which the environment changed."""

from __future__ import annotations

from collections.abc import Mapping

from rl_plasticity.plasticity.protocol import Method, register_method


@register_method("test_phase_log")
class PhaseLog(Method):
    """Keeps every phase ``on_context_change`` was called with."""

    acts_on_change = True

    def __init__(self) -> None:
        self.phases: list[int] = []
        super().__init__()

    def on_context_change(self, phase: int) -> None:
        self.phases.append(phase)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "phases": list(self.phases)}

    def load_state_dict(self, state: Mapping) -> None:
        super().load_state_dict(state)
        self.phases = list(state["phases"])
