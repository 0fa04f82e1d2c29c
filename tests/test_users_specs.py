"""Bad spec input: every malformed value is a ConfigError naming the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rl_plasticity.errors import ConfigError
from rl_plasticity.specs import load_agent_spec, load_env_spec

AGENT = """\
description = "tiny PPO+CBP"
algorithm = "PPO"
policy = "MlpPolicy"
n_envs = 2
device = "cpu"
torch_threads = 1
init = "lecun_uniform"
checkpoint_every = 1024

[hyperparameters]
learning_rate = 3e-4
n_steps = 256
batch_size = 64
n_epochs = 2
gamma = 0.99
gae_lambda = 0.95
clip_range = 0.2
ent_coef = 0.0
vf_coef = 0.5
max_grad_norm = 0.5
normalize_advantage = true

[policy_kwargs]
net_arch = { pi = [32, 32], vf = [32, 32] }
activation = "relu"
ortho_init = false
log_std_init = 0.0

[optimizer]
name = "adam"
betas = [0.9, 0.999]
eps = 1e-8
weight_decay = 0.0

[method]
name = "cbp"
replacement_rate = 1e-4
maturity_threshold = 100
decay_rate = 0.99
init = "lecun_uniform"

[metrics]
every = 1024
batch_size = 256
hessian_every = 2048
cloned_threshold = 0.95
"""

ENV = """\
description = "HalfCheetah with drifting friction"
env_id = "HalfCheetah-v5"

[env_kwargs]
ctrl_cost_weight = 0.1

[nonstationary]
apply_at = "immediate"
schedule_seed = 0
update_every = 1000

[[nonstationary.drift]]
parameter = "friction"
mode = "scale"

[nonstationary.drift.schedule]
kind = "piecewise"
every = 1500
sample = "log-uniform"
low = 0.1
high = 2.0
"""

#: Values no setting accepts (the TOML text of each).
ALWAYS_BAD = {
    "nan": "nan",
    "inf": "inf",
    "-inf": "-inf",
    "1e400": "1e400",
    "huge int": "1" + "0" * 30,
    "empty table": "{}",
}
#: Values some settings accept; none may end in anything but a ConfigError.
SOMETIMES_BAD = {
    "string": '"abc"',
    "bool": "true",
    "-1": "-1",
    "0": "0",
    "1e12": "1_000_000_000_000",
    "float": "0.5",
    "empty list": "[]",
}

_LINE = re.compile(r"^([A-Za-z_]+) = (.*)$")


def _mutations(text: str, values: dict[str, str]):
    lines = text.splitlines()
    table = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            table = line.strip("[]")
            continue
        match = _LINE.match(line)
        if not match:
            continue
        for name, value in values.items():
            mutated = [*lines[:i], f"{match[1]} = {value}", *lines[i + 1 :]]
            yield f"{table}.{match[1]}".lstrip("."), name, "\n".join(mutated) + "\n"


def _load(kind: str, path: Path):
    return load_agent_spec(path) if kind == "agent" else load_env_spec(path)


def test_the_valid_specs_load(tmp_path):
    (tmp_path / "a.toml").write_text(AGENT)
    (tmp_path / "e.toml").write_text(ENV)
    load_agent_spec(tmp_path / "a.toml")
    load_env_spec(tmp_path / "e.toml")


@pytest.mark.parametrize(("kind", "text"), [("agent", AGENT), ("env", ENV)])
def test_values_no_setting_accepts_are_config_errors_naming_the_key(tmp_path, kind, text):
    path = tmp_path / "spec.toml"
    count = 0
    for key, name, mutated in _mutations(text, ALWAYS_BAD):
        path.write_text(mutated)
        with pytest.raises(ConfigError) as error:
            _load(kind, path)
        last = key.rpartition(".")[2]
        assert last in error.value.key, (key, name, str(error.value))
        assert error.value.file == str(path)
        assert "\n" not in str(error.value) and len(str(error.value)) < 400
        count += 1
    assert count > 50


@pytest.mark.parametrize(("kind", "text"), [("agent", AGENT), ("env", ENV)])
def test_other_bad_values_are_config_errors_or_accepted(tmp_path, kind, text):
    path = tmp_path / "spec.toml"
    refused = 0
    for key, name, mutated in _mutations(text, SOMETIMES_BAD):
        path.write_text(mutated)
        try:
            _load(kind, path)
        except ConfigError as error:
            refused += 1
            named = key.rpartition(".")[2] in error.key
            # A reversed range (high below low) is reported at low, which names high's value.
            reversed_range = key.endswith(".high") and error.key.endswith(".low")
            assert named or reversed_range, (key, name, str(error))
    assert refused > 40


@pytest.mark.parametrize(
    ("line", "key", "allowed"),
    [
        ("learning_rate = nan", "hyperparameters.learning_rate", "a finite number"),
        ("learning_rate = -1e-4", "hyperparameters.learning_rate", "finite number > 0"),
        ("gamma = 1.5", "hyperparameters.gamma", "in [0, 1]"),
        ("batch_size = 1024", "hyperparameters.batch_size", "n_steps * n_envs = 512"),
        ("betas = [0.9, 1.0]", "optimizer.betas[1]", "in [0, 1)"),
        ("betas = [0.9]", "optimizer.betas", "two numbers"),
        ("eps = 0.0", "optimizer.eps", "> 0"),
        ("weight_decay = -0.1", "optimizer.weight_decay", ">= 0"),
        ("every = 1e400", "metrics.every", "a finite number"),
        ("maturity_threshold = 1e40", "method.maturity_threshold", "an integer"),
        ("net_arch = { pi = [32, 0], vf = [32] }", "policy_kwargs.net_arch.pi[1]", "an integer"),
        ('policy = "CnnPolicyy"', "policy", "MlpPolicy"),
    ],
)
def test_values_only_torch_or_sb3_would_refuse_are_refused_first(tmp_path, line, key, allowed):
    name = line.split(" = ")[0]
    text = re.sub(rf"(?m)^{name} = .*$", line, AGENT, count=1)
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_agent_spec(path)
    assert error.value.key == key
    assert allowed in error.value.allowed


def test_schedule_every_1e400_is_a_config_error(tmp_path):
    path = tmp_path / "env.toml"
    path.write_text(ENV.replace("every = 1500", "every = 1e400"))
    with pytest.raises(ConfigError) as error:
        load_env_spec(path)
    assert error.value.key == "nonstationary.drift[0].schedule.every"


@pytest.mark.parametrize("kind", ["agent", "env"])
def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path, kind):
    path = tmp_path / "latin1.toml"
    path.write_bytes(
        (AGENT if kind == "agent" else ENV).replace("tiny", "t\xefny").encode("latin-1")
    )
    path.write_bytes('description = "caf\xe9"\n'.encode("latin-1") + path.read_bytes())
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 18\)"):
        _load(kind, path)


@pytest.mark.parametrize(
    ("kind", "content", "needles"),
    [
        ("agent", 'description = "caf\xe9"\n'.encode("latin-1"), ["not UTF-8 text", "0xe9"]),
        ("env", ENV.replace("every = 1500", "every = 1e400").encode(), ["schedule.every", "inf"]),
        ("agent", AGENT.replace("learning_rate = 3e-4", "learning_rate = nan").encode(), ["nan"]),
        ("agent", AGENT.replace("eps = 1e-8", "eps = -1e-8").encode(), ["optimizer.eps"]),
    ],
)
def test_cli_exits_2_with_one_line_naming_file_and_key(tmp_path, capsys, kind, content, needles):
    from rl_plasticity.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_bytes(content)
    (tmp_path / "agent.toml").write_text(AGENT)
    (tmp_path / "env.toml").write_text(ENV)
    agent = bad if kind == "agent" else tmp_path / "agent.toml"
    env = bad if kind == "env" else tmp_path / "env.toml"
    root = tmp_path / "runs"
    argv = ["train", "--env", str(env), "--agent", str(agent), "--steps", "512"]
    code = main([*argv, "--root", str(root), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1
    for needle in [str(bad), *needles]:
        assert needle in lines[0]
    assert not root.exists()


SAC = """\
algorithm = "SAC"

[hyperparameters]
learning_starts = 100
ent_coef = {ent_coef}
train_freq = {train_freq}
"""


@pytest.mark.parametrize(
    ("ent_coef", "train_freq", "key"),
    [
        ("0.1", "1", None),
        ('"auto"', '[1, "episode"]', None),
        ('"auto_0.5"', "4", None),
        ('"autox"', "1", "hyperparameters.ent_coef"),
        ('"auto_-1"', "1", "hyperparameters.ent_coef"),
        ("-0.1", "1", "hyperparameters.ent_coef"),
        ("0.1", '[1, "epoch"]', "hyperparameters.train_freq"),
        ("0.1", "0", "hyperparameters.train_freq"),
    ],
)
def test_sac_settings_of_two_kinds(tmp_path, ent_coef, train_freq, key):
    path = tmp_path / "sac.toml"
    path.write_text(SAC.format(ent_coef=ent_coef, train_freq=train_freq))
    if key is None:
        load_agent_spec(path)
        return
    with pytest.raises(ConfigError) as error:
        load_agent_spec(path)
    assert error.value.key == key
