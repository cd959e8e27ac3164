"""Ported data code and helpers: an ``RLDataset`` subclass written for the original (no ``rng``
argument, returns ``RLData``; examples/14_d4rl.py at 2d85600) trains an agent, and the helper
modules ``amago_pl.utils``, ``amago_pl.envs.env_utils``, ``amago_pl.nets.goal_embedders`` and the
``loading``/``hindsight`` names behave as the original documents them (values worked out by hand)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive
from amago_pl.envs.env_utils import (
    ContinuousActionWrapper,
    DiscreteActionWrapper,
    DummyAsyncVectorEnv,
    extend_box_obs_space_by,
)
from amago_pl.hindsight import FrozenTraj, Timestep, Trajectory, split_batched_timestep
from amago_pl.loading import RLData, RLData_pad_collate, RLDataset, load_traj_from_disk
from amago_pl.nets.goal_embedders import FFGoalEmb, TokenGoalEmb
from amago_pl.utils import (
    AdamWRel,
    get_constant_schedule_with_warmup,
    get_grad_norm,
    masked_avg,
    split_dict,
    stack_list_array_dicts,
)
from tests.porting.porting_helpers import tiny_run


class FixedEpisodes(RLDataset):
    """An offline dataset in the original's style: one fixed T-Maze-shaped episode."""

    def __init__(self):
        super().__init__()
        self.samples = 0

    def get_description(self) -> str:
        return "fixed"

    @property
    def save_new_trajs_to(self):
        return None

    def sample_random_trajectory(self):
        self.samples += 1
        T = 5
        actions = torch.zeros(T - 1, 4)
        actions[:, 0] = 1.0  # one-hot "right"
        return RLData(
            obs={"observation": torch.zeros(T, 3)},
            actions=actions,
            rews=torch.ones(T - 1, 1),
            dones=torch.zeros(T - 1, 1, dtype=torch.bool),
            time_idxs=torch.arange(T).unsqueeze(-1),
        )


def test_rldata_builds_rl2s_from_shifted_rewards_and_actions():
    d = RLData(obs={"o": torch.zeros(3, 1)}, rews=torch.tensor([[2.0], [3.0]]), dones=torch.zeros(2, 1).bool(),
               actions=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), time_idxs=torch.arange(3)[:, None])  # fmt: skip
    assert d.rl2s.tolist() == [[0, 0, 0], [2, 1, 0], [3, 0, 1]]
    batch = RLData_pad_collate([d, d])
    assert batch.rews.shape == (2, 2) and batch.mask.all()


def test_an_original_style_rldataset_trains(tmp_path):
    dataset = FixedEpisodes()
    tiny_run(tmp_path, lambda: AMAGOEnv(TMazeAltPassive(corridor_length=3)), dataset=dataset, max_seq_len=4)
    assert dataset.samples > 0


def test_utils_helpers():
    parts = split_dict({"a": np.arange(6).reshape(3, 2)})
    assert len(parts) == 3 and parts[1]["a"].tolist() == [[2, 3]]
    assert stack_list_array_dicts(parts, axis=0, cat=True)["a"].shape == (3, 2)
    x = torch.tensor([1.0, 2.0, 6.0])
    assert torch.isclose(masked_avg(x, torch.tensor([True, True, False])), torch.tensor(1.5), atol=1e-4)
    layer = torch.nn.Linear(2, 1, bias=False)
    layer.weight.grad = torch.tensor([[3.0, 4.0]])
    assert get_grad_norm(layer) == 5.0
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    sched = get_constant_schedule_with_warmup(opt, num_warmup_steps=2)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [0.0, 0.5, 1.0, 1.0]


def test_adamwrel_restarts_step_counts():
    p = torch.nn.Parameter(torch.ones(2))
    opt = AdamWRel([p], reset_interval=3)
    for _ in range(4):
        p.grad = torch.ones(2)
        opt.step()
    assert float(opt.state[p]["step"]) == 1.0  # 3 steps, reset to 0, one more step


def test_env_utils():
    box = extend_box_obs_space_by(spaces.Box(-1.0, 1.0, (2,), np.float32), by=2, low=0.0, high=5.0)
    assert box.shape == (4,) and box.high.tolist() == [1, 1, 5, 5]
    env = ContinuousActionWrapper(gym.make("Pendulum-v1"))  # torque in [-2, 2]
    assert env.action(np.array([0.5], np.float32)).tolist() == [1.0]
    assert DiscreteActionWrapper(gym.make("CartPole-v1")).action(np.array([1], np.uint8)) == 1
    venv = DummyAsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    obs, _ = venv.reset()
    assert obs.shape == (2, 4) and venv.step(np.array([0, 1]))[0].shape == (2, 4)
    venv.call_async("spec")
    assert [s.id for s in venv.call_wait()] == ["CartPole-v1"] * 2


def test_goal_embedders():
    goals = torch.randint(-1, 5, (2, 3, 4, 2)).float()  # (B, L, goals, dims)
    assert FFGoalEmb(4, 2, goal_emb_dim=8)(goals).shape == (2, 3, 8)
    assert TokenGoalEmb(4, 2, goal_emb_dim=8)(goals).shape == (2, 3, 8)
    assert TokenGoalEmb(4, 2, max_token=2)(goals * 100).isfinite().all()  # out-of-range tokens clamp
    assert (FFGoalEmb(4, 2, zero_embedding=True)(goals) == 0).all()


def test_hindsight_and_loading_names(tmp_path):
    ts = Timestep(
        obs={"o": np.arange(4.0).reshape(2, 2)}, rl2s=np.zeros((2, 3), np.float32), time_idxs=np.zeros(2)
    )
    parts = split_batched_timestep(ts)
    traj = Trajectory()
    for p in parts:
        traj.add_timestep(p)
    obs, rl2s, time = traj.as_input_sequence()
    assert obs["o"].shape == (1, 2, 2) and rl2s.shape == (1, 2, 3) and time.shape == (1, 2, 1)
    original = FrozenTraj(obs={"o": np.zeros((3, 1))}, rl2s=np.zeros((3, 3), np.float32),
                          time_idxs=np.arange(3)[:, None], rews=np.ones((2, 1), np.float32),
                          dones=np.zeros((2, 1), bool), actions=np.eye(2, dtype=np.float32))  # fmt: skip
    path = tmp_path / "orig.npz"
    np.savez(path, **original.to_dict())  # the original's npz keys
    back = load_traj_from_disk(path)
    assert back.rews.shape == (2, 1) and back.to_frozen_traj().rews.tolist() == [1.0, 1.0]
