"""Multi-domain, k-shot POPGym (needs ``popgym``: ``pip install amago_pl[envs]``).

Every env episode plays one of 27 POPGym games, drawn at random, whose observations and actions
are padded to shared sizes. The agent first plays ``warmup_episodes`` episodes whose rewards are
hidden from the return but shown in the observation, then one episode that counts (an E-RL^2
style identification problem, from the AMAGO-2 paper; amago/envs/builtin/popgym_envs.py at
2d85600 defines the original next to ``POPGymAMAGO``).

Observation (30,) float32: the game's flattened observation (one-hot for discrete parts, as in
``POPGym``) zero-padded to 26, then ``t / 1000``, the fraction of warmup episodes played, whether
the last action was valid for this game, and the last raw reward. Actions: Discrete(26); an
index the current game does not have is replaced by a random valid one (and flagged invalid).

Differences from the original: observations are flattened with gymnasium's ``flatten`` (the
encoding ``POPGym`` here uses) instead of POPGym's ``Flatten`` wrapper plus a padded one-hot, so
the first 26 entries are laid out differently; games and replacement actions come from the env's
``np_random``. popgym 1.0.7's CountRecall games have 27 actions; like the original's
Discrete(26) space, their last one cannot be chosen.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl.envs.amago_env import AMAGOEnv
from amago_pl.envs.builtin.popgym_envs import TIMER_SCALE, make_popgym

OBS_PAD = 26  # the largest flattened observation among the games (CountRecallHard)
N_ACTIONS = 26


class _PaddedGame:
    """One POPGym game with a flat float32 observation and a flat Discrete action index."""

    def __init__(self, env: gym.Env):
        self.env = env
        self.obs_space = env.observation_space
        act = env.action_space
        if isinstance(act, spaces.Discrete):
            self.n_actions, self._nvec = int(act.n), None
        elif isinstance(act, spaces.MultiDiscrete):
            self._nvec = np.asarray(act.nvec).ravel()
            self.n_actions = int(np.prod(self._nvec))
        else:
            raise TypeError(f"MultiDomainPOPGym needs discrete actions, got {act}")
        if spaces.flatdim(self.obs_space) > OBS_PAD:
            raise ValueError(f"{type(env).__name__} observations do not fit in {OBS_PAD} entries")

    def flat_obs(self, obs: Any) -> np.ndarray:
        return spaces.flatten(self.obs_space, obs).astype(np.float32)

    def env_action(self, index: int) -> Any:
        if self._nvec is None:
            return index
        return np.array(np.unravel_index(index, self._nvec), dtype=np.int64)  # one entry per sub-action


@gin.configurable
class MultiDomainPOPGym(gym.Env):
    """27 POPGym games in one env, each played ``warmup_episodes`` + 1 times per env episode.

    Args:
        warmup_episodes: episodes played (rewards hidden from the return, shown in the
            observation) before the one that counts.

    ``current_env_name`` is the current game's POPGym id segment ("RepeatFirstEasy", ...).
    """

    # POPGym id segments (the part between "popgym-" and "-v0"); note the lower-case "p" POPGym
    # uses in the VelocityOnlyCartpole ids.
    mt_names = [
        "AutoencodeEasy",
        "AutoencodeMedium",
        "AutoencodeHard",
        "RepeatPreviousEasy",
        "RepeatPreviousMedium",
        "RepeatPreviousHard",
        "RepeatFirstEasy",
        "RepeatFirstMedium",
        "RepeatFirstHard",
        "CountRecallEasy",
        "CountRecallMedium",
        "CountRecallHard",
        "PositionOnlyCartPoleEasy",
        "PositionOnlyCartPoleMedium",
        "PositionOnlyCartPoleHard",
        "VelocityOnlyCartpoleEasy",
        "VelocityOnlyCartpoleMedium",
        "VelocityOnlyCartpoleHard",
        "NoisyPositionOnlyCartPoleEasy",
        "NoisyPositionOnlyCartPoleMedium",
        "NoisyPositionOnlyCartPoleHard",
        "MultiarmedBanditEasy",
        "MultiarmedBanditMedium",
        "HigherLowerEasy",
        "HigherLowerMedium",
        "HigherLowerHard",
        "MineSweeperEasy",
    ]

    def __init__(self, warmup_episodes: int = 1):
        self.warmup_episodes = warmup_episodes
        self.name_to_env = {name: _PaddedGame(make_popgym(f"popgym-{name}-v0")) for name in self.mt_names}
        self.observation_space = spaces.Box(low=-5.0, high=5.0, shape=(OBS_PAD + 4,), dtype=np.float32)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.reset()

    def make_obs(self, raw_obs: Any, valid_action: bool, reward: float) -> np.ndarray:
        obs = np.zeros(OBS_PAD + 4, dtype=np.float32)  # (30,)
        flat = self.current_env.flat_obs(raw_obs)
        obs[: flat.shape[0]] = flat
        obs[-4] = self.timer / TIMER_SCALE
        obs[-3] = self.current_episode / self.warmup_episodes
        obs[-2] = float(valid_action)
        obs[-1] = reward
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.current_env_name = self.mt_names[int(self.np_random.integers(len(self.mt_names)))]
        self.current_env = self.name_to_env[self.current_env_name]
        self.current_action_size = self.current_env.n_actions
        self.timer = 0
        self.current_episode = 0
        self.reset_next_step = False
        inner_seed = None if seed is None else int(self.np_random.integers(2**31))
        raw_obs, info = self.current_env.env.reset(seed=inner_seed)
        return self.make_obs(raw_obs, valid_action=True, reward=0.0), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.timer += 1
        action = int(action)
        valid_action = action < self.current_action_size
        if not valid_action:
            action = int(self.np_random.integers(self.current_action_size))
        if self.reset_next_step:
            # The step after an episode ends starts the next one; the action is not used.
            raw_obs, info = self.current_env.env.reset()
            self.reset_next_step = False
            self.current_episode += 1
            reward = 0.0
        else:
            raw_obs, reward, terminated, truncated, info = self.current_env.env.step(
                self.current_env.env_action(action)
            )
            reward = float(reward)
            self.reset_next_step = bool(terminated or truncated)
        obs = self.make_obs(raw_obs, valid_action=valid_action, reward=reward)
        done = self.current_episode > self.warmup_episodes
        shown_reward = 0.0 if self.current_episode < self.warmup_episodes else reward
        return obs, shown_reward, done, False, info


@gin.configurable
class MultiDomainPOPGymAMAGO(AMAGOEnv):
    """``AMAGOEnv`` of a :class:`MultiDomainPOPGym`, named ``MultiDomainPOPGym-<game>`` so metrics
    are logged per game."""

    def __init__(self, warmup_episodes: int = 1):
        super().__init__(MultiDomainPOPGym(warmup_episodes))

    @property
    def env_name(self) -> str:
        return f"MultiDomainPOPGym-{self.env.current_env_name}"
