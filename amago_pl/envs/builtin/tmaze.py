"""T-Maze memory tasks (gymnasium + numpy only; no plotting at import).

The agent walks down a corridor to a junction and must turn towards the goal side, which is shown
only at the start (passive) or at an oracle cell behind the start (active). Every corridor cell
looks the same, so the answer has to be remembered for the whole corridor.

Observation (3,) float32: ``[goal_signal, at_junction, at_oracle]``. ``goal_signal`` is +1 (goal
up) or -1 (goal down) while the agent stands on the oracle cell, else 0; ``at_junction`` is 1 at
the end of the corridor; ``at_oracle`` is 1 on the oracle cell.

Actions Discrete(4): 0 right (forward), 1 up, 2 left, 3 down. Up/down at the junction ends the
episode with ``goal_reward`` if it matches the goal side (0 otherwise); elsewhere up/down do not
move. Reward arrives only at the final step, plus ``penalty`` (a negative number by convention)
for every step that does not move forward after leaving the oracle, and an optional random
``distract_reward`` (0 or the value, with equal odds) on corridor steps to test that memory is not
swamped by irrelevant rewards. The episode terminates (never truncates; time is the task) after
``corridor_length + 1`` steps (passive) or ``corridor_length + 3`` steps (active).
"""

from __future__ import annotations

import gin
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl import compat

RIGHT, UP, LEFT, DOWN = 0, 1, 2, 3


class TMaze(gym.Env):
    """Shared T-Maze logic; ``active`` selects where the goal side is revealed (see module doc).

    Args:
        corridor_length: corridor cells between the start and the junction; at least 1.
        penalty: added to the reward of every step that does not move forward once the goal
            side has been shown (use a negative value).
        distract_reward: on corridor steps after the goal side has been shown, this reward is
            added with probability 1/2; 0 disables it.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        corridor_length: int = 10,
        goal_reward: float = 1.0,
        penalty: float = 0.0,
        distract_reward: float = 0.0,
        active: bool = False,
    ):
        if corridor_length < 1:
            raise ValueError(f"corridor_length must be >= 1, got {corridor_length}")
        self.corridor_length = corridor_length
        self.goal_reward = goal_reward
        self.penalty = penalty
        self.distract_reward = distract_reward
        self.active = active
        # Passive: oracle = start = 0, junction = L. Active: oracle = 0, start = 1, junction = L + 1.
        self.start_x = 1 if active else 0
        self.junction_x = corridor_length + self.start_x
        self.horizon = corridor_length + (3 if active else 1)
        self.action_space = spaces.Discrete(4)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    @property
    def env_name(self) -> str:
        return f"TMaze{'Active' if self.active else 'Passive'}-{self.corridor_length}"

    def _obs(self) -> np.ndarray:
        at_oracle = self.x == 0
        signal = float(self.goal_up * 2 - 1) if at_oracle else 0.0
        return np.array([signal, float(self.x == self.junction_x), float(at_oracle)], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.goal_up = int(self.np_random.integers(0, 2))
        self.x = self.start_x
        self.t = 0
        self.seen_oracle = not self.active
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = int(action)
        self.t += 1
        reward, done = 0.0, False
        old_x = self.x
        if action in (UP, DOWN) and self.x == self.junction_x:
            chose_up = action == UP
            reward += self.goal_reward if chose_up == bool(self.goal_up) else 0.0
            done = True
        elif action == RIGHT:
            self.x = min(self.x + 1, self.junction_x)
        elif action == LEFT:
            self.x = max(self.x - 1, 0)
        if self.x == 0:
            self.seen_oracle = True
        if not done and self.seen_oracle:
            if self.x <= old_x:
                reward += self.penalty  # dawdling after the goal side was shown
            if self.distract_reward and 0 < self.x < self.junction_x:
                reward += self.distract_reward * float(self.np_random.integers(0, 2))
        terminated = done or self.t >= self.horizon
        return self._obs(), reward, terminated, False, {}


@gin.configurable
class TMazeAltPassive(TMaze):
    """Passive T-Maze: the goal side is shown at t = 0; episode length ``corridor_length + 1``.

    Keywords as in :class:`TMaze`.
    """

    def __init__(
        self,
        corridor_length: int = 10,
        goal_reward: float = 1.0,
        penalty: float = 0.0,
        distract_reward: float = 0.0,
    ):
        super().__init__(corridor_length, goal_reward, penalty, distract_reward, active=False)


@gin.configurable
class TMazeAltActive(TMaze):
    """Active T-Maze: the agent starts one cell right of the oracle and must step back to see the
    goal side; episode length ``corridor_length + 3``.

    Keywords as in :class:`TMaze`.
    """

    def __init__(
        self,
        corridor_length: int = 10,
        goal_reward: float = 1.0,
        penalty: float = 0.0,
        distract_reward: float = 0.0,
    ):
        super().__init__(corridor_length, goal_reward, penalty, distract_reward, active=True)


# The original's base class name (TMazeAlt) and the T-Maze example's exploration (its own module,
# envs/builtin/tmaze_exploration.py) are served through amago_pl/compat.py.
__getattr__ = compat.name_getattr(__name__)
