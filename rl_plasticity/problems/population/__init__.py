"""The supervised problems' population: many seeds in one process, networks whose parameters
carry a leading member dimension.

``network``: the population MLP (stacked Linear layers, batched matrix products, each member
viewable as an ordinary ``nn.Sequential``). ``regression``: the slowly-changing regression's
learners, one member per seed.
"""
