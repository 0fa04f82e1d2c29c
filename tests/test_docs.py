"""The README and docs/ name only what exists: every class, function, module, file and command they
name can be imported, found or run, and the generated lists match the registries."""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from rl_plasticity.cli_parser import build_parser
from rl_plasticity.plasticity.registry import ENTRY_POINT_GROUP
from rl_plasticity.reference import stale_pages

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Modules whose names the docs use without a module path (SB3's, torch's, gymnasium's, RL Zoo's).
EXTERNAL = (
    "stable_baselines3",
    "stable_baselines3.common.callbacks",
    "stable_baselines3.common.vec_env",
    "stable_baselines3.common.policies",
    "stable_baselines3.common.logger",
    "torch",
    "torch.nn",
    "torch.optim",
    "torch.distributions",
    "gymnasium",
    "gymnasium.wrappers",
    "numpy.random",
)


def _text(page: Path) -> str:
    return page.read_text()


def _code_spans(text: str) -> list[str]:
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.findall(r"`([^`\n]+)`", prose)


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@functools.cache
def _defined_names() -> frozenset[str]:
    """Every class, function, method and module-level name defined in rl_plasticity."""
    names: set[str] = set()
    for path in (ROOT / "rl_plasticity").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return frozenset(names)


def _external(name: str) -> bool:
    if hasattr(builtins, name) or name.isupper():  # ValueError, super; TMPDIR (a variable)
        return True
    for module in EXTERNAL:
        try:
            if hasattr(importlib.import_module(module), name):
                return True
        except ImportError:
            continue
    return False


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted``, then get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_generated_lists_match_the_registries():
    assert stale_pages() == [], "run: python -m rl_plasticity.reference"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_dotted_names_import(page):
    missing = []
    for span in _code_spans(_text(page)):
        for dotted in re.findall(r"\brl_plasticity(?:\.\w+)+", span):
            if ROOT.joinpath(*dotted.split(".")).with_suffix(".py").exists():
                continue
            if dotted == ENTRY_POINT_GROUP:  # a dotted name, as Python's plugin groups are
                continue
            try:
                _resolve(dotted)
            except (ImportError, AttributeError):
                missing.append(dotted)
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_examples_import(page):
    for block in _blocks(_text(page), "python"):
        imports = [
            line
            for line in block.splitlines()
            if line.startswith(("from ", "import ")) and "maxnorm" not in line
        ]
        exec(compile("\n".join(imports), f"{page.name} imports", "exec"), {})


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_names_are_defined_where_grep_finds_them(page):
    """A class or function the page names in code, bare, is defined in rl_plasticity (or is
    SB3's, torch's or gymnasium's)."""
    missing = []
    for span in _code_spans(_text(page)):
        for name in re.findall(r"^([A-Z][A-Za-z0-9]+)(?:\(|$)", span) + re.findall(
            r"^([a-z_][a-z0-9_]+)\(", span
        ):
            defined_here = f"class {name}" in _text(page)  # the page's own example
            if name not in _defined_names() and not _external(name) and not defined_here:
                missing.append(name)
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_files_named_exist(page):
    missing = []
    for span in _code_spans(_text(page)):
        for path in re.findall(
            r"^((?:rl_plasticity|tests|bench|agents|envs|docs)/[\w/.*-]+)", span
        ):
            found = list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
            if "<" not in path and not found and "maxnorm" not in path:
                missing.append(path)
    assert not missing, missing


def _commands(text: str) -> list[list[str]]:
    commands = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for command in line.split("#")[0].split(";"):
                words = shlex.split(command)
                if words:
                    commands.append(words)
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_run(page):
    """``rlp`` commands parse (every subcommand and option exists), ``python -m`` modules exist,
    ``make`` targets exist."""
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    parser = build_parser()
    for words in _commands(_text(page)):
        program, args = Path(words[0]).name, words[1:]
        if program == "rlp":
            try:
                parser.parse_args(args)
            except SystemExit as e:  # --help and --version exit 0; a wrong option exits 2
                assert e.code == 0, words
        elif program in ("python", "python3") and args[:1] == ["-m"]:
            assert importlib.util.find_spec(args[1]) is not None, words
        elif program == "make":
            assert set(args) <= targets, words


def test_every_page_is_linked_from_the_readme():
    readme = _text(ROOT / "README.md")
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, page.name


#: A repository path a docstring or comment names: ``bench/...`` or ``docs/...`` with an extension.
REPO_PATH = re.compile(r"\b((?:bench|docs)/[\w./-]*\w\.\w+)")


def test_every_bench_or_docs_path_the_package_names_exists():
    """A docstring citing ``bench/x.py`` or ``docs/y.md`` points at a file a reader can open."""
    missing = [
        f"{path.relative_to(ROOT)}:{number}: {name}"
        for path in sorted((ROOT / "rl_plasticity").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for name in REPO_PATH.findall(line)
        if not (ROOT / name).exists()
    ]
    assert not missing, "\n".join(missing)
