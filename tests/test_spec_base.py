"""A spec that starts from another (``base = ...``) gets its keys, with its own laid over them."""

from __future__ import annotations

import pytest

from rl_plasticity.errors import ConfigError
from rl_plasticity.specs import load_agent_spec, load_env_spec, merge_tables


def test_merge_tables_merges_tables_and_replaces_a_renamed_one():
    base = {"a": 1, "t": {"x": 1, "y": 2}, "method": {"name": "cbp", "replacement_rate": 1e-4}}
    merged = merge_tables(
        base, {"a": 2, "t": {"y": 3}, "method": {"name": "snp", "every": 10}, "new": True}
    )
    assert merged == {
        "a": 2,
        "t": {"x": 1, "y": 3},
        "method": {"name": "snp", "every": 10},
        "new": True,
    }
    assert base["t"] == {"x": 1, "y": 2}, "the base table is not changed"


def test_agent_variant_of_a_shipped_spec(tmp_path):
    path = tmp_path / "cbp-fast.toml"
    path.write_text('base = "ppo-cbp"\n[hyperparameters]\nlearning_rate = 3e-4\n')
    spec, shipped = load_agent_spec(path), load_agent_spec("ppo-cbp")
    assert spec.name == "cbp-fast"
    assert spec.hyperparameters["learning_rate"] == 3e-4
    assert spec.hyperparameters["n_steps"] == shipped.hyperparameters["n_steps"]
    assert spec.method == shipped.method and spec.optimizer == shipped.optimizer
    assert spec.description == shipped.description


def test_base_by_relative_path_and_a_chain(tmp_path):
    (tmp_path / "a.toml").write_text('base = "ppo"\n[optimizer]\nweight_decay = 1e-3\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[method]\nname = "reset"\n')
    spec = load_agent_spec(tmp_path / "b.toml")
    assert spec.optimizer["weight_decay"] == 1e-3 and spec.optimizer["betas"] == [0.9, 0.999]
    assert spec.method == {"name": "reset"}


def test_env_variant(tmp_path):
    path = tmp_path / "slow.toml"
    path.write_text(
        'base = "fast-slippery-cheetah"\n'
        '[[nonstationary.drift]]\nparameter = "gravity"\nmode = "scale"\n'
        '[nonstationary.drift.schedule]\nkind = "constant"\nvalue = 0.5\n'
    )
    spec = load_env_spec(path)
    assert spec.env_id == "HalfCheetah-v5"
    assert spec.gym_id is None, "the base's registered id is not the variant's"
    assert [d.parameter for d in spec.nonstationary.drifts] == ["gravity"], "arrays replace"


@pytest.mark.parametrize(
    ("files", "key", "words"),
    [
        ({"x.toml": "base = 3\n"}, "base", "a spec name or a .toml path"),
        ({"x.toml": 'base = "no-such-agent"\n'}, "base", "a spec name (one of: "),
        ({"x.toml": 'base = "nowhere/y.toml"\n'}, "base", "no such file"),
        ({"x.toml": 'base = "y.toml"\n', "y.toml": 'base = "x.toml"\n'}, "base", "lead back"),
        (
            {"x.toml": 'base = "ppo"\n[hyperparameters]\nlearnin_rate = 1\n'},
            "hyperparameters.learnin_rate",
            "",
        ),
    ],
)
def test_bad_base_names_the_file_and_key(files, key, words, tmp_path):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_agent_spec(tmp_path / "x.toml")
    assert info.value.key.endswith(key) and words in str(info.value)
    assert info.value.file is not None and info.value.file.endswith(".toml")
