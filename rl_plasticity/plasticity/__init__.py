"""Plasticity methods: one protocol (``protocol.Method``), one file per method, torch only.

Each method is registered under its spec name (``cbp.CBP`` as ``"cbp"``, ``redo.ReDo`` as
``"redo"``, ...); ``docs/methods.md`` lists them all, generated from the registry
(``registry.registered_methods()``). ``protocol`` documents the hooks and when each runs. The SB3
callback for every method is ``rl_plasticity.sb3.callbacks.MethodCallback``. Optimizer classes
an agent spec's ``[optimizer]`` names are in ``optimizers.OPTIMIZERS``.

Import each name from its module: this file imports nothing.
"""
