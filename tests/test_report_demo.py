"""The demo's agents: labelled as demo settings, a reset reference, methods that act within the
demo's budget; and the demo end to end (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rl_plasticity import demo
from rl_plasticity.specs import load_agent_spec


def _updates(spec) -> int:
    hp = spec.hyperparameters
    rollouts = -(-demo.STEPS // hp["n_steps"])
    return rollouts * hp["n_epochs"] * (hp["n_steps"] // hp["batch_size"])


def test_demo_agents_are_labelled_and_have_a_reset_reference() -> None:
    specs = [load_agent_spec(name) for name in demo.AGENTS]
    assert all(s.description.startswith("DEMO settings (not the paper's)") for s in specs)
    assert [s.method_name for s in specs].count("reset") == 1
    assert len(demo.SEEDS) >= 3


def test_demo_methods_act_within_the_demo_budget() -> None:
    for spec in (load_agent_spec(name) for name in demo.AGENTS):
        updates = _updates(spec)
        if spec.method_name == "cbp":
            # Units mature, and replacement_rate * units * mature updates is many units.
            mature = updates - spec.method["maturity_threshold"]
            assert mature > 0.9 * updates
            units = spec.policy_kwargs["net_arch"]["pi"][0]
            assert spec.method["replacement_rate"] * units * mature > 10
        if spec.method_name == "redo":
            assert updates // spec.method["every_updates"] >= 10


@pytest.mark.slow
def test_demo_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--steps", "2048", "--root", str(tmp_path), "--jobs", "2"]) == 0
    text = (tmp_path / "demo" / "report" / "report.md").read_text()
    assert "12 runs (12 done)" in text
    assert capsys.readouterr().out.strip().endswith("report.md")
