"""Where methods come from: every built-in one registered without a hand-kept list, an installed
package's through its entry point, and a user's own file named in an agent spec."""

from __future__ import annotations

import ast
import json
from importlib import metadata
from pathlib import Path

import pytest

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity import registry
from rl_plasticity.plasticity.registry import registered_methods
from rl_plasticity.specs import load_agent_spec
from tests.conftest import TINY_PPO, rlp_train, write_spec

PLASTICITY = Path(registry.__file__).parent

USER_METHOD = '''
from rl_plasticity.plasticity.protocol import Method, register_method


@register_method("{name}")
class CountSteps(Method):
    """Counts its optimizer steps and logs them."""

    def __init__(self, *, every: int = 1) -> None:
        self.every = every
        super().__init__()

    def counters(self) -> dict:
        return {{"counted_steps": self.steps}}
'''


def registered_in_source(path: Path) -> list[str]:
    """Names given to ``@register_method("...")`` in a file."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and getattr(deco.func, "id", "") == "register_method"
                    and isinstance(deco.args[0], ast.Constant)
                ):
                    names.append(deco.args[0].value)
    return names


@pytest.mark.parametrize("path", sorted(PLASTICITY.glob("*.py")), ids=lambda p: p.name)
def test_every_register_method_in_the_package_is_registered(path):
    methods = registered_methods()
    missing = [n for n in registered_in_source(path) if n not in methods]
    assert not missing, f"{path.name} registers {missing}, which registered_methods() lacks"


def test_builtin_modules_are_found_without_a_list():
    assert "rl_plasticity.plasticity.cbp" in registry.builtin_modules()
    assert len(registered_in_source(PLASTICITY / "cbp.py")) == 1


def test_an_entry_point_registers_its_package_of_methods(tmp_path, monkeypatch):
    (tmp_path / "rlp_plugin_methods.py").write_text(USER_METHOD.format(name="plugin_count"))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = metadata.EntryPoint("mine", "rlp_plugin_methods", registry.ENTRY_POINT_GROUP)

    def entry_points(group: str):
        return [entry] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_LOADED_ENTRY_POINTS", set())
    assert registered_methods()["plugin_count"].__module__ == "rlp_plugin_methods"


def test_a_missing_method_module_names_the_key_and_file(tmp_path):
    spec = write_spec(tmp_path, "agent", 'method_modules = ["nowhere.py"]\n' + TINY_PPO)
    with pytest.raises(ConfigError, match=r"agent.toml: method_modules\[0\]: got 'nowhere.py'"):
        load_agent_spec(spec)


def test_a_method_in_a_users_file_trains_from_rlp_train(tmp_path, tiny_env):
    (tmp_path / "my_methods.py").write_text(USER_METHOD.format(name="user_count"))
    agent = TINY_PPO.replace(
        "[hyperparameters]", '[method]\nname = "user_count"\n\n[hyperparameters]'
    )
    spec = write_spec(tmp_path, "my-agent", 'method_modules = ["my_methods.py"]\n' + agent)
    result = rlp_train(tiny_env, spec, 1024, tmp_path / "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    config = json.loads((run / "config.json").read_text())
    assert config["agent"]["method_modules"] == [str(tmp_path / "my_methods.py")]
    rows = [row.split(",") for row in (run / "progress.csv").read_text().splitlines()]
    column = rows[0].index("method/policy/counted_steps")
    # Counters are logged as each rollout ends, before its update: the second row (1,024 steps)
    # follows the first update, 2 epochs of 512 / 128 = 4 minibatches: 8 optimizer steps.
    assert [float(row[column]) for row in rows[1:] if row[column]][-1] == 8
