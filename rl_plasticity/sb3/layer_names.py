"""The names of SB3's hidden layers: short labels for logger keys, readable names for figures.

One table, :data:`SEQUENTIALS`, names each ``nn.Sequential`` SB3's MLP policies keep their hidden
layers in, with its label and its readable name; the metrics and method callbacks (logger keys)
and the report (figures) read it.

SB3's stdout format cuts every key to 36 characters (less the 3 of its indent once the
``plasticity/`` tag is taken off) and refuses two keys that end up equal, so a full layer name
(``plasticity/policy/mlp_extractor.policy_net.0/dead``) cannot go to the logger. Each hidden
layer gets a short label instead: the known SB3 Sequentials by their role, numbered from 1 in
data-flow order (``pi1``, ``pi2`` for the policy's layers, ``vf1`` for the value function's,
``qf0_1`` for the first layer of SAC/TD3's first Q-network, ``q1`` for DQN's); any other
Sequential by its own last name part. The logger gets ``plasticity/pi1/dead`` and
``method/vf2/replaced``; ``metrics.csv`` keeps the full names, which the report reads and shows
as ``policy layer 1`` (:func:`layer_names`).

Pure Python: it knows of SB3 only the module names in :data:`SEQUENTIALS`, so the report reads it
without importing SB3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Characters SB3's stdout format keeps of a key (``HumanOutputFormat(max_length=36)``).
LOGGER_KEY_LENGTH = 36
#: The Sequentials SB3's MLP policies keep their hidden layers in, by their last name part (and
#: ``""``: a module that is itself a Sequential; a network name such as ``q_net`` reads the same):
#: (label in logger keys, readable name in figures).
SEQUENTIALS = {
    "policy_net": ("pi", "policy"),  # PPO, A2C: mlp_extractor.policy_net
    "value_net": ("vf", "value"),  # mlp_extractor.value_net
    "shared_net": ("shared_net", "shared"),
    "latent_pi": ("pi", "actor"),  # SAC's actor
    "mu": ("pi", "actor"),  # TD3's actor
    "qf0": ("qf0", "critic Q1"),  # SAC/TD3 critics
    "qf1": ("qf1", "critic Q2"),
    "q_net": ("q", "Q"),  # DQN
    "": ("h", "layer"),
}
_LABEL_CHARACTERS = 12


def _sequential_label(sequential: str) -> str:
    last = sequential.rpartition(".")[2]
    if last in SEQUENTIALS:
        return SEQUENTIALS[last][0]
    return re.sub(r"[^A-Za-z0-9_]", "_", last)[:_LABEL_CHARACTERS]


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


_INDEXED = re.compile(r"^(?P<part>.*?)\.?(?P<index>\d+)$")


def layer_names(layers: list[str]) -> dict[str, str]:
    """Readable names of hidden layers: ``mlp_extractor.policy_net.0`` -> ``policy layer 1``.

    A layer is numbered by its position among the layers of the same Sequential (indices 0, 2 ->
    layers 1, 2). A Sequential missing from :data:`SEQUENTIALS` keeps its own name.

    :param layers: layer names as the callbacks write them (the incoming Linear's module name)
    :return: layer -> readable name
    """
    indexed: dict[str, list[tuple[int, str]]] = {}
    names = {}
    for layer in layers:
        match = _INDEXED.match(layer)
        if match is None:
            names[layer] = layer
            continue
        indexed.setdefault(match["part"], []).append((int(match["index"]), layer))
    for part, members in indexed.items():
        last = part.rpartition(".")[2]
        readable = SEQUENTIALS[last][1] if last in SEQUENTIALS else part
        for position, (_, layer) in enumerate(sorted(members), start=1):
            names[layer] = f"{readable} layer {position}"
    return names


def network_name(net: str) -> str:
    """Readable network name: ``q_net`` -> ``Q``, ``policy`` -> ``policy``.

    :param net: the ``<net>`` part of a column
    :return: the name
    """
    return SEQUENTIALS[net][1] if net in SEQUENTIALS and net else net


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
