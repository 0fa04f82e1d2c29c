"""The method protocol: one test-only method per hook kind, trained with PPO and SAC."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.build import build_model
from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.plasticity.protocol import make_method, method_settings, registered_methods
from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.networks import network_groups
from rl_plasticity.sb3.policies import method_policy
from rl_plasticity.specs import load_agent_spec
from tests.conftest import TINY_PPO
from tests.test_plasticity_sb3 import ALGOS, TINY, build, count_steps, make_env
from tests.toy_methods.clamp import Clamp  # noqa: F401 (registers the method)
from tests.toy_methods.counting_optimizer import CountingSGD
from tests.toy_methods.feature_penalty import FeaturePenalty  # noqa: F401
from tests.toy_methods.layer_norm import LayerNormAll
from tests.toy_methods.phase_log import PhaseLog  # noqa: F401

torch.set_num_threads(1)

STEPS = {"ppo": 256, "sac": 300}
PPO_FAST = dict(n_steps=64, batch_size=32, n_epochs=2)


def build_with(algo: str, method: dict | None = None, period: int = 10**9):
    cls, env_id, kwargs = ALGOS[algo]
    if algo == "ppo":
        kwargs = PPO_FAST
    policy, extra = method_policy(cls, "MlpPolicy", method) if method else ("MlpPolicy", {})
    return cls(policy, make_env(env_id, period), policy_kwargs={**TINY, **extra}, seed=0, **kwargs)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_step_hook_acts_after_every_optimizer_step(algo):
    model = build_with(algo)
    steps = count_steps(model)
    clamp = MethodCallback("test_clamp", bound=0.05, seed=0)
    model.learn(STEPS[algo], callback=clamp)
    for group in network_groups(model):
        assert clamp.counters[f"{group.name}/clamps"] == steps[group.name][0] > 0
        for sub in group.module.modules():
            if isinstance(sub, nn.Linear):
                assert sub.weight.abs().max() <= 0.05


class GradAfter(BaseCallback):
    """After the method callback attaches, records each optimizer's gradient change made by the
    hooks that ran between ``before`` (registered first) and this one (registered last)."""

    def __init__(self, before: dict) -> None:
        super().__init__()
        self.before = before
        self.changed: dict[str, float] = {}

    def _on_training_start(self) -> None:
        for group in network_groups(self.model):
            for name, param in group.module.named_parameters():
                key = f"{group.name}/{name}"
                group.optimizer.register_step_pre_hook(
                    lambda *_, p=param, k=key: (
                        self.changed.__setitem__(
                            k,
                            max(
                                self.changed.get(k, 0.0),
                                float((p.grad - self.before[k]).abs().max()),
                            ),
                        )
                        if p.grad is not None and k in self.before
                        else None
                    )
                )

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_loss_term_gradient_reaches_the_hidden_layers_only(algo):
    model = build_with(algo)
    if algo == "ppo":  # a clip that acts rescales every gradient, the head's too (clipped with
        model.max_grad_norm = 1e9  # the loss: tests/test_methods_reference.py); here it does not
    before: dict[str, torch.Tensor] = {}
    for group in network_groups(model):
        for name, param in group.module.named_parameters():
            group.optimizer.register_step_pre_hook(
                lambda *_, p=param, k=f"{group.name}/{name}": (
                    before.__setitem__(k, p.grad.clone()) if p.grad is not None else None
                )
            )
    penalty = MethodCallback("test_feature_penalty", coeff=10.0)
    spy = GradAfter(before)
    model.learn(STEPS[algo], callback=[penalty, spy])
    first = {"ppo": "policy/mlp_extractor.policy_net.0.weight", "sac": "actor/latent_pi.0.weight"}
    head = {"ppo": "policy/action_net.weight", "sac": "actor/mu.weight"}
    assert spy.changed[first[algo]] > 0  # the term's gradient reached the first hidden layer
    assert spy.changed[head[algo]] == 0  # and not the head, which the features do not depend on
    if algo == "sac":
        assert spy.changed["critic/qf0.0.weight"] > 0
    assert not penalty.methods  # detached at the end of training


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_architecture_is_in_the_policy_trained_and_saved(algo, tmp_path):
    model = build_with(algo, {"name": "test_layer_norm"})
    groups = network_groups(model)
    norms = {g.name: [m for m in g.module.modules() if isinstance(m, nn.LayerNorm)] for g in groups}
    assert all(len(found) >= 2 for found in norms.values()), norms
    for group in groups:
        trained = {id(p) for pg in group.optimizer.param_groups for p in pg["params"]}
        assert all(id(m.weight) in trained for m in norms[group.name])
        assert all(layer.layer_norm is not None for layer in group.layers)
    if algo == "sac":
        assert any(isinstance(m, nn.LayerNorm) for m in model.policy.critic_target.modules())
    model.learn(STEPS[algo], callback=MethodCallback("test_layer_norm"))
    for found in norms.values():
        assert any(not torch.equal(m.weight, torch.ones_like(m.weight)) for m in found)
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip")
    for key, value in model.policy.state_dict().items():
        assert torch.equal(value, loaded.policy.state_dict()[key]), key


def test_architecture_method_on_a_plain_policy_is_refused():
    model = build_with("ppo")
    with pytest.raises(ValueError, match="method_policy"):
        model.learn(64, callback=MethodCallback("test_layer_norm"))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_optimizer_wrapper_trains_and_is_saved(algo, tmp_path):
    model = build_with(algo, {"name": "test_counting_optimizer"})
    optimizers = [g.optimizer for g in network_groups(model)]
    assert all(isinstance(o, CountingSGD) for o in optimizers)
    weight = network_groups(model)[0].layers[0].incoming.weight
    start = weight.detach().clone()
    model.learn(STEPS[algo], callback=MethodCallback("test_counting_optimizer"))
    assert all(o.count > 0 for o in optimizers)
    assert not torch.equal(weight, start)
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip")
    assert all(isinstance(g.optimizer, CountingSGD) for g in network_groups(loaded))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_context_change_fires_at_each_phase(algo):
    model = build_with(algo, period=70)
    log = MethodCallback("test_phase_log")
    model.learn(STEPS[algo], callback=log)
    cores = log.state_dict()["cores"]
    assert set(cores) == {g.name for g in network_groups(model)}
    for state in cores.values():
        assert state["phases"] == list(range(1, STEPS[algo] // 70 + 1))


def test_settings_come_from_the_signature_once():
    assert list(method_settings(CBP)) == [
        "replacement_rate",
        "maturity_threshold",
        "decay_rate",
        "init",
        "mean_correction",
        "optimizer_state",
    ]
    assert {"cbp", "redo", "snp", "l2init", "reset"} <= set(registered_methods())
    with pytest.raises(ConfigError, match="replacement_rat"):
        make_method("cbp", {"replacement_rat": 0.1})
    with pytest.raises(ConfigError, match=r"method\.name"):
        MethodCallback("no_such_method")
    with pytest.raises(ConfigError, match="decay_rate"):
        MethodCallback("cbp", decay_rate=1.0)


def test_the_state_of_another_method_is_refused():
    model = build("sac")
    cbp = MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=10, seed=0)
    model.learn(200, callback=cbp)
    with pytest.raises(ValueError, match="'cbp'"):
        MethodCallback("reset").load_state_dict(cbp.state_dict())


def test_docs_method_example_is_complete():
    text = (Path(__file__).parent.parent / "docs" / "methods.md").read_text()
    start = text.index("```python", text.index("in `rl_plasticity/plasticity/maxnorm.py`:"))
    code = text[start + len("```python") : text.index("```", start + 10)]
    namespace: dict = {}
    exec(compile(code, "docs/methods.md maxnorm", "exec"), namespace)
    net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(net.parameters(), lr=10.0)
    namespace["MaxNorm"](c=0.5).attach(net, opt)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
    assert net[0].weight.norm(dim=1).max() <= 0.5 + 1e-6
    model = build_with("ppo")
    model.learn(64, callback=MethodCallback("maxnorm", c=0.5))
    assert model.policy.mlp_extractor.policy_net[0].weight.norm(dim=1).max() <= 0.5 + 1e-6


def test_agent_spec_builds_the_method_into_the_policy(tmp_path):
    spec = tmp_path / "ln.toml"
    spec.write_text(
        TINY_PPO.replace('init = "lecun_uniform"\n', "") + '\n[method]\nname = "test_layer_norm"\n'
    )
    agent = load_agent_spec(spec)
    model = build_model(agent, make_env("CartPole-v1"), seed=0, device="cpu")
    assert any(isinstance(m, nn.LayerNorm) for m in model.policy.mlp_extractor.modules())
    callback = agent.make_method_callback()
    assert isinstance(callback, MethodCallback) and callback.method_class is LayerNormAll


def test_hooks_act_on_fast_ppo_training_forwards():
    from rl_plasticity.sb3.fast_ppo import FastPPO

    model = FastPPO(
        "MlpPolicy",
        make_env("Pendulum-v1"),
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        policy_kwargs=TINY,
        seed=0,
    )
    steps = count_steps(model)
    penalty = MethodCallback("test_feature_penalty", coeff=1.0)
    cbp = MethodCallback("cbp", replacement_rate=0.1, maturity_threshold=2, seed=0)
    model.learn(256, callback=[penalty, cbp])
    assert penalty.counters["policy/with_features"] == steps["policy"][0] > 0
    assert all(n > 0 for n in cbp.replaced_total.values())


def test_a_method_whose_dependency_is_missing_does_not_break_the_others(
    tmp_path, monkeypatch
) -> None:
    from rl_plasticity.plasticity import registry

    (tmp_path / "rlp_broken_method.py").write_text("import rlp_no_such_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    builtin = registry.builtin_modules()
    monkeypatch.setattr(registry, "builtin_modules", lambda: [*builtin, "rlp_broken_method"])
    monkeypatch.setattr(registry, "_FAILED", {})
    with pytest.warns(UserWarning, match="rlp_broken_method could not be imported"):
        methods = registered_methods()
    assert "cbp" in methods
    assert make_method("cbp", {"replacement_rate": 1e-3}).replacement_rate == 1e-3
    with pytest.raises(ImportError, match="rlp_no_such_package_xyz"):
        make_method("rlp_broken_method", {})
