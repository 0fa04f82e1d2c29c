"""Plasticity methods and metrics on member stacks: with the study's methods (CBP, reset,
L2-init, Adam betas (0.99, 0.99)) and the metrics callback attached, a population's update runs
batched, and each member after one update equals the single run of its seed within float
rounding: parameters, Adam moments, method state, the metrics' gradient norms. A method without
a population form makes the update run per member, and says so."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from rl_plasticity.metrics.callback import PlasticityMetrics
from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.fast_ppo import FastPPO
from rl_plasticity.sb3.population_ppo import PopulationPPO
from tests.conftest import assert_same_nested

SETTINGS = dict(n_steps=64, batch_size=16, n_epochs=2, max_grad_norm=0.5)
SEEDS = (3, 4)
#: The study's methods (agents fric-ppo-cbp, -reset, -l2init, -ns-adam), CBP made to replace
#: units within one update (8 optimizer steps).
METHODS: dict[str, tuple[dict | None, dict]] = {
    "cbp": (dict(method="cbp", replacement_rate=0.05, maturity_threshold=4), {}),
    "reset": (dict(method="reset", init="lecun_uniform"), {}),
    "l2init": (dict(method="l2init", coeff=0.01), {}),
    "ns-adam": (None, dict(optimizer_kwargs=dict(betas=(0.99, 0.99), eps=1e-8))),
}


def pendulum(seed: int, policy_extra: dict) -> FastPPO:
    policy_kwargs = dict(net_arch=[32, 32], **policy_extra)
    return FastPPO(
        "MlpPolicy", gym.make("Pendulum-v1"), seed=seed, policy_kwargs=policy_kwargs, **SETTINGS
    )


def callbacks(method: dict | None) -> list:
    attached = [] if method is None else [MethodCallback(**method)]
    return [*attached, PlasticityMetrics(every=64, batch_size=32)]


def adam_moments(model: FastPPO) -> list[torch.Tensor]:
    state = model.policy.optimizer.state
    return [state[p][key] for p in model.policy.parameters() for key in ("exp_avg", "exp_avg_sq")]


def grad_norms(model: FastPPO, metrics: PlasticityMetrics) -> list[torch.Tensor]:
    norms = metrics._grad_norms["policy"]
    return [norms[id(p)] for p in model.policy.parameters()]


@pytest.mark.filterwarnings("ignore:Reset acts when the environment changes")
@pytest.mark.parametrize("name", list(METHODS))
def test_a_member_after_one_batched_update_equals_its_single_run(name):
    method, policy_extra = METHODS[name]
    singles = []
    for seed in SEEDS:
        model = pendulum(seed, policy_extra)
        attached = callbacks(method)
        model.learn(64, callback=attached)
        singles.append((model, attached))
    population = PopulationPPO.build(lambda seed: pendulum(seed, policy_extra), SEEDS)
    member_callbacks = [callbacks(method) for _ in SEEDS]
    population.learn(64, callback=member_callbacks)
    assert population.update_mode == "batched"
    for (single, theirs), member, ours in zip(
        singles, population.members, member_callbacks, strict=True
    ):
        assert member._n_updates == single._n_updates == 2
        for a, b in zip(single.policy.parameters(), member.policy.parameters(), strict=True):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
        for a, b in zip(adam_moments(single), adam_moments(member), strict=True):
            torch.testing.assert_close(b, a, atol=1e-7, rtol=1e-4)
        torch.testing.assert_close(
            torch.stack(grad_norms(member, ours[-1])),
            torch.stack(grad_norms(single, theirs[-1])),
            atol=1e-6,
            rtol=1e-5,
        )
        assert ours[-1].n_measurements == theirs[-1].n_measurements == 1  # at the rollout end
        if method is not None:
            assert_same_nested(ours[0].state_dict(), theirs[0].state_dict(), rounding=True)
    if name == "cbp":  # the update replaced units, so the discrete events were compared too
        layers = member_callbacks[0][0].state_dict()["cores"]["policy"]["layers"]
        assert sum(layer["replaced_total"] for layer in layers.values()) > 0


def test_a_method_without_a_population_form_updates_per_member_and_says_why():
    population = PopulationPPO.build(lambda seed: pendulum(seed, {}), SEEDS)
    population.learn(64, callback=[[MethodCallback("noisy_sgd")] for _ in SEEDS])
    assert population.update_mode.startswith("per member: method NoisySGD has no population form")


def test_members_with_different_method_settings_update_per_member():
    population = PopulationPPO.build(lambda seed: pendulum(seed, {}), SEEDS)
    methods = [[MethodCallback("l2init", coeff=c)] for c in (0.01, 0.02)]
    population.learn(64, callback=methods)
    assert (
        population.update_mode
        == "per member: members differ in their plasticity methods or settings"
    )
