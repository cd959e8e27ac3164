"""Atari (ALE) and Retro games (needs ``ale-py`` >= 0.9, whose wheels ship the Atari ROMs, and
``opencv-python-headless``; Retro needs ``stable-retro``: ``pip install amago_pl[envs-extra]``).

The module imports without them; building an env raises an ImportError naming the package.

``AtariGame`` plays one game with the usual preprocessing (frame skip, sticky actions, resize to
``resolution``, optional grayscale with max-pooling over the last two frames); ``ALE`` draws a
game per episode; ``RetroArcade`` draws a (game, start state) per episode from stable-retro and
paints a console-coloured border so the agent can tell consoles (and so action layouts) apart.
The same envs as amago/envs/builtin/ale_retro.py at 2d85600.

Differences from the original: the grayscale frame skip uses gymnasium's
``MaxAndSkipObservation`` (the wrapper the original copied from stable-baselines3, part of
gymnasium since 1.0); images are transposed with numpy (no einops); games and start states are
drawn from the env's ``np_random``; Retro envs render to arrays (``render_mode="rgb_array"``),
since stable-retro otherwise opens a window; Retro game names may carry stable-retro 1.x's
"-v0" suffix.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import gin
import gymnasium as gym
import numpy as np

from amago_pl.envs.amago_env import AMAGOEnv
from amago_pl.envs.builtin._optional import require

EXTRA_HINT = "pip install amago_pl[envs-extra]"


def _require(module: str, feature: str, package: str) -> Any:
    try:
        return require(module, feature)
    except ImportError as e:
        raise ImportError(f"{feature} need the `{package}` package: `{EXTRA_HINT}`") from e


def _resize(frame: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """(H, W[, C]) uint8 -> (h, w[, C]) with area interpolation, like the original."""
    cv2 = _require("cv2", "Atari/Retro frame resizing", "opencv-python-headless")
    return cv2.resize(frame, (resolution[1], resolution[0]), interpolation=cv2.INTER_AREA)


class ALEAction:
    """Five buttons (up, down, left, right, fire) -> the index in ALE's full 18-action set."""

    str2action = {
        "": 0,
        "fire": 1,
        "up": 2,
        "right": 3,
        "left": 4,
        "down": 5,
        "upright": 6,
        "upleft": 7,
        "downright": 8,
        "downleft": 9,
        "upfire": 10,
        "rightfire": 11,
        "leftfire": 12,
        "downfire": 13,
        "uprightfire": 14,
        "upleftfire": 15,
        "downrightfire": 16,
        "downleftfire": 17,
    }

    def __init__(self, up: Any, down: Any, left: Any, right: Any, fire: Any):
        self.up, self.down, self.left, self.right, self.fire = (
            bool(b) for b in (up, down, left, right, fire)
        )

    def to_discrete(self) -> int:
        # Opposite directions pressed together cancel out.
        vertical = "" if self.up == self.down else ("up" if self.up else "down")
        horizontal = "" if self.left == self.right else ("left" if self.left else "right")
        return self.str2action[vertical + horizontal + ("fire" if self.fire else "")]


@gin.configurable
class AtariGame(gym.Env):
    """One Atari game.

    Args:
        game: ALE game name ("Pong", "Breakout", ...).
        resolution: (height, width) of the observation.
        grayscale: one grayscale channel instead of RGB.
        time_limit: episode limit in emulator frames (108,000 = 30 minutes).
        frame_skip: emulator frames per action.
        channels_last: (H, W, C) observations instead of (C, H, W).
        action_space: "discrete" (ALE's 18 actions), "multibinary" (5 buttons, see ``ALEAction``)
            or "continuous" (ale-py >= 0.10).
        sticky_action_prob: chance of repeating the previous action.
        terminal_on_life_loss: end the episode when a life is lost.
        version: ALE env version ("v5").
        continuous_action_threshold: ale-py's threshold for continuous actions.
        clip_rewards: clip rewards to [-1, 1].
    """

    def __init__(
        self,
        game: str,
        resolution: tuple[int, int] = (84, 84),
        grayscale: bool = False,
        time_limit: int = 108_000,
        frame_skip: int = 4,
        channels_last: bool = False,
        action_space: str = "discrete",
        sticky_action_prob: float = 0.25,
        terminal_on_life_loss: bool = False,
        version: str = "v5",
        continuous_action_threshold: float = 0.5,
        clip_rewards: bool = False,
    ):
        super().__init__()
        ale_py = _require("ale_py", "Atari games", "ale-py")
        gym.register_envs(ale_py)  # gymnasium 1.x only knows the ALE ids after this
        self.resolution = tuple(resolution)
        self.grayscale = grayscale
        self.time_limit = time_limit
        self.frame_skip = frame_skip
        self.channels_last = channels_last
        self.terminal_on_life_loss = terminal_on_life_loss
        self.clip_rewards = clip_rewards
        self.rom_name = game
        if action_space not in ("discrete", "multibinary", "continuous"):
            raise ValueError(f"Invalid action space: {action_space}")
        self.action_space_type = action_space
        # Grayscale frames skip with a max over the last two frames (the standard DQN recipe);
        # colour frames let ALE skip frames itself, as the original does.
        kwargs: dict[str, Any] = dict(
            frameskip=1 if grayscale else frame_skip,
            repeat_action_probability=sticky_action_prob,
            obs_type="grayscale" if grayscale else "rgb",
            full_action_space=True,
        )
        if action_space == "continuous":
            kwargs.update(continuous=True, continuous_action_threshold=continuous_action_threshold)
        self._env = gym.make(f"ALE/{game}-{version}", **kwargs)
        if grayscale:
            self._env = gym.wrappers.MaxAndSkipObservation(self._env, skip=frame_skip)
        channels = 1 if grayscale else 3
        shape = (*self.resolution, channels) if channels_last else (channels, *self.resolution)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        self.action_space = (
            gym.spaces.MultiBinary(5) if action_space == "multibinary" else self._env.action_space
        )

    def render(self) -> Any:
        return self._env.render()

    def screen(self, frame: np.ndarray) -> np.ndarray:
        obs = _resize(frame, self.resolution)
        if self.grayscale:
            obs = obs[..., None]
        return obs if self.channels_last else np.ascontiguousarray(obs.transpose(2, 0, 1))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._time = 0
        obs, info = self._env.reset(seed=seed)
        self.lives = info.get("lives", 0)
        return self.screen(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.action_space_type == "multibinary":
            action = ALEAction(*np.asarray(action).tolist()).to_discrete()
        obs, reward, terminated, truncated, info = self._env.step(action)
        self._time += self.frame_skip  # counts frames the way ALE's own frame counter does
        truncated = bool(truncated or self._time >= self.time_limit)
        if self.terminal_on_life_loss:
            terminated = terminated or info["lives"] < self.lives
        reward = float(reward)
        if self.clip_rewards:
            reward = max(min(reward, 1.0), -1.0)
        return self.screen(obs), reward, bool(terminated), truncated, info

    def close(self) -> None:
        self._env.close()


@gin.configurable
class ALE(gym.Env):
    """Multi-task Atari: a game drawn from ``game_names`` at every reset.

    Each game is an ``AtariGame`` with its default keywords (set them with gin).
    """

    def __init__(self, game_names: list[str]):
        super().__init__()
        self.games = list(game_names)
        self._env: AtariGame | None = None
        self.pick_new_game()
        self.observation_space = self._env.observation_space
        self.action_space = self._env.action_space

    def pick_new_game(self) -> str:
        game = self.games[int(self.np_random.integers(len(self.games)))]
        if self._env is not None:
            self._env.close()
        self._env = AtariGame(game)
        self.time_limit = self._env.time_limit
        self.rom_name = self._env.rom_name
        return game

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.rom_name = self.pick_new_game()
        return self._env.reset(seed=None if seed is None else int(self.np_random.integers(2**31)))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self._env.step(action)


class AtariAMAGOWrapper(AMAGOEnv):
    """``AMAGOEnv`` of an ``AtariGame`` or ``ALE`` env, named after the current game."""

    def __init__(self, env: AtariGame | ALE):
        if not isinstance(env, AtariGame | ALE):
            raise TypeError(f"AtariAMAGOWrapper wraps an AtariGame or ALE env, got {type(env).__name__}")
        # The env_name property below reports the current game; this is only the base class's default.
        super().__init__(env, env_name="Atari")

    @property
    def env_name(self) -> str:
        return self.env.rom_name


def _console(game: str) -> str:
    """ "Airstriker-Genesis-v0" or "Airstriker-Genesis" -> "Genesis"."""
    return re.sub(r"-v\d+$", "", game).split("-")[-1]


@gin.configurable
class RetroArcade(gym.Env):
    """Multi-task stable-retro: a (game, start state) drawn at every reset.

    Args:
        game_start_dict: game -> list of start states, e.g. ``{"Airstriker-Genesis-v0":
            ["Level1"]}`` (the options depend on the ROMs stable-retro can find).
        resolution: (height, width) of the observation.
        time_limit_minutes: episode limit in minutes of game time (60 frames per second).
        frame_skip: emulator frames per action.
        channels_last: (H, W, C) observations instead of (C, H, W).
        use_discrete_actions: stable-retro's discrete action set (only works when every game
            uses the same console); by default a MultiBinary(12) button vector, cut to the
            current console's button count.

    stable-retro allows one emulator per process: use ``env_mode="async"`` for parallel actors.
    """

    console_cabinets = {
        "Snes": [18, 196, 65],
        "Nes": [191, 40, 17],
        "PCEngine": [232, 211, 19],
        "GameGear": [25, 230, 199],
        "Genesis": [8, 8, 201],
        "GbColor": [124, 49, 189],
        "GbAdvance": [182, 49, 189],
        "GameBoy": [59, 58, 58],
        "Gb": [59, 58, 58],
        "Sms": [255, 255, 255],
        "Atari2600": [219, 157, 147],
    }
    discrete_action_n = {
        "Nes": 36,
        "Snes": 468,
        "GameBoy": 72,
        "Genesis": 126,
        "Sms": 36,
        "Atari2600": 18,
        "Gb": 72,
    }

    def __init__(
        self,
        game_start_dict: dict[str, list[str]],
        resolution: tuple[int, int] = (84, 84),
        time_limit_minutes: int = 20,
        frame_skip: int = 8,
        channels_last: bool = False,
        use_discrete_actions: bool = False,
    ):
        super().__init__()
        try:
            self._retro = require("stable_retro", "Retro games")
        except ImportError:  # stable-retro < 1.0 only has the old module name
            self._retro = _require("retro", "Retro games", "stable-retro")
        self.game_start_dict = game_start_dict
        self.game_start_flat = [(g, s) for g, states in game_start_dict.items() for s in states]
        self.resolution = tuple(resolution)
        self.time_limit = math.ceil(time_limit_minutes * 60.0 * 60 / frame_skip)
        self.frame_skip = frame_skip
        self.channels_last = channels_last
        self.use_discrete_actions = use_discrete_actions
        self._env: gym.Env | None = None
        shape = (*self.resolution, 3) if channels_last else (3, *self.resolution)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        if use_discrete_actions:
            warnings.warn(
                "MultiBinary actions recommended: discrete action sets differ between consoles",
                UserWarning,
                stacklevel=2,
            )
            self.action_space = gym.spaces.Discrete(
                self.discrete_action_n[_console(self.game_start_flat[0][0])]
            )
        else:
            self.action_space = gym.spaces.MultiBinary(12)
        self.reset()

    def render(self) -> Any:
        return self._env.render()

    def screen(self, frame: np.ndarray) -> np.ndarray:
        obs = _resize(frame, self.resolution) * self._cabinet_mask + self._cabinet  # (h, w, 3) uint8
        return obs if self.channels_last else np.ascontiguousarray(obs.transpose(2, 0, 1))

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        game, start = self.game_start_flat[int(self.np_random.integers(len(self.game_start_flat)))]
        self.rom_name = f"{game}_{start.replace('.state', '')}"
        self.close()  # one emulator per process
        actions = self._retro.Actions.DISCRETE if self.use_discrete_actions else self._retro.Actions.FILTERED
        self._env = self._retro.make(
            game=game, state=start, use_restricted_actions=actions, render_mode="rgb_array"
        )
        self._console = self._env.system
        self._time = 0
        obs, info = self._env.reset(seed=None if seed is None else int(self.np_random.integers(2**31)))
        mask = np.zeros((*self.resolution, 3), dtype=np.uint8)
        mask[2:-2, 2:-2, :] = 1
        self._cabinet_mask = mask
        self._cabinet = (1 - mask) * np.array(self.console_cabinets[self._console], dtype=np.uint8)
        return self.screen(obs), {**info, "game": game}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.use_discrete_actions:
            action = np.asarray(action)[: self._env.action_space.shape[0]]  # this console's buttons
        reward = 0.0
        terminated = truncated = False
        for _ in range(self.frame_skip):
            obs, r, terminated, truncated, info = self._env.step(action)
            reward += float(r)
            if terminated or truncated:
                break
        self._time += 1
        truncated = self._time >= self.time_limit
        return self.screen(obs), reward, bool(terminated), bool(truncated), info


class RetroAMAGOWrapper(AMAGOEnv):
    """``AMAGOEnv`` of a ``RetroArcade``, named after the current game and start state."""

    def __init__(self, env: RetroArcade):
        # The env_name property below reports the current game; this is only the base class's default.
        super().__init__(env, env_name="RetroArcade")

    @property
    def env_name(self) -> str:
        return self.env.rom_name
