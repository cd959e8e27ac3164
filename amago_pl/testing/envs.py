"""A scripted env with exactly predictable episodes, for tests of anything that steps envs.

``ScriptedEnv`` observations ``[episode, t, noise]`` identify the episode and step, rewards
``100 * episode + t`` identify the transition, and ``noise`` comes from the env's seeded RNG so
seeding can be checked. Episode lengths cycle through ``episode_lengths``; episodes end by
termination, truncation or alternately. It can also raise or emit NaN on purpose.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ScriptedFailure(RuntimeError):
    """Raised by ``ScriptedEnv`` when asked to fail."""


class ScriptedEnv(gym.Env):
    """See the module doc.

    Args:
        episode_lengths: lengths of consecutive episodes (cycled).
        end: "terminated", "truncated" or "alternate" (even episodes terminate, odd truncate).
        num_actions: size of the Discrete action space (ignored when ``box_actions``).
        box_actions: use ``Box(-2, 3, (2,))`` actions instead.
        fail_at_step: raise ``ScriptedFailure`` at this lifetime step of the instance (1-based).
        fail_once_marker: with ``fail_at_step``, fail only while this file does not exist (it is
            created on failure), so a rebuilt env works; lets a test fail exactly once across processes.
        nan_at_step: return a NaN observation at this lifetime step.
        name_by_episode: ``env_name`` alternates "scripted-even"/"scripted-odd" by episode.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        episode_lengths: tuple[int, ...] = (3,),
        end: str = "terminated",
        num_actions: int = 3,
        box_actions: bool = False,
        fail_at_step: int | None = None,
        fail_once_marker: str | None = None,
        nan_at_step: int | None = None,
        name_by_episode: bool = False,
    ):
        if end not in ("terminated", "truncated", "alternate"):
            raise ValueError(f"unknown end {end!r}")
        self.episode_lengths = tuple(episode_lengths)
        self.end = end
        self.fail_at_step = fail_at_step
        self.fail_once_marker = fail_once_marker
        self.nan_at_step = nan_at_step
        self.name_by_episode = name_by_episode
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        if box_actions:
            self.action_space: spaces.Space = spaces.Box(-2.0, 3.0, shape=(2,), dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(num_actions)
        self.episode = -1
        self.t = 0
        self.lifetime_steps = 0
        self.last_action = None

    @property
    def env_name(self) -> str:
        if not self.name_by_episode:
            return "scripted"
        return "scripted-even" if self.episode % 2 == 0 else "scripted-odd"

    def _obs(self) -> np.ndarray:
        return np.array([self.episode, self.t, self.np_random.random()], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        # A seeded reset restarts the script, so equal seeds give equal episodes (check_env).
        self.episode = 0 if seed is not None else self.episode + 1
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.lifetime_steps += 1
        self.last_action = action
        if self.fail_at_step is not None and self.lifetime_steps == self.fail_at_step:
            if self.fail_once_marker is None or not os.path.exists(self.fail_once_marker):
                if self.fail_once_marker is not None:
                    open(self.fail_once_marker, "w").close()
                raise ScriptedFailure(f"scripted failure at step {self.lifetime_steps}")
        self.t += 1
        obs = self._obs()
        if self.nan_at_step is not None and self.lifetime_steps == self.nan_at_step:
            obs[0] = np.nan
        reward = float(100 * self.episode + self.t)
        over = self.t >= self.episode_lengths[self.episode % len(self.episode_lengths)]
        truncate = self.end == "truncated" or (self.end == "alternate" and self.episode % 2 == 1)
        info = {"episode": self.episode, "t": self.t}
        return obs, reward, over and not truncate, over and truncate, info
