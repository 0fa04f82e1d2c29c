"""`--steps` numbers, `--set key=value` overrides and grids, `--version`, `--help` defaults, and
command-line errors as one line with exit code 2."""

from __future__ import annotations

import re

import pytest

from rl_plasticity import overrides as ov
from rl_plasticity.cli import main
from rl_plasticity.errors import ConfigError
from rl_plasticity.specs import load_agent_spec
from rl_plasticity.sweep import plan
from tests.conftest import TINY_PPO, write_spec


@pytest.mark.parametrize(
    ("text", "value"),
    [("1000", 1000), ("1_000_000", 1_000_000), ("1e6", 1_000_000), ("2.5e5", 250_000),
     ("1E3", 1000), (" 7 ", 7)],
)  # fmt: skip
def test_counts_accept_scientific_notation_and_separators(text, value):
    assert ov.parse_count(text) == value


@pytest.mark.parametrize("text", ["0", "-5", "1.5", "1e400", "1e-3", "abc", "1__0", "", "nan"])
def test_counts_refuse_what_is_not_a_positive_whole_number(text):
    with pytest.raises(ConfigError, match="positive whole number"):
        ov.parse_count(text)


def test_set_values_are_toml_literals_and_bare_words_are_strings():
    (o,) = ov.parse_sets(["optimizer.betas=[0.9, 0.99]"])
    assert (o.key, o.values) == ("optimizer.betas", ([0.9, 0.99],))
    assert ov.parse_sets(["method.name=cbp"])[0].values == ("cbp",)
    assert ov.parse_sets(['method.name="cbp"'])[0].values == ("cbp",)
    assert ov.parse_sets(["metrics.enabled=false"])[0].values == (False,)
    assert ov.parse_sets(["n_envs=4"])[0].values == (4,)


@pytest.mark.parametrize(
    ("texts", "grid", "needle"),
    [(["learning_rate"], False, "key=value"), (["=3"], False, "key=value"),
     (["a..b=1"], False, "key=value"), (["lr="], False, "a value after"),
     (["lr=1,2"], False, "rlp sweep takes several"), (["lr=1e400"], True, "finite"),
     (["lr=1", "lr=2"], True, "given once"), (["lr=[1,"], False, "a TOML value")],
)  # fmt: skip
def test_bad_set_arguments_name_the_key(texts, grid, needle):
    with pytest.raises(ConfigError, match=needle):
        ov.parse_sets(texts, grid=grid)


def test_a_grid_gives_every_combination_with_a_file_safe_name():
    overrides = ov.parse_sets(
        ["method.replacement_rate=1e-4,1e-3", "hyperparameters.learning_rate=3e-4"], grid=True
    )
    combos = ov.combinations(overrides)
    assert [ov.name_suffix(c) for c in combos] == [
        "+replacement_rate-1e-4+learning_rate-3e-4",
        "+replacement_rate-1e-3+learning_rate-3e-4",
    ]
    assert ov.combinations([]) == [()]
    assert ov.name_suffix(()) == ""
    # Same last part: the whole key names it; characters awkward in a shell or a path become one
    # _ per run (never the __ between a run directory's parts).
    both = ov.combinations(ov.parse_sets(['method.init="a/b"', "init=x"]))
    assert ov.name_suffix(both[0]) == "+method.init-_a_b_+init-x"
    (odd,) = ov.combinations(ov.parse_sets(["optimizer.betas=[0.9, 0.99]", "x.y__z=1e+3"]))
    assert ov.name_suffix(odd) == "+betas-_0.9_0.99_+y_z-1e_3"
    assert re.fullmatch(r"[A-Za-z0-9._+-]+", ov.name_suffix(odd)) and "__" not in ov.name_suffix(
        odd
    )


def test_apply_sets_nested_keys_and_a_new_name_replaces_its_table():
    data = {"method": {"name": "cbp", "replacement_rate": 1e-4}, "n_envs": 1}
    (combo,) = ov.combinations(ov.parse_sets(["method.tau=0.1", "method.name=redo"]))
    assert ov.apply(data, combo) == {"method": {"name": "redo", "tau": 0.1}, "n_envs": 1}
    assert data["method"]["name"] == "cbp"  # the input is not changed
    (combo,) = ov.combinations(ov.parse_sets(["n_envs.x=1"]))
    with pytest.raises(ConfigError, match="n_envs is 1, not a table"):
        ov.apply(data, combo)


def test_overrides_are_validated_like_the_file(tmp_path):
    agent = write_spec(tmp_path, "tiny", TINY_PPO + '\n[method]\nname = "cbp"\n')
    (combo,) = ov.combinations(ov.parse_sets(["method.replacement_rate=1e-3"]))
    spec = load_agent_spec(agent, combo)
    assert spec.name == "tiny+replacement_rate-1e-3"
    assert spec.method["replacement_rate"] == 1e-3
    # A bad value or key given with --set is blamed on the command line, not on the file.
    for text, needle in (
        ("method.replacement_rate=-1.0", "method.replacement_rate: got -1.0"),
        ("method.replacment_rate=1e-3", "method.replacment_rate: got 0.001; unknown setting"),
        ("hyperparameters.lerning_rate=3e-4", "hyperparameters.lerning_rate"),
        ("n_steps=512", "n_steps: got 512; unknown key"),
    ):
        (combo,) = ov.combinations(ov.parse_sets([text]))
        with pytest.raises(ConfigError, match=needle) as caught:
            load_agent_spec(agent, combo)
        assert str(caught.value).startswith(f"--set {text}: ")
        assert str(agent) not in str(caught.value)
    # A bad value in the file stays the file's, whatever --set changes elsewhere.
    bad = write_spec(
        tmp_path, "bad", TINY_PPO + '\n[method]\nname = "cbp"\nreplacement_rate = -1\n'
    )
    (combo,) = ov.combinations(ov.parse_sets(["hyperparameters.learning_rate=3e-4"]))
    with pytest.raises(ConfigError, match=r"method\.replacement_rate: got -1") as caught:
        load_agent_spec(bad, combo)
    assert str(caught.value).startswith(f"{bad}: ")


def test_sweep_plans_one_agent_per_combination(tmp_path, tiny_env, tiny_agent):
    overrides = ov.parse_sets(["hyperparameters.learning_rate=1e-4,3e-4"], grid=True)
    tasks = plan([str(tiny_env)], [str(tiny_agent)], [0, 1], 1000, tmp_path, "g", overrides)
    names = [f"tiny-ppo+learning_rate-{lr}__s{s}" for lr in ("1e-4", "3e-4") for s in (0, 1)]
    assert [t.name for t in tasks] == [f"tiny-cheetah__{n}" for n in names]
    command = tasks[2].command
    assert command[command.index("--set") + 1] == "hyperparameters.learning_rate=3e-4"
    assert {t.steps for t in tasks} == {1024}  # whole rollouts of 512


def _one_error_line(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--steps", "1.5"], "--steps: a positive whole number"),
     (["--steps", "1000", "--seed", "x"], "--seed: invalid int value"),
     (["--steps", "1000", "--seed", "-1"], "seed: got -1; an integer in [0, 4,294,967,295]"),
     (["--steps", "1000", "--seed", str(2**32)], "seed: got 4294967296"),
     (["--steps", "1000", "--agent", "ppo-cbp", "--set", "method.replacment_rate=1e-3"],
      "rlp: error: --set method.replacment_rate=1e-3: method.replacment_rate: got 0.001"),
     (["--steps", "1000", "--resume", "--restart"], "not allowed with argument"),
     (["--steps", "1000", "--checkpoint-minutes", "0"], "positive number of minutes"),
     (["--steps", "1000", "--set", "method.replacement_rate=1e-4,1e-3"],
      "rlp sweep takes several"),
     (["--steps", "1000", "--eval-every", "1000", "--eval-phases", "some"], "eval_phases")],
)  # fmt: skip
def test_train_argument_errors_are_one_line_and_exit_2(tmp_path, capsys, extra, needle):
    argv = ["train", "--env", "fast-slippery-cheetah", "--agent", "ppo"]
    argv += ["--root", str(tmp_path / "runs"), *extra]
    line = _one_error_line(argv, capsys)
    assert line.startswith("rlp: error: ") and needle in line
    assert not (tmp_path / "runs").exists()


def test_sweep_argument_errors_are_one_line(capsys):
    line = _one_error_line(["sweep", "--envs", "a", "--agents", "b", "--steps", "1e400"], capsys)
    assert line.startswith("rlp: error: sweep: argument --steps")
    line = _one_error_line(["sweep", "--envs", "a", "--agents", "b", "--steps", "1000", "--seeds",
                            f"0-{2**32}"], capsys)  # fmt: skip
    assert "seeds: got '0-4294967296'" in line


def test_version_and_help_with_defaults(capsys):
    from importlib import metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rlp {metadata.version('rl_plasticity')}"
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: runs)" in out and "(default: default)" in out and "--set" in out
    assert main(["sweep", "--help"]) == 0
    assert "(default: sweep)" in capsys.readouterr().out
