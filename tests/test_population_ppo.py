"""PopulationPPO: members equal single FastPPO runs within float rounding, stay ordinary SB3
models, fail alone; train_seeds and rlp sweep --population write and resume run
directories as single runs do."""

from __future__ import annotations

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from rl_plasticity.cli import main
from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.population import train_seeds
from rl_plasticity.experiment.run import train
from rl_plasticity.sb3.batched_update import batched_update_reason
from rl_plasticity.sb3.fast_ppo import FastPPO
from rl_plasticity.sb3.population_ppo import PopulationPPO, ppo_population_reason
from rl_plasticity.sweep import plan
from rl_plasticity.sweep.local import population_tasks
from tests.conftest import TINY_PPO, write_spec

SETTINGS = dict(n_steps=64, batch_size=16, n_epochs=2, max_grad_norm=0.5)
BUFFER = ("observations", "actions", "rewards", "values", "log_probs", "advantages", "returns")


def pendulum(seed: int, **extra) -> FastPPO:
    kwargs = {**SETTINGS, **extra}
    policy_kwargs = dict(net_arch=[32, 32])
    return FastPPO(
        "MlpPolicy", gym.make("Pendulum-v1"), seed=seed, policy_kwargs=policy_kwargs, **kwargs
    )


class FirstBuffer(BaseCallback):
    """Keeps a copy of the first rollout buffer (before the update changes nothing in it)."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer: dict[str, np.ndarray] | None = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.buffer is None:
            b = self.model.rollout_buffer
            self.buffer = {name: getattr(b, name).copy() for name in BUFFER}


def adam_moments(model: FastPPO) -> list[torch.Tensor]:
    state = model.policy.optimizer.state
    return [state[p][key] for p in model.policy.parameters() for key in ("exp_avg", "exp_avg_sq")]


@pytest.mark.parametrize("hooked", [False, True])
def test_each_member_equals_its_single_run_after_one_update(hooked):
    steps: list[int] = []
    singles, grabs = [], []
    for seed in (3, 4):
        model = pendulum(seed)
        if hooked:
            model.policy.optimizer.register_step_post_hook(lambda *_: steps.append(1))
        grab = FirstBuffer()
        model.learn(64, callback=grab)
        singles.append(model)
        grabs.append(grab)
    population = PopulationPPO.build(pendulum, [3, 4])
    if hooked:
        for member in population.members:
            member.policy.optimizer.register_step_post_hook(lambda *_: steps.append(1))
    member_grabs = [FirstBuffer(), FirstBuffer()]
    population.learn(64, callback=member_grabs)
    expected_mode = "per member: hooks on the update" if hooked else "batched"
    assert population.update_mode.startswith(expected_mode)
    for single, member, grab, member_grab in zip(
        singles, population.members, grabs, member_grabs, strict=True
    ):
        for name in BUFFER:
            np.testing.assert_allclose(member_grab.buffer[name], grab.buffer[name], atol=1e-4)
        for a, b in zip(single.policy.parameters(), member.policy.parameters(), strict=True):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
        for a, b in zip(adam_moments(single), adam_moments(member), strict=True):
            torch.testing.assert_close(b, a, atol=1e-7, rtol=1e-4)
        assert member.num_timesteps == single.num_timesteps == 64
        assert member._n_updates == single._n_updates == 2
    # Different seeds stay different members: nothing is shared but the arithmetic.
    first, second = (next(iter(m.policy.parameters())) for m in population.members)
    assert not torch.equal(first, second)
    if hooked:  # 2 runs x 2 epochs x 4 minibatches, then the same for the 2 members
        assert len(steps) == 32


def test_a_member_saves_a_file_that_sb3_ppo_loads(tmp_path):
    population = PopulationPPO.build(pendulum, [0, 1])
    population.learn(128)
    member = population.members[1]
    member.save(tmp_path / "member.zip")
    loaded = PPO.load(tmp_path / "member.zip")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], member.predict(obs, deterministic=True)[0]
    )
    # The file holds one member, not the population's stacks.
    assert sum(p.numel() for p in loaded.policy.parameters()) == sum(
        p.numel() for p in member.policy.parameters()
    )


class Explode(BaseCallback):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise RuntimeError("boom")
        return True


def test_a_failing_member_stops_alone():
    population = PopulationPPO.build(pendulum, [0, 1, 2])
    population.learn(192, callback=[None, Explode(at=70), None])
    assert set(population.errors) == {1}
    assert "boom" in population.errors[1].__traceback_text__
    assert [m.num_timesteps for m in population.members] == [192, 70, 192]


def test_what_cannot_be_a_population_or_a_batched_update_says_why():
    assert "Discrete" in ppo_population_reason([pendulum(0), FastPPO("MlpPolicy", "CartPole-v1")])
    wide = FastPPO(
        "MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs=dict(net_arch=[16]), **SETTINGS
    )
    assert "networks differ" in ppo_population_reason([pendulum(0), wide])
    assert ppo_population_reason([pendulum(0), pendulum(1)]) is None
    with pytest.raises(ConfigError, match="members"):
        PopulationPPO([pendulum(0), wide])
    assert "target_kl" in batched_update_reason([pendulum(0, target_kl=0.01), pendulum(1)])
    assert "n_epochs" in batched_update_reason([pendulum(0), pendulum(1, n_epochs=3)])
    with pytest.raises(ConfigError, match="one entry per member"):
        PopulationPPO([pendulum(0), pendulum(1)]).learn(64, callback=[None])


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def cheap_agent(tmp_path: Path) -> Path:
    text = TINY_PPO.replace('algorithm = "PPO"', 'algorithm = "FastPPO"')
    return write_spec(
        tmp_path, "tiny-fast", text.replace("checkpoint_every = 1024", "checkpoint_every = 512")
    )


def test_population_run_directories_equal_single_runs_and_resume_exactly(
    tmp_path, tiny_env, cheap_agent
):
    root = tmp_path / "runs"
    kwargs = dict(root=root, resume=True)
    single = train(tiny_env, cheap_agent, 1, 2048, group="single", **kwargs)
    whole = train_seeds(tiny_env, cheap_agent, [0, 1], 2048, group="whole", **kwargs)
    assert [r.status for r in whole] == ["done", "done"]
    # The files and columns of a single run. (Not its numbers: the batched products round
    # differently, and HalfCheetah's dynamics grow a 1e-6 difference to a different episode within
    # tens of steps; the one-update test above and bench/population_equivalence.py cover that.)
    files = sorted(p.name for p in single.path.iterdir())
    assert sorted(p.name for p in whole[1].path.iterdir()) == files
    for name in ("progress.csv", "metrics.csv", "episodes.csv"):
        assert set(_rows(whole[1].path / name)[0]) == set(_rows(single.path / name)[0])
        assert len(_rows(whole[1].path / name)) > 0
    # In halves: 1024 steps, then resumed to 2048 from the checkpoints: the same files, row for
    # row, as the population trained in one go.
    train_seeds(tiny_env, cheap_agent, [0, 1], 1024, group="halves", **kwargs)
    halves = train_seeds(tiny_env, cheap_agent, [0, 1], 2048, group="halves", **kwargs)
    for done, resumed in zip(whole, halves, strict=True):
        assert resumed.status == "done"
        for name in ("episodes.csv", "metrics.csv"):
            assert (resumed.path / name).read_text() == (done.path / name).read_text()
    # A member's run resumes as a single run too, and a finished population is skipped.
    again = train_seeds(tiny_env, cheap_agent, [0, 1], 2048, group="halves", **kwargs)
    assert [r.status for r in again] == ["skipped", "skipped"]
    longer = train(tiny_env, cheap_agent, 0, 2560, group="halves", **kwargs)
    assert longer.status == "done"
    steps = [int(r["time/total_timesteps"]) for r in _rows(longer.path / "progress.csv")]
    assert steps == list(range(512, 2561, 512))


def test_sweep_groups_seeds_into_populations(tmp_path, tiny_env, cheap_agent, capsys):
    root = tmp_path / "runs"
    tasks = plan([str(tiny_env)], [str(cheap_agent)], [0, 1, 2], 512, root, "g")
    groups = population_tasks(tasks, 2)
    assert [[t.args.seed for t in g.members] for g in groups] == [[0, 1], [2]]
    assert groups[0].command[groups[0].command.index("--seeds") + 1] == "0,1"
    argv = ["sweep", "--env", str(tiny_env), "--agent", str(cheap_agent), "--seeds", "0-2"]
    argv += ["--steps", "512", "--root", str(root), "--population", "2", "--no-progress"]
    assert main(argv) == 0
    assert "3 runs: 3 done" in capsys.readouterr().out
    assert all((p / "final_model.zip").exists() for p in (root / "sweep").glob("*__s*"))
    assert main([*argv[:-3], "--population", "0", "--no-progress"]) == 2
    assert main([*argv, "--backend", "ray"]) == 2
    assert "population" in capsys.readouterr().err


def test_train_seeds_bad_input_exits_2_and_writes_nothing(tmp_path, tiny_env, cheap_agent, capsys):
    root = tmp_path / "runs"
    argv = ["train", "--env", str(tiny_env), "--agent", str(cheap_agent), "--steps", "512"]
    argv += ["--root", str(root), "--no-progress"]
    assert main([*argv, "--seeds", "3-1"]) == 2
    assert "seeds" in capsys.readouterr().err
    assert main([*argv, "--seeds", "0-1", "--seed", "4"]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert not root.exists()
    assert main([*argv, "--seeds", "0-1"]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [
        "tiny-cheetah__tiny-fast__s0",
        "tiny-cheetah__tiny-fast__s1",
    ]


def test_a_method_acts_per_member_with_its_own_state():
    from rl_plasticity.sb3.callbacks import MethodCallback

    settings = dict(replacement_rate=0.05, maturity_threshold=4)
    singles = []
    for seed in (0, 1):
        model = pendulum(seed)
        method = MethodCallback("cbp", **settings)
        model.learn(128, callback=method)
        singles.append(method)
    population = PopulationPPO.build(pendulum, [0, 1])
    methods = [MethodCallback("cbp", **settings) for _ in range(2)]
    population.learn(128, callback=methods)
    assert population.update_mode == "batched"  # CBP's population form
    utilities = []
    for single, member in zip(singles, methods, strict=True):
        ours, theirs = member.state_dict(), single.state_dict()
        assert ours["seed"] == theirs["seed"]  # derived from the member's own seed
        layers = ours["cores"]["policy"]["layers"]
        assert sum(layer["replaced_total"] for layer in layers.values()) > 0  # CBP acted
        for name, state in layers.items():
            reference = theirs["cores"]["policy"]["layers"][name]
            assert state["replaced_total"] == reference["replaced_total"]
            torch.testing.assert_close(state["utility"], reference["utility"], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(state["age"], reference["age"])
        utilities.append(next(iter(layers.values()))["utility"])
    assert not torch.equal(*utilities)  # each member's own state
