"""The package's layers: pure math -> torch core -> SB3/gym glue -> runs, sweeps, reports -> CLI.

Checked on the source (every ``import`` statement, at module level or inside a function) and, for
the pure layers, by importing them in a fresh interpreter.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "rl_plasticity"

#: (module prefix, layer); the longest matching prefix wins. A module may import only modules of
#: its own layer or below.
LAYERS = {
    "rl_plasticity.errors": 0,
    "rl_plasticity.validate": 0,
    "rl_plasticity.seeding": 0,  # seeds derived from the run seed: pure
    "rl_plasticity.catalog": 0,
    "rl_plasticity.overrides": 0,
    "rl_plasticity.sb3.layer_names": 0,  # SB3's layer names: pure Python, read by the report
    "rl_plasticity.metrics.registry": 0,  # the metric registry: pure Python
    "rl_plasticity.nonstationary.toml_reads": 0,
    "rl_plasticity.nonstationary.schedules": 0,
    "rl_plasticity.nonstationary.parameters": 0,  # the drifting parameters' registry: pure
    "rl_plasticity.metrics": 1,  # functional, hessian, probe: torch math
    "rl_plasticity.plasticity": 1,  # the method protocol and methods: torch only
    "rl_plasticity.problems": 1,
    "rl_plasticity.problems.population": 1,  # population networks and learners: torch only
    "rl_plasticity.nonstationary": 1,  # config, physics (MuJoCo)
    "rl_plasticity.nonstationary.wrapper": 2,  # gymnasium
    "rl_plasticity.metrics.callback": 2,  # an SB3 callback
    "rl_plasticity.sb3": 2,
    "rl_plasticity.specs": 3,
    "rl_plasticity.evaluation": 3,
    "rl_plasticity.experiment": 3,
    "rl_plasticity.sweep": 3,
    "rl_plasticity.report": 3,
    "rl_plasticity.demo": 3,
    "rl_plasticity.cli": 4,
    "rl_plasticity.cli_parser": 4,
    "rl_plasticity": 4,
}

#: Attribute names of SB3's algorithms and policies that only rl_plasticity/sb3/ may use.
SB3_INTERNALS = (
    "mlp_extractor",
    "latent_pi",
    "q_net",
    "q_net_target",
    "critic_target",
    "actor_target",
    "policy_net",
    "value_net",
    "action_net",
    "q_networks",
    "rollout_buffer",
    "replay_buffer",
    "log_ent_coef",
    "ent_coef_tensor",
)


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


@functools.cache
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


@functools.cache
def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported rl_plasticity module, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    known = modules()
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name in known:
                found.append((name, id(node) in top))
    return found


def test_no_module_imports_a_higher_layer():
    wrong = []
    for module, path in modules().items():
        for imported, at_top in imports(path):
            if module == "rl_plasticity" and not at_top:
                continue  # the presets' registration, run only when gymnasium is loaded
            if layer(imported) > layer(module):
                wrong.append(f"{module} (layer {layer(module)}) imports {imported}")
    assert not wrong, "\n".join(wrong)


def package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_circle_between_packages():
    edges: dict[str, set[str]] = {}
    for module, path in modules().items():
        if module == "rl_plasticity":
            continue
        for imported, _ in imports(path):
            a, b = package(module), package(imported)
            if a != b:
                edges.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(p for p in edges if reaches(p, p, {p}))
    assert not circles, circles


def test_sb3_internals_only_inside_the_sb3_package():
    pattern = re.compile(r"\.(" + "|".join(SB3_INTERNALS) + r")\b")
    found = []
    for module, path in modules().items():
        if module.startswith("rl_plasticity.sb3"):
            continue
        code = [
            line
            for line in path.read_text().splitlines()
            if not line.lstrip().startswith(("#", '"', "'", ":"))
        ]
        found += [f"{module}: {line.strip()}" for line in code if pattern.search(line)]
    found = [f for f in found if "``" not in f]  # names quoted in docstrings
    assert not found, "\n".join(found)


HEAVY = ("torch", "stable_baselines3", "gymnasium", "mujoco")


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("rl_plasticity", ()),
        ("rl_plasticity.validate", ()),
        ("rl_plasticity.catalog", ()),
        ("rl_plasticity.nonstationary.schedules", ()),
        ("rl_plasticity.nonstationary.parameters", ()),
        ("rl_plasticity.sb3.layer_names", ()),
        ("rl_plasticity.metrics.functional", ("torch",)),
        ("rl_plasticity.metrics.registry", ()),
        ("rl_plasticity.report.names", ()),
        ("rl_plasticity.plasticity.protocol", ("torch",)),
        ("rl_plasticity.plasticity.cbp", ("torch",)),
    ],
)
def test_pure_layers_import_alone(module, allowed):
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(allowed))


def test_no_module_level_getattr_nor_import_hook():
    """Every name is defined where ``grep`` and "go to definition" find it."""
    found = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text())
        found += [
            f"{module}: def __getattr__"
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
        ]
        if "meta_path" in path.read_text():
            found.append(f"{module}: sys.meta_path")
    assert not found, found
