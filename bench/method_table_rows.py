"""The rows of ``bench.method_table``: the problems, each method's row and its settings' grid.

:class:`Problem` is a supervised stream with the base learner every row of its table shares
(:data:`DIGITS`, :data:`REGRESSION`); :class:`Entry` is one row, a registered method with fixed
settings (each says where it comes from) and a small grid for its main setting. :data:`ENTRIES`
lists every row: the methods on the shared base, the architecture methods against fresh networks
of their own architecture (:data:`ARCHITECTURE_ENTRIES`), each method on its authors' Adam
(:data:`ADAM_ENTRIES`) and in its authors' form (:data:`AUTHORS_FORM_ENTRIES`).
:func:`learner_for` builds the learner of a row at one grid point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rl_plasticity.problems.continual import ContinualLearner


@dataclass(frozen=True)
class Problem:
    """A supervised stream and the base learner every row of its table shares.

    :param name: ``digits`` or ``regression``
    :param base: ContinualLearner fields of the base learner
    :param num_inputs: input features
    :param num_outputs: network outputs
    :param loss: ``cross_entropy`` or ``squared``
    :param steps_per_task: optimizer steps per task
    """

    name: str
    base: Mapping[str, Any]
    num_inputs: int
    num_outputs: int
    loss: str
    steps_per_task: int

    def tasks(self, seed: int, num_tasks: int):
        """The run's tasks: permutations of the digits, or flip periods of the regression (of
        ``steps_per_task`` examples each, batch 1)."""
        if self.name == "digits":
            from rl_plasticity.problems.permuted_digits import PermutedDigits

            return PermutedDigits(seed).tasks(num_tasks)
        from rl_plasticity.problems.slowly_changing import SlowlyChangingRegression

        return SlowlyChangingRegression(seed, flip_period=self.steps_per_task).chunks(
            num_tasks * self.steps_per_task
        )


#: Permuted digits: 64 -> 100 -> 100 -> 10, SGD 0.1, minibatches of 16 (our settings: the step
#: size at which backprop's error rises within 100 tasks in a pilot, see BENCHMARKS.md).
DIGITS = Problem(
    "digits",
    {"hidden": (100, 100), "optimizer": "sgd", "step_size": 0.1, "batch_size": 16},
    64,
    10,
    "cross_entropy",
    -(-1797 // 16),
)
#: The slowly-changing regression with the paper's learner: 5 ReLU units, SGD 0.01, batch 1.
REGRESSION = Problem(
    "regression",
    {"hidden": (5,), "optimizer": "sgd", "step_size": 0.01, "batch_size": 1},
    20,
    1,
    "squared",
    10_000,
)
PROBLEMS = {p.name: p for p in (DIGITS, REGRESSION)}
LEARNER_KEYS = {f.name for f in fields(ContinualLearner)}


@dataclass(frozen=True)
class Entry:
    """One row of the table: a method with fixed settings and a grid for its main setting.

    :param name: the row's name
    :param method: registered method name, or None
    :param fixed: settings every grid point shares (ContinualLearner fields or method settings)
    :param grid: the candidates (one dict each); one empty dict when nothing is tuned
    :param note: where the fixed settings come from
    :param fresh: the row of the fresh network it is compared with (same architecture and base)
    """

    name: str
    method: str | None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    grid: Sequence[Mapping[str, Any]] = ({},)
    note: str = ""
    fresh: str = "fresh network"


def _grid(key: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    return [{key: v} for v in values]


ENTRIES: list[Entry] = [
    Entry("backprop", None, note="no method"),
    Entry("linear", None, {"hidden": ()}, _grid("step_size", [0.01, 0.03, 0.1])),
    Entry("fresh network", "reset", {"init": "lecun_uniform"}, note="a new network every task"),
    Entry("l2", None, grid=_grid("weight_decay", [1e-4, 1e-3, 1e-2])),
    Entry(
        "cbp",
        "cbp",
        {"maturity_threshold": 100},
        _grid("replacement_rate", [1e-5, 1e-4, 1e-3]),
        "maturity 100 updates (the Nature code's supervised configs)",
    ),
    Entry(
        "cbpi",
        "cbp",
        {"maturity_threshold": 100, "decay_rate": 0.0},
        _grid("replacement_rate", [1e-5, 1e-4, 1e-3]),
        "instantaneous utility",
    ),
    Entry(
        "redo", "redo", {"every_updates": 100}, _grid("tau", [0.0, 0.025, 0.1]), "every 100 updates"
    ),
    Entry(
        "regrama",
        "regrama",
        {"every_updates": 100, "init": "lecun_uniform"},
        _grid("tau", [0.0, 0.025, 0.1]),
        "every 100 updates",
    ),
    Entry(
        "shrink-perturb",
        "snp",
        {"shrink": 0.9999, "target": "zero"},
        _grid("noise_std", [1e-4, 1e-3, 1e-2]),
        "shrink 1e-4 per update toward 0",
    ),
    Entry("l2init", "l2init", grid=_grid("coeff", [1e-3, 1e-2, 1e-1])),
    Entry("er", "er", grid=_grid("coeff", [1e-3, 1e-2, 1e-1])),
    Entry("parseval", "parseval", {"scale": 1.0}, _grid("coeff", [1e-4, 1e-3, 1e-2]), "s 1"),
    Entry("spectral", "spectral", grid=_grid("coeff", [1e-4, 1e-3, 1e-2])),
    Entry(
        "noisy_sgd",
        "noisy_sgd",
        {"restart_on_change": True},
        _grid("noise_scale", [1e-3, 1e-2, 1e-1]),
        "restarted at each task",
    ),
    Entry(
        "weight_clipping",
        "weight_clipping",
        {"init": "lecun_uniform"},
        _grid("kappa", [2.0, 3.0, 5.0]),
    ),
    Entry("upgd", "upgd", grid=_grid("sigma", [1e-4, 1e-3, 1e-2])),
    Entry("trac", "trac"),
    Entry("layernorm", "layernorm"),
    Entry("crelu", "crelu", fresh="fresh crelu"),
    Entry("fourier", "fourier", fresh="fresh fourier"),
    Entry("nap", "nap"),
    Entry(
        "layer_reset",
        "layer_reset",
        {"init": "lecun_uniform"},
        _grid("every_tasks", [5, 20, 50]),
        "every 5, 20 or 50 tasks",
    ),
    Entry(
        "injection",
        "injection",
        {"init": "lecun_uniform", "at_change": True},
        _grid("max_injections", [1, 3, 10]),
        "at task changes",
    ),
]


#: The architecture methods against a fresh network of their own architecture, and in the
#: width-matched form (``width="match_parameters"``: at least the base network's parameter count
#: with fewer units, as Kumar et al. 2023, App. A.1.3, fit Concat ReLU).
MATCHED = {"width": "match_parameters"}
ARCHITECTURE_ENTRIES: list[Entry] = [
    Entry(
        f"fresh {arch}{suffix}",
        "reset",
        {"init": "lecun_uniform", "architecture": arch, "architecture_settings": width},
        note=f"a new {arch} network every task",
        fresh=f"fresh {arch}{suffix}",
    )
    for arch in ("crelu", "fourier")
    for suffix, width in (("", {}), (" (matched)", MATCHED))
] + [
    Entry(f"{arch} (matched)", arch, MATCHED, fresh=f"fresh {arch} (matched)")
    for arch in ("crelu", "fourier")
]

#: Each method on the base its authors train it with, where that is not plain SGD: Adam at step
#: size 1e-3 (Kumar et al. 2023, Table 3: the best Adam step size on Permuted MNIST for L2 Init,
#: Concat ReLU, LayerNorm, shrink & perturb, CBP and ReDo; their baseline: 1e-4, tuned here),
#: compared with backprop and a fresh network on the same Adam. The Adam of TRAC's, NaP's,
#: Parseval's, ER's and spectral regularization's papers is the same choice; their step sizes
#: for this problem are untraced (not the papers' problems), so 1e-3 is ours.
ADAM = {"optimizer": "adam", "step_size": 1e-3}
ADAM_ROWS = ("l2init", "layernorm", "crelu", "fourier", "nap", "trac", "parseval", "er", "spectral")
ADAM_ROWS += ("redo",)
ADAM_ENTRIES: list[Entry] = [
    Entry(
        "backprop (adam)",
        None,
        {"optimizer": "adam"},
        _grid("step_size", [1e-4, 1e-3]),
        "Kumar et al.'s Adam step sizes",
        fresh="fresh network (adam)",
    ),
    Entry(
        "fresh network (adam)",
        "reset",
        {**ADAM, "init": "lecun_uniform"},
        note="a new network every task",
        fresh="fresh network (adam)",
    ),
    *[
        replace(e, name=f"{e.name} (adam)", fixed={**e.fixed, **ADAM}, fresh="fresh network (adam)")
        for e in ENTRIES
        if e.name in ADAM_ROWS
    ],
    Entry(
        "shrink-perturb ash-adams (adam)",
        "snp",
        {**ADAM, "shrink": 1 - 1e-3, "init": "lecun_uniform"},
        _grid("fresh_scale", [1e-3, 1e-2, 1e-1]),
        "Kumar et al. Table 3 (Adam): p = 1 - 1e-3, sigma on init-distribution noise",
        fresh="fresh network (adam)",
    ),
]

#: Shrink-and-perturb in Ash & Adams' form on the shared SGD base (Kumar et al. Table 3, SGD:
#: p = 1 - 1e-4, sigma 1e-2), and UPGD stepped as its authors' code steps it (2 x the step size;
#: its weight decay stays 1e-3, so it decays by (1 - 2e-4) a step where theirs would by (1 - 1e-4)).
AUTHORS_FORM_ENTRIES: list[Entry] = [
    Entry(
        "shrink-perturb ash-adams",
        "snp",
        {"shrink": 1 - 1e-4, "init": "lecun_uniform"},
        _grid("fresh_scale", [1e-3, 1e-2, 1e-1]),
        "Kumar et al. Table 3 (SGD): p = 1 - 1e-4, sigma on init-distribution noise",
    ),
    Entry(
        "upgd (2 x step)",
        "upgd",
        {"step_size": 0.2},
        _grid("sigma", [1e-4, 1e-3, 1e-2]),
        "the authors' code steps by 2 x lr: 0.2 = 2 x the shared 0.1",
    ),
]
ENTRIES += ARCHITECTURE_ENTRIES + ADAM_ENTRIES + AUTHORS_FORM_ENTRIES


def resolve(point: Mapping[str, Any], problem: Problem) -> dict[str, Any]:
    """A grid point in the method's own settings (``every_tasks`` becomes ``every_updates``)."""
    point = dict(point)
    if "every_tasks" in point:
        point["every_updates"] = point.pop("every_tasks") * problem.steps_per_task
    return point


def learner_for(entry: Entry, point: Mapping[str, Any], problem: Problem) -> ContinualLearner:
    """The learner of ``entry`` at one grid ``point`` on ``problem``."""
    settings = {**entry.fixed, **resolve(point, problem)}
    own = {k: v for k, v in settings.items() if k in LEARNER_KEYS}
    method = {k: v for k, v in settings.items() if k not in LEARNER_KEYS}
    return ContinualLearner(**{**problem.base, **own}, method=entry.method, settings=method)
