"""Small synthetic trajectories for the replay tests.

``obs["id"]`` holds a per-trajectory id and ``obs["t"]`` the step index, so a training window
can be traced back to exactly one file and one position.
"""

from __future__ import annotations

import numpy as np

from amago_pl.types import FrozenTraj, StepResult, Timestep


def make_traj(
    T: int,
    traj_id: int = 0,
    num_actions: int | None = 4,
    action_dim: int = 2,
    seed: int = 0,
    terminal: bool = True,
) -> FrozenTraj:
    """T observations (T-1 transitions); Discrete(num_actions), or Box(action_dim) when None."""
    rng = np.random.default_rng(seed)
    if num_actions is not None:
        actions = rng.integers(0, num_actions, size=(T - 1, 1)).astype(np.int64)
        rep = np.zeros((T - 1, num_actions), np.float32)
        rep[np.arange(T - 1), actions[:, 0]] = 1.0
    else:
        actions = rng.uniform(-1, 1, size=(T - 1, action_dim)).astype(np.float32)
        rep = actions
    rews = rng.normal(size=T - 1).astype(np.float32)
    rl2s = np.zeros((T, 1 + rep.shape[1]), np.float32)
    rl2s[1:, 0] = rews
    rl2s[1:, 1:] = rep
    dones = np.zeros(T - 1, bool)
    if terminal and T > 1:
        dones[-1] = True
    return FrozenTraj(
        obs={
            "id": np.full((T, 1), traj_id, np.int64),
            "t": np.arange(T, dtype=np.int64)[:, None],
            "img": rng.integers(0, 255, size=(T, 3, 4, 4), dtype=np.uint8),
        },
        rl2s=rl2s,
        time_idxs=np.arange(T, dtype=np.int64),
        rews=rews,
        dones=dones,
        actions=actions,
        action_is_index=num_actions is not None,
    )


def assert_traj_equal(a: FrozenTraj, b: FrozenTraj) -> None:
    assert a.obs.keys() == b.obs.keys()
    for k in a.obs:
        assert a.obs[k].dtype == b.obs[k].dtype, k
        np.testing.assert_array_equal(a.obs[k], b.obs[k])
    for name in ("rl2s", "time_idxs", "rews", "dones", "actions"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert x.shape == y.shape, name
        np.testing.assert_array_equal(x, y)
    assert a.action_is_index == b.action_is_index


class FakeEnvs:
    """N envs with a scripted episode length per env; obs["x"] counts global steps per env.

    ``done_kind`` picks terminated or truncated endings. Same-step autoreset like ParallelEnvs.
    """

    def __init__(
        self, num_envs: int, episode_lens: list[int], done_kind: str = "terminated", num_actions: int = 4
    ):
        self.n = num_envs
        self.lens = episode_lens
        self.kind = done_kind
        self.A = num_actions
        self.t = np.zeros(num_envs, np.int64)
        self.counter = np.zeros(num_envs, np.int64)  # steps taken ever, per env

    def _ts(self, rew: np.ndarray, act: np.ndarray | None) -> Timestep:
        rl2s = np.zeros((self.n, 1 + self.A), np.float32)
        rl2s[:, 0] = rew
        if act is not None:
            rl2s[np.arange(self.n), 1 + act] = 1.0
        return Timestep(
            obs={"x": self.counter.astype(np.float32)[:, None].copy()}, rl2s=rl2s, time_idxs=self.t.copy()
        )

    def reset(self) -> Timestep:
        self.t[:] = 0
        return self._ts(np.zeros(self.n), None)

    def step(self, actions: np.ndarray, dropped: np.ndarray | None = None) -> StepResult:
        self.t += 1
        self.counter += 1
        rew = self.counter.astype(np.float32)  # reward identifies the step
        dropped = np.zeros(self.n, bool) if dropped is None else dropped
        ended = (self.t >= np.asarray(self.lens)) & ~dropped
        final = self._ts(rew, actions)
        self.t[ended | dropped] = 0
        nxt = self._ts(rew, actions)
        nxt.rl2s[ended | dropped] = 0.0  # a fresh episode starts with zero rl2s
        term = ended if self.kind == "terminated" else np.zeros(self.n, bool)
        trunc = ended if self.kind == "truncated" else np.zeros(self.n, bool)
        return StepResult(
            next=nxt,
            final=final,
            rewards=rew,
            terminated=term,
            truncated=trunc,
            env_names=["fake_env"] * self.n,
            infos=[{} for _ in range(self.n)],
            dropped=dropped,
        )
