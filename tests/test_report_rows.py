"""What the report pools and what it keeps apart: groups, spec contents, duplicates, lengths,
filters, unfinished statuses. Runs from ``test_report.make_run`` (returns 100(p+1) + 10s + i)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl_plasticity import report
from rl_plasticity.cli import main
from rl_plasticity.errors import ConfigError
from tests.test_report import ENV, make_run


def test_two_groups_with_the_same_agent_and_seed_are_two_rows(tmp_path: Path) -> None:
    make_run(tmp_path, "ppo", 0, group="a")
    make_run(tmp_path, "ppo", 0, group="b", offset_per_phase=50.0)
    runs = report.load_runs(tmp_path)
    assert sorted(r.label for r in runs) == ["a/ppo", "b/ppo"]
    table = report.phase_table(runs)
    # Not pooled: each row holds its own seed 0 (phase 1 end: 208.5 and 258.5).
    assert (table["a/ppo"][1].iqm, table["a/ppo"][1].n) == (208.5, 1)
    assert (table["b/ppo"][1].iqm, table["b/ppo"][1].n) == (258.5, 1)
    text = report.write_report(tmp_path).read_text()
    assert "| a/ppo | 108.5 (n=1) | 208.5 (n=1) | 308.5 (n=1) |" in text
    assert "| b/ppo | 108.5 (n=1) | 258.5 (n=1) | 408.5 (n=1) |" in text
    assert "duplicate" not in text


def test_two_spec_files_of_one_name_are_labelled_apart(tmp_path: Path) -> None:
    make_run(tmp_path / "x", "ppo", 0, agent_settings={"hyperparameters": {"lr": 1e-4}})
    make_run(tmp_path / "y", "ppo", 0, agent_settings={"hyperparameters": {"lr": 3e-4}})
    runs = report.load_runs(tmp_path)
    labels = sorted(r.label for r in runs)
    assert len(set(labels)) == 2 and all(label.startswith("ppo #") for label in labels)
    assert sorted(f"ppo #{r.agent_hash}" for r in runs) == labels
    # Same group, env and seed: without the spec's content they would be one row of 2 "seeds".
    table = report.phase_table(runs)
    assert [table[label][0].n for label in labels] == [1, 1]


def test_the_same_spec_at_another_path_is_the_same_row(tmp_path: Path) -> None:
    run = make_run(tmp_path, "ppo", 0)
    other = make_run(tmp_path, "ppo", 1)
    for path, where in ((run, "/a/ppo.toml"), (other, "/b/ppo.toml")):
        config = json.loads((path / "config.json").read_text())
        config["agent"]["path"] = where
        (path / "config.json").write_text(json.dumps(config))
    runs = report.load_runs(tmp_path)
    assert {r.label for r in runs} == {"ppo"}


def test_a_duplicate_seed_is_flagged_and_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run(tmp_path / "old", "ppo", 1, phases=2)
    make_run(tmp_path / "new", "ppo", 1)
    text = report.write_report(tmp_path).read_text()
    err = capsys.readouterr().err
    assert "duplicate: fast-slippery-cheetah / ppo seed 1 twice" in text
    assert "rlp report: warning: duplicate" in err and "left out" in err
    # The longer run (3 phases) is the one used, alone: n=1.
    assert "| ppo | 118.5 (n=1) | 218.5 (n=1) | 318.5 (n=1) |" in text


def test_unequal_lengths_are_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path, "ppo", 0)
    make_run(tmp_path, "ppo", 1, phases=2)
    text = report.write_report(tmp_path).read_text()
    assert f"unequal lengths in {ENV}: 3,000 steps: ppo s0; 2,000 steps: ppo s1" in text
    assert "unequal lengths" in capsys.readouterr().err


def test_filters_select_groups_agents_and_seeds(tmp_path: Path) -> None:
    for group in ("a", "b"):
        for seed in (0, 1, 2):
            make_run(tmp_path, "ppo", seed, group=group)
        make_run(tmp_path, "ppo-reset", 0, group=group, method="reset")
    runs = report.load_runs(tmp_path)
    chosen = report.select_runs(runs, groups=["b"], agents=["ppo"], seeds=range(0, 5))
    assert [(r.group, r.agent, r.seed) for r in chosen] == [("b", "ppo", s) for s in (0, 1, 2)]
    with pytest.raises(ConfigError, match="--groups: got 'c'; runs found have: a, b"):
        report.select_runs(runs, groups=["c"])
    with pytest.raises(ConfigError, match="--seeds"):
        report.select_runs(runs, seeds=[7])
    text = report.write_report(tmp_path, groups=["a"], seeds=[0, 1]).read_text()
    assert "3 runs (3 done)" in text and "a/ppo" not in text


def test_cli_report_filters_and_refuses_an_unknown_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run(tmp_path, "ppo", 0)
    make_run(tmp_path, "ppo", 1)
    out = tmp_path / "out"
    assert main(["report", str(tmp_path), "--out", str(out), "--seeds", "1"]) == 0
    assert "1 runs (1 done)" in (out / "report.md").read_text()
    assert main(["report", str(tmp_path), "--agents", "sac"]) == 2
    assert "rlp: error: --agents: got 'sac'; runs found have: ppo" in capsys.readouterr().err


def test_interrupted_runs_are_listed_as_interrupted(tmp_path: Path) -> None:
    make_run(tmp_path, "ppo", 0)
    make_run(tmp_path, "ppo", 1, status="interrupted", reason="interrupted")
    text = report.write_report(tmp_path).read_text()
    assert "2 runs (1 done, 1 interrupted)" in text
    assert f"| `g/{ENV}__ppo__s1` | interrupted | interrupted |" in text


def test_unfinished_runs_are_used_only_when_asked(tmp_path: Path) -> None:
    make_run(tmp_path, "ppo", 0, status="interrupted", reason="SIGINT")
    make_run(tmp_path, "ppo", 1, status="interrupted", reason="SIGINT")
    default = report.write_report(tmp_path, tmp_path / "a").read_text()
    assert "Figures and tables use finished runs only." in default
    assert "| ppo |" not in default  # no row: nothing finished
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "b"), "--unfinished"]) == 0
    text = (tmp_path / "b" / "report.md").read_text()
    assert "unfinished ones up to the step each reached (`--unfinished`)" in text
    # Both seeds pooled in the phase table (phase 0 ends: 108.5 + 10 s, mean over s = 0, 1).
    assert "| ppo | 113.5 [108.5, 118.5] | 213.5 [208.5, 218.5] | 313.5 [308.5, 318.5] |" in text
    assert f"| `g/{ENV}__ppo__s1` | interrupted | SIGINT |" in text


def test_cli_report_refuses_a_folder_without_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "other" / "notes").mkdir(parents=True)
    (tmp_path / "other" / "notes" / "a.txt").write_text("no run here")
    for folder in ("empty", "other"):
        assert main(["report", str(tmp_path / folder)]) == 2
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert line.startswith(
            f"rlp: error: folder of runs: got '{tmp_path / folder}'; a folder holding runs"
        )
        assert captured.out == ""
        assert not (tmp_path / folder / "report").exists()
