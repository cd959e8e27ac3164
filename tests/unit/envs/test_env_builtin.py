"""Builtin envs: gymnasium's check_env, the name registry and each task's documented rules."""

import gin
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from amago_pl.envs import LOG_METRIC_PREFIX, AMAGOEnv, make_builtin_env
from amago_pl.envs.builtin import (
    MazeRunnerAMAGOEnv,
    MazeRunnerGymEnv,
    MetaFrozenLake,
    RoomKeyDoor,
    TMazeAltActive,
    TMazeAltPassive,
    list_builtin_envs,
)
from amago_pl.envs.builtin.mazerunner import GOAL_REACHED

LIGHT = [
    ("tmaze", {}),
    ("tmaze_active", {"corridor_length": 4}),
    ("frozen_lake", {"size": 4, "k_episodes": 2}),
    ("frozen_lake", {"hard_mode": True, "recover_mode": True, "slip_chance": 0.2}),
    ("dark_key_door", {}),
    ("key_door", {"size": 5}),
    ("mazerunner", {"maze_dim": 7}),
    ("mazerunner", {"goal_in_obs": False}),
    ("mazerunner_goals", {"maze_dim": 7, "num_goals": 2}),
    ("gym:CartPole-v1", {}),
]


@pytest.mark.parametrize("name, kw", LIGHT)
def test_check_env_light(name, kw):
    env = make_builtin_env(name, **kw)
    assert isinstance(env, AMAGOEnv)
    check_env(env, skip_render_check=True)
    check_env(env.unwrapped, skip_render_check=True)


def test_check_env_popgym():
    pytest.importorskip("popgym")
    env = make_builtin_env("popgym:RepeatPreviousEasy")
    check_env(env, skip_render_check=True)
    assert env.env_name == "POPGymRepeatPreviousEasy"
    obs, _ = env.reset(seed=0)
    assert obs["observation"][-1] == 0.0  # timer
    obs, *_ = env.step(0)
    assert obs["observation"][-1] == pytest.approx(1 / 1000)


def test_check_env_minigrid():
    pytest.importorskip("minigrid")
    env = make_builtin_env("minigrid:MiniGrid-Empty-5x5-v0")
    check_env(env, skip_render_check=True)
    assert set(env.observation_space.spaces) == {"image", "direction"}


def test_optional_packages_fail_clearly_when_missing(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_popgym(name, *args):
        if name.startswith("popgym"):
            raise ImportError("No module named 'popgym'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_popgym)
    with pytest.raises(ImportError, match=r"pip install amago_pl\[envs\]"):
        make_builtin_env("popgym:RepeatPreviousEasy")


def test_registry_names_and_errors():
    names = list_builtin_envs()
    for n in ("tmaze", "frozen_lake", "dark_key_door", "mazerunner", "popgym:<name>", "gym:<name>"):
        assert n in names
    with pytest.raises(ValueError, match="unknown builtin env"):
        make_builtin_env("nope")
    with pytest.raises(ValueError, match="unknown POPGym env"):
        make_builtin_env("popgym:NotAGame")


def test_builtins_are_gin_configurable():
    gin.clear_config()
    try:
        gin.parse_config("TMazeAltPassive.corridor_length = 3\nRoomKeyDoor.size = 4")
        assert TMazeAltPassive().corridor_length == 3
        assert RoomKeyDoor().size == 4
    finally:
        gin.clear_config()


@pytest.mark.parametrize("cls, length", [(TMazeAltPassive, 6), (TMazeAltActive, 8)])
def test_tmaze_memory_rule(cls, length):
    env = cls(corridor_length=5)
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        if cls is TMazeAltActive:
            assert obs[0] == 0.0  # hidden until the oracle cell is visited
            obs, *_ = env.step(2)  # left to the oracle
        signal = obs[0]
        assert signal in (-1.0, 1.0)
        rewards = []
        while True:
            at_junction = obs[1] == 1.0
            obs, r, term, trunc, _ = env.step((1 if signal > 0 else 3) if at_junction else 0)
            assert obs[0] == 0.0 or obs[2] == 1.0  # signal only shown on the oracle cell
            rewards.append(r)
            if term:
                break
        assert not trunc and rewards[-1] == 1.0 and sum(rewards) == 1.0
        assert env.t == length
    # the wrong turn gets nothing; dawdling runs out the clock at corridor_length + 1
    env = TMazeAltPassive(corridor_length=2, penalty=-0.1)
    obs, _ = env.reset(seed=0)
    steps = [env.step(0), env.step(0), env.step(3 if obs[0] > 0 else 1)]
    assert steps[-1][1] == 0.0 and steps[-1][2]
    env.reset(seed=0)
    outs = [env.step(2) for _ in range(3)]
    assert [o[2] for o in outs] == [False, False, True] and all(o[1] == -0.1 for o in outs)


def test_meta_frozen_lake_attempts_and_metrics():
    env = MetaFrozenLake(size=4, k_episodes=3, max_episode_steps=2)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0, 0, 1, 0])
    metrics, term, steps = [], False, 0
    while not term:
        obs, r, term, trunc, info = env.step(0)  # no-op: every attempt times out
        steps += 1
        metrics += [k for k in info if k.startswith(LOG_METRIC_PREFIX)]
        assert not trunc
    assert steps == 6 and obs[3] == 1.0 and obs[2] == 1.0
    assert metrics == [f"{LOG_METRIC_PREFIX}Episode {i} Success" for i in (1, 2, 3)]
    # maps are solvable and change per reset
    from amago_pl.envs.builtin.toy_gym import reachable

    maps = []
    for seed in range(5):
        env.reset(seed=seed)
        assert reachable(~env.holes, (0, 0), (3, 3))
        maps.append(env.holes.copy())
    assert any(not np.array_equal(maps[0], m) for m in maps[1:])


def test_meta_frozen_lake_goal_reward():
    env = MetaFrozenLake(size=3, k_episodes=1)
    env.reset(seed=0)
    env.holes[:] = False  # clear path: right, right, down, down
    rewards = [env.step(a)[1] for a in (2, 2, 4)]
    obs, r, term, _, info = env.step(4)
    assert rewards == [0, 0, 0] and r == 1.0 and term
    assert info[f"{LOG_METRIC_PREFIX}Episode 1 Success"] == 1.0


def test_room_key_door_rewards_and_horizon():
    env = RoomKeyDoor(
        size=5, start_location=(0, 0), key_location=(1, 0), goal_location=(2, 0), meta_rollout_horizon=6
    )
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, [0, 0, 0, 0])
    rewards, term = [], False
    while not term:
        _, r, term, trunc, _ = env.step(2)  # right: key at step 1, door at step 2, then restart
        rewards.append(r)
    assert rewards == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0] and len(rewards) == 6 and not trunc
    light = RoomKeyDoor(dark=False, size=5)
    assert light.reset(seed=1)[0].shape == (8,)


def test_mazerunner_rules_and_relabel_recipe():
    env = MazeRunnerAMAGOEnv(maze_dim=7, num_goals=2, time_limit=60)
    obs, _ = env.reset(seed=3)
    base: MazeRunnerGymEnv = env.unwrapped
    goals = obs["goals"].copy()
    assert obs["achieved"].shape == (1, 2) and goals.shape == (2, 2) and obs["obs"].shape == (7,)
    traj = [obs]
    rewards, dones = [], []
    done = False
    while not done:
        target = goals[min(base.reached, 1)].astype(int)
        obs, r, term, trunc, _ = env.step(first_move(base.walls, base.pos, target))
        traj.append(obs)
        rewards.append(r)
        dones.append(term)
        done = term or trunc
    assert sum(rewards) == 2.0 and dones[-1]  # the BFS policy reaches both goals in order
    # The documented recipe recomputes rewards, dones and goal observations from achieved + goals.
    c = 0
    for t in range(len(rewards)):
        assert np.array_equal(traj[t]["goals"][:c], np.full((c, 2), GOAL_REACHED))
        assert np.array_equal(traj[t]["goals"][c:], goals[c:])
        new_c = c + int(c < 2 and np.array_equal(traj[t + 1]["achieved"][0], goals[c]))
        assert rewards[t] == new_c - c
        assert dones[t] == (new_c == 2 or t + 1 == base.time_limit)
        c = new_c


def first_move(walls, pos, target):
    """Action (1-4) of a shortest path from pos to target, by BFS backwards from the target."""
    from collections import deque

    from amago_pl.envs.builtin.toy_gym import MOVES

    dist = {tuple(target): 0}
    queue = deque([tuple(target)])
    while queue:
        x, y = queue.popleft()
        for dx, dy in MOVES[1:]:
            nxt = (x + dx, y + dy)
            if not walls[nxt[1], nxt[0]] and nxt not in dist:
                dist[nxt] = dist[(x, y)] + 1
                queue.append(nxt)
    here = dist[tuple(pos)]
    for a in range(1, 5):
        nxt = tuple(pos + MOVES[a])
        if dist.get(nxt, here) < here:
            return a
    return 0
