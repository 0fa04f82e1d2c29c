"""Plasticity metrics: pure functions (``functional``), the Hessian spectrum (``hessian``), the
plasticity probe (``probe``), the SB3 callback that measures them during training (``callback``:
``PlasticityMetrics``) and the metric registry the callback and the report both read
(``registry``).

Import each name from its module: this file imports nothing, so the registry loads without torch
and the pure functions without SB3.
"""
