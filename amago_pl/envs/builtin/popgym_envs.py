"""POPGym memory tasks (needs the optional ``popgym`` package; importable without it).

Observations are flattened to a float32 vector (one-hot for discrete parts) and a timer feature
``t / 1000`` is appended, as in the original, so the policy can tell time without relying on
position embeddings.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl import compat
from amago_pl.envs.amago_env import AMAGOEnv
from amago_pl.envs.builtin._optional import require

TIMER_SCALE = 1000.0


def make_popgym(env_name: str) -> gym.Env:
    """A POPGym env by class name ("RepeatPreviousEasy") or gymnasium id ("popgym-RepeatPreviousEasy-v0")."""
    envs = require("popgym.envs", "POPGym envs")
    for cls, info in envs.ALL.items():
        if env_name in (cls.__name__, info.get("id")):
            return cls()
    names = sorted(cls.__name__ for cls in envs.ALL)
    raise ValueError(f"unknown POPGym env {env_name!r}; choose one of {names}")


@gin.configurable
class POPGym(gym.Wrapper):
    """A POPGym env with a flat float32 observation plus the timer feature.

    Needs the optional ``popgym`` package.

    Args:
        env_name: the POPGym env, by class name ("RepeatPreviousEasy") or gymnasium id
            ("popgym-RepeatPreviousEasy-v0").
        truncated_is_done: report truncation as termination (POPGym episodes have fixed lengths
            the agent can see via the timer, so the end is a true terminal).
    """

    def __init__(self, env_name: str, truncated_is_done: bool = True):
        super().__init__(make_popgym(env_name))
        self.popgym_name = env_name
        self.truncated_is_done = truncated_is_done
        self._inner_obs_space = self.env.observation_space
        flat = spaces.flatten_space(self._inner_obs_space)
        low = np.append(np.asarray(flat.low, dtype=np.float32), 0.0)
        high = np.append(np.asarray(flat.high, dtype=np.float32), np.inf)
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.t = 0

    @property
    def env_name(self) -> str:
        return f"POPGym{self.popgym_name}"

    def _obs(self, obs: Any) -> np.ndarray:
        flat = spaces.flatten(self._inner_obs_space, obs).astype(np.float32)
        return np.append(flat, np.float32(self.t / TIMER_SCALE)).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.t = 0
        return self._obs(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.truncated_is_done:
            terminated, truncated = terminated or truncated, False
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info


@gin.configurable
class POPGymAMAGO(AMAGOEnv):
    """``AMAGOEnv(POPGym(env_name))`` named ``POPGym<EnvName>``.

    Already an ``AMAGOEnv``, so it can be returned directly from ``make_train_env``;
    ``make_builtin_env("popgym:<EnvName>")`` builds it. Keywords as in :class:`POPGym`.
    """

    def __init__(self, env_name: str, truncated_is_done: bool = True):
        super().__init__(POPGym(env_name, truncated_is_done), env_name=f"POPGym{env_name}")


# The original defined the multi-domain env here (amago/envs/builtin/popgym_envs.py at 2d85600); it
# lives in popgym_multidomain.py (which imports this module) and the alias table serves the old path.
__getattr__ = compat.name_getattr(__name__)
