"""Moved to :mod:`rl_plasticity.sb3.networks` (the package that knows SB3); kept as an alias."""

from rl_plasticity.sb3.networks import NetworkGroup, network_groups, sync_targets

__all__ = ["NetworkGroup", "network_groups", "sync_targets"]
