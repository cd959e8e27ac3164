"""MiniGrid/BabyAI adapter (needs the optional ``minigrid`` package; importable without it).

The partial egocentric view becomes a dict observation ``{"image": (7, 7, 3) uint8, "direction":
(4,) one-hot float32}``; the mission string is dropped (use a fixed-mission env id).
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl.envs.amago_env import AMAGOEnv
from amago_pl.envs.builtin._optional import require


class MiniGridObs(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """MiniGrid's ``{image, direction, mission}`` -> ``{image, direction one-hot}``."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        image = env.observation_space["image"]
        self.observation_space = spaces.Dict(
            {"image": image, "direction": spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)}
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        direction = np.zeros(4, dtype=np.float32)
        direction[int(observation["direction"])] = 1.0
        return {"image": observation["image"], "direction": direction}


@gin.configurable
def MiniGridAMAGO(env_id: str = "MiniGrid-Empty-5x5-v0", max_episode_steps: int | None = None) -> AMAGOEnv:
    """``AMAGOEnv`` around ``gymnasium.make(env_id)`` of a registered MiniGrid env.

    A function rather than an ``AMAGOEnv`` subclass so gymnasium can rebuild the wrapper stack
    from the env spec (``check_env`` does). The observation is a dict with the partial view
    ``image`` and a one-hot ``direction`` (the mission string is dropped). Needs the optional
    ``minigrid`` package. ``make_builtin_env("minigrid:<env id>")`` calls it.

    Args:
        env_id: a registered MiniGrid/BabyAI gymnasium id; use one with a fixed mission.
        max_episode_steps: time limit passed to ``gymnasium.make``; None keeps the env's own.

    Returns:
        The wrapped env, named after ``env_id``.
    """
    require("minigrid", "MiniGrid envs")  # importing registers the MiniGrid ids with gymnasium
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return AMAGOEnv(MiniGridObs(gym.make(env_id, **kwargs)), env_name=env_id)
