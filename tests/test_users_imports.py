"""What users import: the public names at the top level, and a cheap ``import rl_plasticity``."""

from __future__ import annotations

import subprocess
import sys

import rl_plasticity


def test_public_names_resolve():
    for name in rl_plasticity.__all__:
        assert getattr(rl_plasticity, name) is not None, name
    assert set(rl_plasticity.__all__) <= set(dir(rl_plasticity))
    from rl_plasticity import CBP, ContinualBackprop, NonstationaryWrapper, PlasticityMetrics
    from rl_plasticity.plasticity.callbacks import ContinualBackprop as Callback
    from rl_plasticity.plasticity.cbp import CBP as Core

    assert ContinualBackprop is Callback and CBP is Core
    assert PlasticityMetrics.__name__ == "PlasticityMetrics"
    assert NonstationaryWrapper.__name__ == "NonstationaryWrapper"


def test_unknown_name_is_an_attribute_error():
    try:
        rl_plasticity.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("no AttributeError")


def test_import_loads_neither_torch_nor_sb3_and_registers_presets():
    code = (
        "import sys, rl_plasticity, gymnasium as gym;"
        "print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules));"
        "print(gym.spec('rl_plasticity/SlipperyAnt-v0').id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "rl_plasticity/SlipperyAnt-v0"


def test_gymnasium_module_prefix_imports_the_package_first():
    code = (
        "import sys, gymnasium as gym;"
        "env = gym.make('rl_plasticity:rl_plasticity/SlipperyAnt-v0');"
        "print(type(env.unwrapped).__name__, 'rl_plasticity' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "AntEnv True"
