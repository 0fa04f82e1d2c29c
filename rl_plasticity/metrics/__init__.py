"""Plasticity metrics: pure functions (``functional``), the Hessian spectrum (``hessian``), the
plasticity probe (``probe``), the SB3 callback that measures them during training (``callback``)
and the metric registry the callback and the report both read (``registry``).

Every name is imported lazily, so that the registry loads without torch and the pure functions
without SB3.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rl_plasticity.metrics.callback import PlasticityMetrics
    from rl_plasticity.metrics.functional import (
        cloned_unit_fraction,
        dead_unit_fraction,
        dormant_fraction,
        effective_rank,
        feature_norm,
        feature_rank,
        global_norm,
        mean_abs,
        rms,
        rms_change,
        saturated_fraction,
        singular_values,
        stable_rank,
    )
    from rl_plasticity.metrics.hessian import HessianSpectrum, hessian_spectrum
    from rl_plasticity.metrics.probe import probe_loss

#: Exported name -> the module defining it.
_EXPORTS = {
    "HessianSpectrum": "hessian",
    "PlasticityMetrics": "callback",
    "cloned_unit_fraction": "functional",
    "dead_unit_fraction": "functional",
    "dormant_fraction": "functional",
    "effective_rank": "functional",
    "feature_norm": "functional",
    "feature_rank": "functional",
    "global_norm": "functional",
    "hessian_spectrum": "hessian",
    "mean_abs": "functional",
    "probe_loss": "probe",
    "rms": "functional",
    "rms_change": "functional",
    "saturated_fraction": "functional",
    "singular_values": "functional",
    "stable_rank": "functional",
}

__all__ = [
    "HessianSpectrum",
    "PlasticityMetrics",
    "cloned_unit_fraction",
    "dead_unit_fraction",
    "dormant_fraction",
    "effective_rank",
    "feature_norm",
    "feature_rank",
    "global_norm",
    "hessian_spectrum",
    "mean_abs",
    "probe_loss",
    "rms",
    "rms_change",
    "saturated_fraction",
    "singular_values",
    "stable_rank",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
