"""The only package that knows SB3's internals: the method callback (``callbacks.MethodCallback``),
the policies that carry a method's architecture (``policies``), the networks an algorithm trains
(``networks``), the names of SB3's layers (``layer_names``), the callbacks' state saved with a model
(``carried_state``) and the FastPPO engine (``fast_ppo.FastPPO``).

Import each name from its module: this file imports nothing, so the report reads ``layer_names``
without loading SB3.
"""
