"""Architecture hook: a LayerNorm between each Linear and the activation that follows it."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from rl_plasticity.plasticity.layers import ACTIVATIONS
from rl_plasticity.plasticity.protocol import Method, register_method


@register_method("test_layer_norm")
class LayerNormAll(Method):
    """Insert ``nn.LayerNorm(units)`` after every Linear followed by an activation module."""

    def build_network(self, module: nn.Module) -> nn.Module:
        for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
            children = list(seq.children())
            items: list[nn.Module] = []
            for child, following in zip(children, [*children[1:], None], strict=True):
                items.append(child)
                if isinstance(child, nn.Linear) and isinstance(following, ACTIVATIONS):
                    items.append(nn.LayerNorm(child.out_features))
            seq._modules = OrderedDict((str(i), m) for i, m in enumerate(items))
        return module
