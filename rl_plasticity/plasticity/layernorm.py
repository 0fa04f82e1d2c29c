"""LayerNorm before each hidden activation (Ba et al. 2016, as a plasticity method).

Layer normalization is the most robust single fix for loss of plasticity in the studies this
project follows: Lyle et al., *Understanding plasticity in neural networks* (ICML 2023,
arXiv 2303.01486) and *Disentangling the causes of plasticity loss in neural networks*
(arXiv 2402.18762, 2024: LayerNorm combined with L2 is their recommended baseline); Joudaki et al.,
*Barriers for learning in an evolving world* (arXiv 2510.00304, 2025) use normalization to
*prevent* frozen and cloned units. Each hidden layer's pre-activations z = W x + b (one row per
sample, n units) become

    LN(z)_i = gamma_i (z_i - mu) / sqrt(sigma^2 + eps) + beta_i,
    mu = (1/n) sum_j z_j,   sigma^2 = (1/n) sum_j (z_j - mu)^2,

and the activation reads LN(z). Defaults: ``elementwise_affine=True`` (learned gamma, beta,
initialized to 1 and 0), the standard LayerNorm, which is also what Plasticine's ``ln`` scripts
build (``nn.LayerNorm(256)`` in its TD3 script); ``elementwise_affine=False`` drops gamma and beta
(pure normalization, a variant offered for comparison). ``eps=1e-5`` is PyTorch's default.
No paper gives PPO settings for it, so ``agents/ppo-layernorm.toml`` keeps the PPO spec's.

Hidden layers are found as in ``architecture.hidden_pairs``: a Linear directly followed by an
activation module in an ``nn.Sequential`` (an output ``Linear -> Tanh`` is left alone). The
LayerNorm goes between them, where ``layers.find_hidden_layers`` finds it
(``HiddenLayer.layer_norm``): CBP, ReDo and the metrics act on the same units, and CBP sets the
LayerNorm's gamma/beta of a replaced unit to 1/0.

Hook: ``build_network`` (SB3: carried by the policy classes of ``rl_plasticity.sb3.policies``,
so a saved model loads with its LayerNorms; FastPPO runs SB3's PPO code for such a policy).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from rl_plasticity.plasticity.architecture import hidden_pairs
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_bool, check_number


def insert_layer_norms(
    module: nn.Module, eps: float = 1e-5, elementwise_affine: bool = True
) -> list[nn.LayerNorm]:
    """Put an ``nn.LayerNorm`` between every hidden Linear and its activation, in place.

    :param eps: LayerNorm's epsilon
    :param elementwise_affine: learned per-unit scale and offset
    :return: the LayerNorms inserted (none where a LayerNorm is already there)
    """
    by_seq: dict[int, tuple[nn.Sequential, list[int]]] = {}
    for pair in hidden_pairs(module):
        by_seq.setdefault(id(pair.seq), (pair.seq, []))[1].append(pair.index)
    inserted: list[nn.LayerNorm] = []
    for seq, indices in by_seq.values():
        items: list[nn.Module] = []
        for i, child in enumerate(seq):
            items.append(child)
            if i in indices:
                w = child.weight
                norm = nn.LayerNorm(
                    child.out_features,
                    eps=eps,
                    elementwise_affine=elementwise_affine,
                    device=w.device,
                    dtype=w.dtype,
                )
                items.append(norm)
                inserted.append(norm)
        seq._modules = OrderedDict((str(i), m) for i, m in enumerate(items))
    return inserted


@register_method("layernorm")
class LayerNorm(Method):
    """LayerNorm between each hidden Linear and its activation.

        :meth:`build_network`, not by attaching)
    :param elementwise_affine: learned scale and offset per unit (True: standard LayerNorm;
        False: normalization only)
    :param eps: added to the variance (PyTorch's default)
    """

    def __init__(
        self,
        *,
        elementwise_affine: bool = True,
        eps: float = 1e-5,
    ) -> None:
        self.elementwise_affine = check_bool("elementwise_affine", elementwise_affine)
        self.eps = check_number("eps", eps, 0.0, low_open=True)
        super().__init__()

    def build_network(self, module: nn.Module) -> nn.Module:
        """Insert the LayerNorms in place.

        :return: ``module``
        :raises ValueError: when the network has no hidden layer to normalize
        """
        if not insert_layer_norms(module, self.eps, self.elementwise_affine) and not any(
            isinstance(m, nn.LayerNorm) for m in module.modules()
        ):
            raise ValueError(
                f"{type(self).__name__} found no hidden layer (a Linear followed by an "
                f"activation module in an nn.Sequential) in {type(module).__name__}"
            )
        return module
