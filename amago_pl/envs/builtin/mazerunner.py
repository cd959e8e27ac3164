"""MazeRunner: reach a sequence of goals in a random maze (gymnasium + numpy only).

``MazeRunnerGymEnv`` is the plain env. ``MazeRunnerAMAGOEnv`` exposes a goal-conditioned dict
observation for hindsight relabeling:

- ``obs`` (7,) float32: ``[wall distance up, down, left, right (cells / maze_dim), x / maze_dim,
  y / maze_dim, t / time_limit]``.
- ``achieved`` (1, 2) float32: the agent's grid cell ``(x, y)`` (integers stored as floats, so
  equality tests are exact).
- ``goals`` (k, 2) float32: the ordered goal cells; goals already reached are replaced by the
  sentinel ``(-1, -1)``.

What a relabeler must recompute for a new goal list ``g`` (k, 2) over a stored trajectory of T
observations: with ``c_0 = 0`` and ``c_{t+1} = c_t + 1`` if ``c_t < k`` and ``achieved[t+1, 0] ==
g[c_t]`` (else ``c_t``): ``rews[t] = c_{t+1} - c_t``, ``rl2s[t+1, 0] = rews[t]``,
``dones[t] = (c_{t+1} == k)`` or the time limit (``t + 1 == time_limit``), and ``goals[t, j] =
g[j]`` if ``j >= c_t`` else ``(-1, -1)``; cut the trajectory after the first done. The start cell
is never a goal, and goals only count in order.
"""

from __future__ import annotations

import gin
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX, AMAGOEnv
from amago_pl.envs.builtin.toy_gym import MOVES

_DIRS = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)  # lidar: up, down, left, right
GOAL_REACHED = -1.0  # sentinel coordinate of goals already reached


def random_maze(dim: int, rng: np.random.Generator) -> np.ndarray:
    """(dim, dim) bool grid ``walls[y, x]`` of a perfect maze (randomised depth-first search)."""
    walls = np.ones((dim, dim), dtype=bool)
    start = (1, 1)
    walls[start[1], start[0]] = False
    stack = [start]
    while stack:
        x, y = stack[-1]
        options = []
        for dx, dy in _DIRS * 2:
            nx, ny = x + dx, y + dy
            if 0 < nx < dim - 1 and 0 < ny < dim - 1 and walls[ny, nx]:
                options.append((nx, ny))
        if not options:
            stack.pop()
            continue
        nx, ny = options[int(rng.integers(len(options)))]
        walls[(y + ny) // 2, (x + nx) // 2] = False  # knock down the wall between the two cells
        walls[ny, nx] = False
        stack.append((nx, ny))
    return walls


@gin.configurable
class MazeRunnerGymEnv(gym.Env):
    """Reach ``k`` goals (k uniform in [min_num_goals, max_num_goals]) in order in a random maze.

    A new maze, start and goal list are drawn at every reset. Actions: Discrete(5), no-op plus 4
    moves. Reward 1 per goal reached in order. The episode terminates on the last goal or at
    ``time_limit`` (the timer is in the observation, so it is a true terminal).
    Observation (7,) float32 as in the module doc, plus the current goal ``(gx, gy) / maze_dim``
    (9,) when ``goal_in_obs``. At the end of an episode it logs "Goals Reached" and "Success".

    Args:
        maze_dim: side length of the square maze grid, border walls included; odd and at least 5.
        min_num_goals: at least 1.
        randomized_action_space: shuffle which action index moves in which direction at every
            reset (the AMAGO paper's "rewired" actions), so the mapping must be found in context.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        maze_dim: int = 11,
        min_num_goals: int = 1,
        max_num_goals: int = 3,
        time_limit: int = 250,
        goal_in_obs: bool = True,
        randomized_action_space: bool = False,
    ):
        if maze_dim < 5 or maze_dim % 2 == 0:
            raise ValueError(f"maze_dim must be odd and >= 5, got {maze_dim}")
        if not 1 <= min_num_goals <= max_num_goals:
            raise ValueError(
                f"need 1 <= min_num_goals <= max_num_goals, got {min_num_goals}, {max_num_goals}"
            )
        self.maze_dim = maze_dim
        self.min_num_goals = min_num_goals
        self.max_num_goals = max_num_goals
        self.time_limit = time_limit
        self.goal_in_obs = goal_in_obs
        self.randomized_action_space = randomized_action_space
        self.moves = MOVES.copy()  # action index -> (dx, dy); permuted per episode when randomized
        self.action_space = spaces.Discrete(5)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(9 if goal_in_obs else 7,), dtype=np.float32)

    @property
    def env_name(self) -> str:
        return f"MazeRunner-{self.maze_dim}x{self.maze_dim}"

    def _lidar(self) -> np.ndarray:
        out = np.zeros(4, dtype=np.float32)
        for d, (dx, dy) in enumerate(_DIRS):
            x, y, dist = int(self.pos[0]), int(self.pos[1]), 0
            while not self.walls[y + dy, x + dx]:  # the border is all walls, so this stops
                x, y, dist = x + dx, y + dy, dist + 1
            out[d] = dist / self.maze_dim
        return out

    def _obs(self) -> np.ndarray:
        feats = [*self._lidar(), *(self.pos / self.maze_dim), self.t / self.time_limit]
        if self.goal_in_obs:
            goal = self.goals[min(self.reached, len(self.goals) - 1)]
            feats += list(goal / self.maze_dim)
        return np.asarray(feats, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.walls = random_maze(self.maze_dim, self.np_random)
        free_y, free_x = np.nonzero(~self.walls)
        k = int(self.np_random.integers(self.min_num_goals, self.max_num_goals + 1))
        k = min(k, len(free_x) - 1)
        picks = self.np_random.choice(len(free_x), size=k + 1, replace=False)
        cells = np.stack([free_x[picks], free_y[picks]], axis=1).astype(np.int64)  # (k+1, 2) as (x, y)
        self.pos, self.goals = cells[0].copy(), cells[1:]
        if self.randomized_action_space:
            self.moves = MOVES[self.np_random.permutation(len(MOVES))]
        self.reached = 0
        self.t = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        new = self.pos + self.moves[int(action)]
        if not self.walls[new[1], new[0]]:
            self.pos = new
        self.t += 1
        reward = 0.0
        if self.reached < len(self.goals) and np.array_equal(self.pos, self.goals[self.reached]):
            self.reached += 1
            reward = 1.0
        success = self.reached == len(self.goals)
        terminated = success or self.t >= self.time_limit
        info = {}
        if terminated:
            info[f"{LOG_METRIC_PREFIX}Goals Reached"] = float(self.reached)
            info[f"{LOG_METRIC_PREFIX}Success"] = float(success)
        return self._obs(), reward, terminated, False, info


class GoalDictObservation(gym.ObservationWrapper):
    """``MazeRunnerGymEnv(goal_in_obs=False)`` -> ``{obs, achieved, goals}`` (see module doc)."""

    def __init__(self, env: MazeRunnerGymEnv, num_goals: int):
        super().__init__(env)
        dim = env.maze_dim
        self.num_goals = num_goals
        self.observation_space = spaces.Dict(
            {
                "obs": env.observation_space,
                "achieved": spaces.Box(0.0, dim - 1, shape=(1, 2), dtype=np.float32),
                "goals": spaces.Box(GOAL_REACHED, dim - 1, shape=(num_goals, 2), dtype=np.float32),
            }
        )

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        base: MazeRunnerGymEnv = self.env.unwrapped  # type: ignore[assignment]
        goals = base.goals.astype(np.float32)  # (k, 2)
        goals[: base.reached] = GOAL_REACHED
        return {
            "obs": observation,
            "achieved": base.pos.astype(np.float32)[None],  # (1, 2)
            "goals": goals,
        }


class RelabelInfoWrapper(GoalDictObservation):
    """The original's name and signature: ``RelabelInfoWrapper(MazeRunnerGymEnv(...))`` with
    ``max_num_goals`` goal slots (amago/envs/builtin/mazerunner.py at 2d85600)."""

    def __init__(self, env: MazeRunnerGymEnv):
        super().__init__(env, env.max_num_goals)


@gin.configurable
class MazeRunnerAMAGOEnv(AMAGOEnv):
    """``MazeRunnerGymEnv`` with exactly ``num_goals`` goals and relabelable dict observations.

    Already an ``AMAGOEnv`` (do not wrap it again). Its ``{obs, achieved, goals}`` observation
    (module doc) is what ``HindsightInstructionReplay`` rewrites; the current goal is not appended
    to ``obs``.

    Args:
        maze_dim: side length of the square maze grid; odd and at least 5.
        num_goals: number k of goals in every episode (the relabeler's ``num_goals`` must match).
        randomized_action_space: see :class:`MazeRunnerGymEnv`.
    """

    def __init__(
        self,
        maze_dim: int = 11,
        num_goals: int = 3,
        time_limit: int = 250,
        randomized_action_space: bool = False,
    ):
        base = MazeRunnerGymEnv(
            maze_dim,
            num_goals,
            num_goals,
            time_limit,
            goal_in_obs=False,
            randomized_action_space=randomized_action_space,
        )
        super().__init__(
            GoalDictObservation(base, num_goals), env_name=f"MazeRunner-{maze_dim}x{maze_dim}-k{num_goals}"
        )
