"""Evaluation in `rlp train`: eval.csv rows on the current and earlier phases' physics, pinned
phases, no effect on training; and the progress lines of `rlp train` off a terminal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rl_plasticity.cli import main
from rl_plasticity.errors import ConfigError
from rl_plasticity.evaluation import EvalCallback, EvalSettings, phase_starts
from rl_plasticity.nonstationary.schedules import Piecewise
from rl_plasticity.specs import load_env_spec


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_phase_starts_merge_the_change_points_of_every_schedule():
    assert phase_starts([Piecewise(every=1500)], 4000) == [0, 1500, 3000]
    assert phase_starts([Piecewise(every=4), Piecewise(every=6)], 12) == [0, 4, 6, 8, 12]
    assert phase_starts([], 100) == [0]


@pytest.mark.parametrize(
    ("settings", "key"),
    [({"every": 0}, "eval_every"), ({"every": 10, "episodes": 0}, "eval_episodes"),
     ({"every": 10, "phases": -1}, "eval_phases"), ({"every": True}, "eval_every")],
)  # fmt: skip
def test_bad_settings_name_the_option(settings, key):
    with pytest.raises(ConfigError, match=key):
        EvalSettings(**settings)


class _ZeroPolicy:
    """A stand-in model: always the zero action."""

    def predict(self, obs, deterministic=False):
        assert deterministic
        return np.zeros(6, dtype=np.float32), None


def test_targets_and_pinned_physics(tmp_path, tiny_env):
    spec = load_env_spec(tiny_env)  # friction changes every 1,500 steps, right away
    schedule = spec.nonstationary.drifts[0].schedule
    friction = [schedule.at((0, 0), k * 1500) for k in range(4)]
    callback = EvalCallback(spec, EvalSettings(every=1, episodes=1, phases=2), tmp_path / "e.csv")
    assert callback.targets(1000) == [("current", 1000)]
    assert callback.targets(4600) == [("current", 4600), ("earlier", 3000), ("earlier", 1500)]

    rows = callback.evaluate(_ZeroPolicy(), 2900)
    assert [(r["target"], r["phase"]) for r in rows] == [("current", 1), ("earlier", 0)]
    assert [r["friction"] for r in rows] == [friction[1], friction[0]]
    assert all(r["episodes"] == 1 and r["length_mean"] == 1000 for r in rows)
    callback.evaluate(_ZeroPolicy(), 2900)
    # An episode of 1,000 steps from step 2,900 stays on phase 1's physics: it is pinned there
    # (unpinned, the immediate change at 3,000 would have applied phase 2's).
    current = EvalCallback(spec, EvalSettings(every=1, episodes=1, phases=0), tmp_path / "c.csv")
    assert current.evaluate(_ZeroPolicy(), 2900)[0]["phase"] == 1
    assert current._env.context["phase"] == 1
    assert current._env.context["friction"] == friction[1] != friction[2]
    current.close()
    table = _rows(tmp_path / "e.csv")
    assert list(table[0]) == [
        "timestep", "target", "phase", "friction", "return_mean", "return_std", "length_mean",
        "episodes",
    ]  # fmt: skip
    assert table[:2] == table[2:]  # the same episodes at every evaluation
    callback.close()


def test_train_with_evaluation_writes_eval_csv_and_trains_the_same(
    tmp_path, tiny_env, tiny_agent, capsys
):
    root = tmp_path / "runs"
    argv = ["train", "--env", str(tiny_env), "--agent", str(tiny_agent), "--steps", "2048"]
    argv += ["--root", str(root)]
    assert main([*argv, "--group", "plain", "--no-progress"]) == 0
    evaluated = [*argv, "--group", "eval", "--eval-every", "1024", "--eval-episodes", "1"]
    assert main(evaluated) == 0  # with the progress display: lines, stderr is not a terminal
    err = capsys.readouterr().err
    assert "2,048/2,048 steps (" in err and "phase 1 friction=" in err
    run = root / "eval" / "tiny-cheetah__tiny-ppo__s0"
    rows = _rows(run / "eval.csv")
    assert [(r["timestep"], r["target"], r["phase"]) for r in rows] == [
        ("1024", "current", "0"), ("2048", "current", "1"), ("2048", "earlier", "0"),
    ]  # fmt: skip
    assert rows[0]["friction"] == rows[2]["friction"] != rows[1]["friction"]
    assert all(np.isfinite(float(r["return_mean"])) for r in rows)
    config = json.loads((run / "config.json").read_text())
    assert config["evaluation"] == {"every": 1024, "episodes": 1, "phases": None}
    plain = root / "plain" / "tiny-cheetah__tiny-ppo__s0"
    for name in ("episodes.csv", "metrics.csv"):
        assert (plain / name).read_text() == (run / name).read_text(), name
