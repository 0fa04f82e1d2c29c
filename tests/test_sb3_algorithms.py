"""rl_plasticity.sb3.algorithms: each training loss equals the one SB3's own train() logs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

from rl_plasticity.sb3.algorithms import sample_batch, training_losses

torch.set_num_threads(1)


def collect_rollout(model) -> None:
    """One rollout into the model's buffer, without training (as learn() does before train())."""
    _, callback = model._setup_learn(model.n_steps, None, True, "test", False)
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_on_policy_loss_equals_sb3(algo):
    if algo == "ppo":  # one epoch of one minibatch: train/loss is the loss on the whole rollout
        model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, n_epochs=1, seed=0)
    else:
        model = A2C("MlpPolicy", "Pendulum-v1", n_steps=64, seed=0)
    collect_rollout(model)
    batch = sample_batch(model, 64, np.random.default_rng(0))
    with torch.no_grad():
        ours = float(training_losses(model, batch)["policy"]())
    model.train()
    logged = model.logger.name_to_value
    if algo == "ppo":
        theirs = logged["train/loss"]
    else:
        theirs = (
            logged["train/policy_loss"]
            + model.ent_coef * logged["train/entropy_loss"]
            + model.vf_coef * logged["train/value_loss"]
        )
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)


OFF_POLICY = {
    "sac": (SAC, "Pendulum-v1", dict(ent_coef=0.2)),
    "td3": (TD3, "Pendulum-v1", dict(policy_delay=1)),
    "dqn": (DQN, "CartPole-v1", {}),
}


@pytest.mark.parametrize("algo", list(OFF_POLICY))
def test_off_policy_losses_equal_sb3(algo):
    cls, env_id, extra = OFF_POLICY[algo]
    # learning rate 0: train() changes no weight, so its later losses see the same networks
    model = cls(
        "MlpPolicy",
        env_id,
        learning_starts=10_000,
        learning_rate=0.0,
        batch_size=32,
        seed=0,
        policy_kwargs=dict(net_arch=[32, 32]),
        **extra,
    )
    model.learn(200)  # fills the replay buffer, no training before learning_starts
    seed = int(np.random.default_rng(7).integers(2**31))
    np.random.seed(seed)
    torch.manual_seed(1)
    model.train(gradient_steps=1, batch_size=32)
    logged = dict(model.logger.name_to_value)
    batch = sample_batch(model, 32, np.random.default_rng(7))  # the same rows
    torch.manual_seed(1)  # the same noise, drawn in train()'s order
    losses = {name: float(loss()) for name, loss in training_losses(model, batch).items()}
    if algo == "dqn":
        assert losses["q_net"] == pytest.approx(logged["train/loss"], rel=1e-5)
    else:
        assert losses["critic"] == pytest.approx(logged["train/critic_loss"], rel=1e-5)
        assert losses["actor"] == pytest.approx(logged["train/actor_loss"], rel=1e-5)
