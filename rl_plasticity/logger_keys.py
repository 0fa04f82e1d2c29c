"""Short names of hidden layers for logger keys, and the check that SB3's loggers take a key whole.

SB3's stdout format cuts every key to 36 characters (less the 3 of its indent once the
``plasticity/`` tag is taken off) and refuses two keys that end up equal, so a full layer name
(``plasticity/policy/mlp_extractor.policy_net.0/dead``) cannot go to the logger. Each hidden
layer gets a short label instead: the known SB3 Sequentials by their role, numbered from 1 in
data-flow order (``pi1``, ``pi2`` for the policy's layers, ``vf1`` for the value function's,
``qf0_1`` for the first layer of SAC/TD3's first Q-network, ``q1`` for DQN's); any other
Sequential by its own last name part. The logger gets ``plasticity/pi1/dead`` and
``method/vf2/replaced``; ``metrics.csv`` keeps the full names, which the report reads.

This module knows nothing of SB3 beyond the module names in :data:`SEQUENTIAL_LABELS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Characters SB3's stdout format keeps of a key (``HumanOutputFormat(max_length=36)``).
LOGGER_KEY_LENGTH = 36
#: Labels of the Sequentials SB3's MLP policies keep their hidden layers in.
SEQUENTIAL_LABELS = {
    "mlp_extractor.policy_net": "pi",  # PPO, A2C
    "mlp_extractor.value_net": "vf",
    "latent_pi": "pi",  # SAC's actor
    "mu": "pi",  # TD3's actor
    "qf0": "qf0",  # SAC/TD3 critics
    "qf1": "qf1",
    "q_net": "q",  # DQN
    "": "h",  # a module that is itself a Sequential
}
_LABEL_CHARACTERS = 12


def _sequential_label(sequential: str) -> str:
    if sequential in SEQUENTIAL_LABELS:
        return SEQUENTIAL_LABELS[sequential]
    last = re.sub(r"[^A-Za-z0-9_]", "_", sequential.rpartition(".")[2])[:_LABEL_CHARACTERS]
    return last or "h"


def layer_labels(layers: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Short, unique labels of hidden layers, for logger keys.

    A layer is ``(network, layer name)``: the network's short name (``"policy"``, ``"critic"``)
    and the dotted name of the layer's incoming Linear within it (``"mlp_extractor.policy_net.2"``).
    Its label is its Sequential's label and its position among that Sequential's hidden layers,
    from 1: ``pi2``. A label that two networks would share is prefixed with the network's name;
    any clash left after that gets a counter.

    :param layers: the hidden layers, in data-flow order within each Sequential
    :return: ``(network, layer name)`` -> label
    """
    layers = list(layers)
    counts: dict[tuple[str, str], int] = {}
    labels: dict[tuple[str, str], str] = {}
    for net, name in layers:
        sequential = name.rpartition(".")[0]
        counts[(net, sequential)] = counts.get((net, sequential), 0) + 1
        base = _sequential_label(sequential)
        labels[(net, name)] = (
            f"{base}_{counts[(net, sequential)]}"
            if base[-1].isdigit()
            else (f"{base}{counts[(net, sequential)]}")
        )
    owners: dict[str, set[str]] = {}
    for (net, _), label in labels.items():
        owners.setdefault(label, set()).add(net)
    for key, label in labels.items():
        if len(owners[label]) > 1:
            labels[key] = f"{key[0]}_{label}"
    seen: dict[str, int] = {}
    for key, label in labels.items():
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[key] = f"{label}_{seen[label]}"
    return labels


def stdout_key(key: str) -> tuple[str, str]:
    """``key`` as SB3's stdout format prints it: its tag and the rest, indented and truncated.

    :param key: a logger key
    :return: ``(tag, shown)``; two keys clash in SB3's stdout when these are equal
    """
    tag = key[: key.find("/") + 1] if key.find("/") > 0 else ""
    shown = f"   {key[len(tag) :]}" if tag else key
    if len(shown) > LOGGER_KEY_LENGTH:
        shown = shown[: LOGGER_KEY_LENGTH - 3] + "..."
    return tag, shown


def check_logger_keys(keys: Sequence[str]) -> None:
    """Raise ValueError unless SB3's stdout format prints every key of ``keys`` whole.

    :param keys: logger keys recorded together
    :raises ValueError: naming a key that would be truncated, or two that would clash
    """
    shown: dict[tuple[str, str], str] = {}
    for key in keys:
        tag, text = stdout_key(key)
        if text.endswith("...") and not key.endswith("..."):
            raise ValueError(f"logger key {key!r} is longer than SB3's stdout format shows")
        if (tag, text) in shown:
            raise ValueError(f"logger keys {shown[(tag, text)]!r} and {key!r} clash in SB3 stdout")
        shown[(tag, text)] = key
