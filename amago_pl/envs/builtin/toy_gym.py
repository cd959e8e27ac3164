"""Small meta-RL gridworlds (gymnasium + numpy only): ``MetaFrozenLake`` and ``RoomKeyDoor``.

Both are k-attempt meta-RL tasks: the layout stays fixed for a whole env episode made of several
attempts, and the env resets the agent itself between attempts, so a memory-based policy can
improve from one attempt to the next (amago_pl only sees the outer episode).
"""

from __future__ import annotations

from collections import deque

import gin
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX

# Action 0 is a no-op; 1-4 move. Offsets are (dx, dy) with x the column and y the row.
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)


def reachable(free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> bool:
    """BFS over 4-connected free cells of the (N, N) bool grid ``free[y, x]``."""
    n = free.shape[0]
    seen = np.zeros_like(free)
    queue = deque([start])
    seen[start[1], start[0]] = True
    while queue:
        x, y = queue.popleft()
        if (x, y) == goal:
            return True
        for dx, dy in MOVES[1:]:
            nx, ny = x + dx, y + dy
            if 0 <= nx < n and 0 <= ny < n and free[ny, nx] and not seen[ny, nx]:
                seen[ny, nx] = True
                queue.append((nx, ny))
    return False


def random_lake(size: int, rng: np.random.Generator, hole_prob: float = 0.2) -> np.ndarray:
    """(size, size) bool map of holes with the start (0, 0) and goal (size-1, size-1) connected."""
    while True:
        holes = rng.random((size, size)) < hole_prob
        holes[0, 0] = holes[-1, -1] = False
        if reachable(~holes, (0, 0), (size - 1, size - 1)):
            return holes


@gin.configurable
class MetaFrozenLake(gym.Env):
    """Frozen lake with a new random (solvable) map per env episode and ``k_episodes`` attempts.

    Observation (4,) float32: ``[x / N, y / N, reset_flag, k / K]`` where ``reset_flag`` is 1 on
    the first timestep of an attempt and k counts finished attempts. Actions: Discrete(5), no-op
    plus 4 moves. Reward 1 on reaching the goal (bottom-right). An attempt ends at the goal, in a
    hole, or after ``max_episode_steps`` steps (default N^2, 2 N^2 in hard mode); the env episode
    terminates after K attempts. ``info["AMAGO_LOG_METRICEpisode {i} Success"]`` is logged at the
    end of attempt i (1-based).

    Args:
        size: side length N of the square map.
        k_episodes: number of attempts K per env episode (same map).
        hard_mode: shuffle the four move actions per env episode (to be learned in context) and
            double the default step limit.
        recover_mode: stepping towards a hole gives -0.1 and leaves the agent in place instead
            of ending the attempt.
        max_episode_steps: step limit of one attempt; None means N^2 (2 N^2 in hard mode).
        show_k_progress: include ``k / K`` in the observation; False puts 0 there (hides how many
            attempts are left, e.g. to test other K than trained on).
        slip_chance: probability that a move action is replaced by a random move.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        size: int = 5,
        k_episodes: int = 10,
        hard_mode: bool = False,
        recover_mode: bool = False,
        max_episode_steps: int | None = None,
        show_k_progress: bool = True,
        slip_chance: float = 0.0,
    ):
        self.size = size
        self.k_episodes = k_episodes
        self.show_k_progress = show_k_progress
        self.hard_mode = hard_mode
        self.recover_mode = recover_mode
        self.max_episode_steps = max_episode_steps or (2 if hard_mode else 1) * size * size
        self.slip_chance = slip_chance
        self.action_space = spaces.Discrete(5)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)

    @property
    def env_name(self) -> str:
        return f"MetaFrozenLake-{self.size}x{self.size}-k{self.k_episodes}"

    def _obs(self, reset_flag: bool) -> np.ndarray:
        x, y = self.pos
        k_obs = self.attempt / self.k_episodes if self.show_k_progress else 0.0
        return np.array(
            [x / self.size, y / self.size, float(reset_flag), k_obs],
            dtype=np.float32,
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.holes = random_lake(self.size, self.np_random)  # (N, N) bool, indexed [y, x]
        self.action_map = np.arange(5)
        if self.hard_mode:
            self.action_map[1:] = 1 + self.np_random.permutation(4)
        self.pos = np.zeros(2, dtype=np.int64)
        self.attempt = 0
        self.attempt_steps = 0
        return self._obs(True), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        move = int(self.action_map[int(action)])
        if move != 0 and self.np_random.random() < self.slip_chance:
            move = int(self.np_random.integers(1, 5))
        new = np.clip(self.pos + MOVES[move], 0, self.size - 1)
        self.attempt_steps += 1
        reward, attempt_over, success = 0.0, False, False
        if self.holes[new[1], new[0]]:
            if self.recover_mode:
                reward = -0.1  # stay on the ice next to the hole
            else:
                self.pos, attempt_over = new, True
        else:
            self.pos = new
            if tuple(new) == (self.size - 1, self.size - 1):
                reward, attempt_over, success = 1.0, True, True
        attempt_over = attempt_over or self.attempt_steps >= self.max_episode_steps
        info = {}
        if attempt_over:
            self.attempt += 1
            info[f"{LOG_METRIC_PREFIX}Episode {self.attempt} Success"] = float(success)
            self.pos = np.zeros(2, dtype=np.int64)
            self.attempt_steps = 0
        terminated = self.attempt >= self.k_episodes
        return self._obs(attempt_over), reward, terminated, False, info


def _location(spec: str | tuple[int, int], size: int, rng: np.random.Generator, taken: list) -> np.ndarray:
    if spec != "random":
        return np.asarray(spec, dtype=np.int64)
    while True:
        loc = rng.integers(0, size, size=2)
        if not any(np.array_equal(loc, t) for t in taken):
            return loc


@gin.configurable
class RoomKeyDoor(gym.Env):
    """Dark key-to-door: find a key (+1) then the door (+1) in an empty room, many times.

    The key, door (goal) and start locations are fixed for a meta-rollout of
    ``meta_rollout_horizon`` steps made of trials of at most ``max_episode_steps`` steps. A trial
    ends at the door or at its time limit; the agent then returns to the start without its key.
    The meta-rollout terminates at the horizon (time is in the observation, so this is a true
    terminal, not a truncation).

    Observation float32: dark ``[x / size, y / size, has_key, t / H]`` (4,); with ``dark=False`` the
    key and door positions are appended (8,). Actions: Discrete(5), no-op plus 4 moves; with
    ``randomize_actions`` the move directions are shuffled per meta-rollout. Locations are
    ``"random"`` (per meta-rollout) or an ``(x, y)`` tuple.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        dark: bool = True,
        size: int = 9,
        max_episode_steps: int = 50,
        meta_rollout_horizon: int = 500,
        start_location: str | tuple[int, int] = "random",
        key_location: str | tuple[int, int] = "random",
        goal_location: str | tuple[int, int] = "random",
        randomize_actions: bool = False,
    ):
        self.dark = dark
        self.size = size
        self.max_episode_steps = max_episode_steps
        self.horizon = meta_rollout_horizon
        self.locations = (start_location, key_location, goal_location)
        self.randomize_actions = randomize_actions
        self.action_space = spaces.Discrete(5)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(4 if dark else 8,), dtype=np.float32)

    @property
    def env_name(self) -> str:
        return f"{'Dark' if self.dark else 'Light'}KeyDoor-{self.size}x{self.size}"

    def _obs(self) -> np.ndarray:
        feats = [*(self.pos / self.size), float(self.has_key), self.t / self.horizon]
        if not self.dark:
            feats += [*(self.key / self.size), *(self.goal / self.size)]
        return np.asarray(feats, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        taken: list[np.ndarray] = []
        for name, spec in zip(("start", "key", "goal"), self.locations):
            loc = _location(spec, self.size, self.np_random, taken)
            taken.append(loc)
            setattr(self, name, loc)
        self.action_map = np.arange(5)
        if self.randomize_actions:
            self.action_map[1:] = 1 + self.np_random.permutation(4)
        self.t = 0
        self._new_trial()
        return self._obs(), {}

    def _new_trial(self) -> None:
        self.pos = self.start.copy()
        self.has_key = False
        self.trial_steps = 0

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        move = MOVES[int(self.action_map[int(action)])]
        self.pos = np.clip(self.pos + move, 0, self.size - 1)
        self.t += 1
        self.trial_steps += 1
        reward = 0.0
        if not self.has_key and np.array_equal(self.pos, self.key):
            self.has_key, reward = True, 1.0
        elif self.has_key and np.array_equal(self.pos, self.goal):
            reward = 1.0
            self._new_trial()
        if self.trial_steps >= self.max_episode_steps:
            self._new_trial()
        terminated = self.t >= self.horizon
        return self._obs(), reward, terminated, False, {}
