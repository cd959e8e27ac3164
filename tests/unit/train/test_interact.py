"""The rollout loop resets memory only for the envs whose episode ended."""

from __future__ import annotations

import numpy as np
import torch

from amago_pl.callbacks.interact import fresh_state, interact, summarize_episodes
from amago_pl.types import StepResult, Timestep


class CountingAgent(torch.nn.Module):
    """Its 'memory' counts the steps seen since the last reset, per env."""

    device = torch.device("cpu")

    def __init__(self):
        super().__init__()
        self.seen_time_idxs: list[np.ndarray] = []
        self.memory_before_step: list[np.ndarray] = []

    def init_hidden_state(self, n, device):
        return torch.zeros(n, dtype=torch.long)

    def reset_hidden_state(self, h, dones):
        h = h.clone()
        h[dones] = 0
        return h

    def get_actions(self, obs, rl2s, time_idxs, hidden_state, sample=True):
        self.memory_before_step.append(hidden_state.numpy().copy())
        self.seen_time_idxs.append(time_idxs[:, 0].numpy().copy())
        return torch.zeros(len(hidden_state), dtype=torch.long), hidden_state + 1


class StaggeredEnvs:
    """N envs; env i's episodes last ``lengths[i]`` steps; reward 1 per step."""

    def __init__(self, lengths):
        self.lengths = np.asarray(lengths)
        self.num_envs = len(lengths)
        self.t = np.zeros(self.num_envs, dtype=np.int64)

    def _ts(self, t):
        n = self.num_envs
        return Timestep(
            obs={"observation": t[:, None].astype(np.float32)},
            rl2s=np.zeros((n, 2), np.float32),
            time_idxs=t.copy(),
        )

    def reset(self):
        self.t[:] = 0
        return self._ts(self.t)

    def step(self, actions):
        self.t += 1
        terminated = self.t >= self.lengths
        final = self._ts(self.t)
        self.t[terminated] = 0
        n = self.num_envs
        return StepResult(
            next=self._ts(self.t),
            final=final,
            rewards=np.ones(n, np.float32),
            terminated=terminated,
            truncated=np.zeros(n, bool),
            env_names=[f"env{i}" for i in range(n)],
            infos=[{"AMAGO_LOG_METRICsuccess": 1.0} if terminated[i] else {} for i in range(n)],
            dropped=np.zeros(n, bool),
        )


def test_memory_resets_only_for_finished_envs():
    agent, envs = CountingAgent(), StaggeredEnvs([3, 5, 7, 2])
    state = fresh_state(agent, envs.reset(), agent.device)
    result = interact(agent, envs, state, timesteps=20)
    # Memory (steps since reset) must equal each env's position in its current episode.
    for mem, t in zip(agent.memory_before_step, agent.seen_time_idxs):
        np.testing.assert_array_equal(mem, t)
    assert result.env_steps == 20 * 4
    lengths = sorted({ep.length for ep in result.episodes})
    assert lengths == [2, 3, 5, 7]
    assert all(ep.total_return == ep.length for ep in result.episodes)


def test_state_carries_across_calls():
    agent, envs = CountingAgent(), StaggeredEnvs([6, 6])
    state = fresh_state(agent, envs.reset(), agent.device)
    interact(agent, envs, state, timesteps=4)
    interact(agent, envs, state, timesteps=4)
    for mem, t in zip(agent.memory_before_step, agent.seen_time_idxs):
        np.testing.assert_array_equal(mem, t)


def test_episode_limit_takes_the_same_number_from_every_env():
    """Short episodes finish first; the first 4 overall would be env0's 2-step episodes x3 + one of
    env1's, biasing the mean length (and on real tasks the return) towards short episodes."""
    agent, envs = CountingAgent(), StaggeredEnvs([2, 6])
    state = fresh_state(agent, envs.reset(), agent.device)
    result = interact(agent, envs, state, timesteps=100, episodes=4)
    lengths = sorted(ep.length for ep in result.episodes)
    assert lengths == [2, 2, 6, 6]
    assert result.env_steps == 12 * 2  # stops once env1 has finished its second episode
    odd = interact(agent, envs, fresh_state(agent, envs.reset(), agent.device), timesteps=100, episodes=3)
    assert sorted(ep.length for ep in odd.episodes) == [2, 2, 6, 6]  # ceil(3 / 2) = 2 per env


def test_episode_limit_and_summary():
    agent, envs = CountingAgent(), StaggeredEnvs([2, 4])
    state = fresh_state(agent, envs.reset(), agent.device)
    result = interact(agent, envs, state, timesteps=100, episodes=3)
    assert len(result.episodes) >= 3 and result.env_steps < 100 * 2
    metrics = summarize_episodes(result.episodes, "val")
    assert metrics["val/return/env0"] == 2.0
    assert metrics["val/success/env1"] == 1.0
    assert metrics["val/episodes"] == len(result.episodes)
    assert metrics["val/bottom_quintile_return/env1"] == 4.0
