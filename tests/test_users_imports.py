"""What users import: every name from the module that defines it, and a cheap ``import
rl_plasticity`` that registers the presets with gymnasium when gymnasium is loaded."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().split("\n")


def test_import_loads_neither_torch_nor_sb3_nor_gymnasium():
    code = (
        "import sys, rl_plasticity;"
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'gymnasium') if m in sys.modules))"
    )
    assert _run(code) == ["[]"]


def test_import_after_gymnasium_registers_the_presets():
    code = (
        "import gymnasium as gym, rl_plasticity;print(gym.spec('rl_plasticity/SlipperyAnt-v0').id)"
    )
    assert _run(code) == ["rl_plasticity/SlipperyAnt-v0"]


def test_gymnasium_module_prefix_imports_the_package_first():
    code = (
        "import sys, gymnasium as gym;"
        "env = gym.make('rl_plasticity:rl_plasticity/SlipperyAnt-v0');"
        "print(type(env.unwrapped).__name__, 'rl_plasticity' in sys.modules)"
    )
    assert _run(code) == ["AntEnv True"]


def test_register_presets_registers_them_in_any_order():
    code = (
        "import rl_plasticity, gymnasium as gym;"
        "from rl_plasticity.specs import register_presets;"
        "print('rl_plasticity/SlipperyAnt-v0' in register_presets());"
        "print(gym.spec('rl_plasticity/SlipperyAnt-v0').id)"
    )
    assert _run(code) == ["True", "rl_plasticity/SlipperyAnt-v0"]
