"""The T-Maze example's exploration schedule as a library class (``switch_exploration(config, "tmaze")``).

Its own module, imported only when asked for (``get_exploration_cls("tmaze")``, this import, or
``amago_pl.envs.builtin.tmaze.TMazeExploration``), so that it is not a gin configurable named
``TMazeExploration`` in runs that do not use it: a ported T-Maze script defines its own class of
that name (the original's examples/04_tmaze.py) and binds ``TMazeExploration.horizon``.
"""

from __future__ import annotations

import gin
import numpy as np
from gymnasium import spaces

from amago_pl.envs.exploration import EpsilonGreedy, register_exploration


@register_exploration("tmaze")
@gin.configurable
class TMazeExploration(EpsilonGreedy):
    """Epsilon-greedy that explores little in the corridor and fully near the start and junction.

    A T-Maze episode needs ``corridor_length`` forward moves between the step that reveals the
    goal and the step that uses it, so ordinary epsilon-greedy almost never reaches the junction
    early in training, and once epsilon has annealed it almost never tries the other side there.
    This schedule (the original's examples/04_tmaze.py:50-59 at 2d85600) uses ``0.5 / horizon``
    for time indices strictly between ``start_window`` and ``horizon - end_window`` and the
    annealed :class:`EpsilonGreedy` epsilon elsewhere, so both goal sides keep being tried at the
    junction. The memory question stays the same.

    Args:
        horizon: the corridor length (time indices are counted from the env's reset).
            ``gin.REQUIRED`` (``TMazeExploration.horizon = 10``).
        end_window: the last ``end_window`` time indices before ``horizon`` (and every later
            one) use the annealed epsilon.
    """

    def __init__(
        self,
        action_space: spaces.Space,
        num_envs: int,
        horizon: int = gin.REQUIRED,
        start_window: int = 0,
        end_window: int = 3,
        eps_start: float = 1.0,
        eps_end: float = 0.01,
        steps_anneal: int = 100_000,
        randomize_eps: bool = True,
    ):
        if horizon is gin.REQUIRED or horizon is None:
            raise ValueError(
                "TMazeExploration needs the corridor length: bind `TMazeExploration.horizon = <int>` "
                "(or pass horizon=...)"
            )
        super().__init__(action_space, num_envs, eps_start, eps_end, steps_anneal, randomize_eps)
        self.horizon = int(horizon)
        self.start_window = int(start_window)
        self.end_window = int(end_window)

    def epsilon(self, time_idxs: np.ndarray) -> np.ndarray:
        eps = super().epsilon(time_idxs)  # (N,)
        t = np.asarray(time_idxs).reshape(-1)
        in_corridor = (t > self.start_window) & (t < self.horizon - self.end_window)
        return np.where(in_corridor, 0.5 / self.horizon, eps)
