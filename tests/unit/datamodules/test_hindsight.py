"""HindsightInstructionReplay: relabeled trajectories agree with the env replayed on the new goals."""

from __future__ import annotations

import numpy as np
import pytest

from amago_pl.datamodules import HindsightInstructionReplay
from amago_pl.datamodules.hindsight import first_visits, goal_progress
from amago_pl.envs.builtin.mazerunner import GOAL_REACHED, MazeRunnerAMAGOEnv
from amago_pl.types import FrozenTraj

MAZE, K, LIMIT = 7, 3, 40


def rollout(seed: int, policy_seed: int) -> FrozenTraj:
    """One whole MazeRunner episode with random actions, stored as the writer would store it."""
    env = MazeRunnerAMAGOEnv(MAZE, K, LIMIT)
    rng = np.random.default_rng(policy_seed)
    obs, _ = env.reset(seed=seed)
    observations, rews, dones, actions = [obs], [], [], []
    while True:
        a = int(rng.integers(5))
        obs, r, terminated, truncated, _ = env.step(a)
        observations.append(obs)
        rews.append(r)
        dones.append(terminated)
        actions.append(a)
        if terminated or truncated:
            break
    T = len(observations)
    rl2s = np.zeros((T, 1 + 5), dtype=np.float32)
    rl2s[1:, 0] = rews
    rl2s[np.arange(1, T), 1 + np.asarray(actions)] = 1.0
    return FrozenTraj(
        obs={k: np.stack([o[k] for o in observations]) for k in observations[0]},
        rl2s=rl2s,
        time_idxs=np.arange(T, dtype=np.int64),
        rews=np.asarray(rews, dtype=np.float32),
        dones=np.asarray(dones, dtype=bool),
        actions=np.asarray(actions, dtype=np.int64)[:, None],
        action_is_index=True,
    )


def replay_with_goals(seed: int, goals: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Run the real env from the same maze and start, told to reach ``goals``, with the same actions."""
    env = MazeRunnerAMAGOEnv(MAZE, K, LIMIT)
    env.reset(seed=seed)
    base = env.unwrapped
    base.goals = goals.astype(np.int64).copy()
    goal_obs, rews, dones = [env.env.observation(base._obs())["goals"]], [], []
    for a in actions:
        obs, r, terminated, _, _ = env.step(int(a))
        goal_obs.append(obs["goals"])
        rews.append(r)
        dones.append(terminated)
        if terminated:
            break
    return {"goals": np.stack(goal_obs), "rews": np.asarray(rews, np.float32), "dones": np.asarray(dones)}


def check_consistent(out: FrozenTraj, original: FrozenTraj, seed: int) -> None:
    n = len(out)
    assert 1 <= n <= len(original)
    new_goals = out.obs["goals"][0]
    assert not (new_goals == GOAL_REACHED).any(), "no goal is reached at the first step"
    truth = replay_with_goals(seed, new_goals, original.actions[:n, 0])
    assert len(truth["rews"]) == n, "cut exactly where the relabeled episode ends"
    np.testing.assert_array_equal(out.rews, truth["rews"])
    np.testing.assert_array_equal(out.dones, truth["dones"])
    np.testing.assert_array_equal(out.obs["goals"], truth["goals"])
    np.testing.assert_array_equal(out.rl2s[1:, 0], out.rews)  # previous-reward input
    assert out.rl2s[0, 0] == 0.0
    # Everything that does not depend on the instruction is an untouched prefix.
    np.testing.assert_array_equal(out.rl2s[:, 1:], original.rl2s[: n + 1, 1:])
    np.testing.assert_array_equal(out.actions, original.actions[:n])
    np.testing.assert_array_equal(out.time_idxs, original.time_idxs[: n + 1])
    for key in ("obs", "achieved"):
        np.testing.assert_array_equal(out.obs[key], original.obs[key][: n + 1])
    assert not out.dones[:-1].any(), "only the last transition may be terminal"


EPISODES = [(seed, 100 + seed) for seed in range(12)]


@pytest.mark.parametrize("strategy", ["all", "some", "none"])
def test_relabeled_arrays_match_the_env(strategy: str) -> None:
    relabeler = HindsightInstructionReplay(K, strategy=strategy, seed=0)
    changed = 0
    for seed, policy_seed in EPISODES:
        traj = rollout(seed, policy_seed)
        before = {k: v.copy() for k, v in traj.to_dict().items()}
        out = relabeler(traj)
        for k, v in traj.to_dict().items():
            np.testing.assert_array_equal(v, before[k], err_msg=f"{k} modified in place")
        check_consistent(out, traj, seed)
        changed += int(out.total_return() != traj.total_return() or len(out) != len(traj))
        if strategy == "none":
            assert out is traj
        if strategy == "all" and len(first_visits(traj.obs["achieved"][:, 0])) >= K:
            assert out.total_return() == K and out.dones[-1], "'all' turns every episode into a success"
        if strategy == "some":
            real = traj.obs["goals"][0]
            reached = int(goal_progress(traj.obs["achieved"][:, 0], real)[-1])
            np.testing.assert_array_equal(out.obs["goals"][0][:reached], real[:reached])
            assert out.total_return() >= min(reached, K)
    if strategy != "none":
        assert changed > 0


def test_time_limit_terminal_is_kept() -> None:
    # A failed random episode ends at the time limit: relabeled goals the agent never reaches must
    # leave that terminal in place (the timer is part of the state).
    relabeler = HindsightInstructionReplay(K, strategy="some", seed=1)
    for seed, policy_seed in EPISODES:
        traj = rollout(seed, policy_seed)
        if len(traj) < LIMIT:
            continue
        out = relabeler.apply_goals(traj, np.full((K, 2), 99.0, np.float32), traj.obs["goals"][0])
        assert len(out) == LIMIT and out.dones[-1] and out.total_return() == 0
        explicit = HindsightInstructionReplay(K, time_limit=LIMIT).apply_goals(
            traj, np.full((K, 2), 99.0, np.float32), traj.obs["goals"][0]
        )
        np.testing.assert_array_equal(explicit.dones, out.dones)
        return
    pytest.fail("no episode reached the time limit")


def test_success_not_kept_as_terminal_under_other_goals() -> None:
    # A stored success of the real goals is not an episode end for an instruction that is not met.
    traj = rollout(0, 100)
    real = traj.obs["goals"][0]
    achieved = traj.obs["achieved"][:, 0]
    relabeler = HindsightInstructionReplay(K, seed=0)
    if goal_progress(achieved, real)[-1] == K:
        out = relabeler.apply_goals(traj, np.full((K, 2), 99.0, np.float32), real)
        assert not out.dones.any()
    # The relabeler itself must never mark a done where the counter does not finish.
    out = relabeler(traj)
    assert out.dones[-1] == (
        goal_progress(achieved[: len(out) + 1], out.obs["goals"][0])[-1] == K or len(out) == LIMIT
    )


def test_pieces_are_left_alone_and_bad_args_fail() -> None:
    traj = rollout(3, 103)
    piece = FrozenTraj(
        obs={k: v[2:] for k, v in traj.obs.items()},
        rl2s=traj.rl2s[2:],
        time_idxs=traj.time_idxs[2:],
        rews=traj.rews[2:],
        dones=traj.dones[2:],
        actions=traj.actions[2:],
        action_is_index=True,
    )
    assert HindsightInstructionReplay(K)(piece) is piece
    with pytest.raises(ValueError, match="strategy"):
        HindsightInstructionReplay(K, strategy="most")
    with pytest.raises(ValueError, match="goals have shape"):
        HindsightInstructionReplay(K + 1)(traj)


def test_gin_binding_builds_the_relabeler(tmp_path) -> None:
    from amago_pl.cli_utils import use_config
    from amago_pl.datamodules import DiskTrajDataset

    use_config({"HindsightInstructionReplay.num_goals": K, "HindsightInstructionReplay.strategy": "some"})
    # gin passes `@HindsightInstructionReplay` as a class; the dataset builds it.
    dset = DiskTrajDataset(tmp_path, "d", dset_max_size=10, relabeler=HindsightInstructionReplay)
    assert isinstance(dset.relabeler, HindsightInstructionReplay)
    assert dset.relabeler.num_goals == K and dset.relabeler.strategy == "some"
