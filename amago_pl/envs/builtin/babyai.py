"""Multi-task, k-attempt BabyAI (needs ``minigrid``, plus ``opencv-python-headless`` for the
"full-image" observation: ``pip install amago_pl[envs-extra]``).

The module imports without them; building an env raises an ImportError naming the package.

Every env episode draws a BabyAI task and a procedurally generated layout (a seed from
``seed_range``) and gives the agent ``k_episodes`` attempts at that same (task, layout) pair,
without saying which task it is beyond the mission text (the AMAGO-2 paper's setup; amago/envs/
builtin/babyai.py at 2d85600). Observations are a dict: ``image`` (grid codes or RGB pixels),
``mission`` (9 word tokens: 0 blank, 1 unknown word, 2 + index in ``WORDS``) and ``extra`` (the
agent's direction one-hot then the fraction of attempts started).

Differences from the original: the task and layout seed come from the env's ``np_random``
(seeded through ``reset(seed=...)``) instead of Python's global ``random``; success flags are
logged as floats; missions longer than 9 words are cut to 9 words instead of raising.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium as gym
import numpy as np

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX, AMAGOEnv
from amago_pl.envs.builtin._optional import require

EXTRA_HINT = "pip install amago_pl[envs-extra]"
OBSERVATION_TYPES = ("partial-grid", "full-grid", "partial-image", "full-image")
MISSION_LEN = 9
FULL_GRID = 22  # full-grid observations are zero-padded to (22, 22, 3)
IMAGE_SIZE = 63  # RGB observations are (63, 63, 3)

# Tasks left out of ALL_BABYAI_TASKS, as in the original: long instruction sequences, missions
# longer than 9 words, or layouts bigger than the padded full grid.
BANNED_BABYAI_TASKS = [
    "GoToSeq",
    "OpenRedBlueDoorsDebug",
    "OpenTwoDoors",
    "OpenDoorsOrderN4Debug",
    "OpenDoorsOrder",
    "PutNextLocal",
    "PutNext",
    "MiniBossLevel",
    "BossLevel",
    "BossLevelNoUnlock",
    "SynthSeq",
    "SynthLoc",
    "Synth",
    "MoveTwoAcross",
]


def _minigrid() -> Any:
    try:
        return require("minigrid", "BabyAI")  # importing it registers the BabyAI ids
    except ImportError as e:
        raise ImportError(f"BabyAI needs the `minigrid` package: `{EXTRA_HINT}`") from e


def all_babyai_tasks() -> list[str]:
    """Every registered ``BabyAI-*`` id whose name contains no banned task name."""
    _minigrid()
    return [
        name
        for name in gym.envs.registry
        if name.startswith("BabyAI-") and not any(banned in name for banned in BANNED_BABYAI_TASKS)
    ]


def __getattr__(name: str) -> Any:
    # ALL_BABYAI_TASKS is computed on first use so importing this module does not need minigrid.
    if name == "ALL_BABYAI_TASKS":
        return all_babyai_tasks()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@gin.configurable
class MultitaskMetaBabyAI(gym.Env):
    """BabyAI tasks sampled per env episode, each attempted ``k_episodes`` times.

    BabyAI: https://arxiv.org/abs/1810.08272

    Args:
        task_names: BabyAI ids to sample from ("BabyAI-GoToRedBall-v0"; the prefix is optional).
        k_episodes: attempts at each (task, layout) pair.
        seed_range: inclusive range of BabyAI layout seeds (use disjoint ranges for train/test).
        observation_type: "partial-grid" (7x7x3 codes of the agent's view), "full-grid" (the whole
            map's codes, padded to 22x22x3), "partial-image" (63x63 RGB of the view) or
            "full-image" (RGB of the whole map resized to 63x63).

    The info of the step that ends attempt i (1-based) holds ``AMAGO_LOG_METRICEpisode {i}
    Success``. Between attempts the env spends one step resetting the layout (reward 0).
    """

    WORDS = [
        "a",
        "ball",
        "behind",
        "blue",
        "box",
        "door",
        "door,",
        "front",
        "go",
        "green",
        "grey",
        "in",
        "key",
        "left",
        "object",
        "of",
        "on",
        "open",
        "pick",
        "purple",
        "red",
        "right",
        "the",
        "then",
        "to",
        "up",
        "yellow",
        "you",
        "your",
    ]

    def __init__(
        self,
        task_names: list[str],
        k_episodes: int = 2,
        seed_range: tuple[int, int] = (0, 1_000_000),
        observation_type: str = "partial-grid",
    ):
        if observation_type not in OBSERVATION_TYPES:
            raise ValueError(
                f"Observation type {observation_type!r} not supported; choose one of {OBSERVATION_TYPES}"
            )
        self._minigrid = _minigrid()
        self.task_names = [t.replace("BabyAI-", "") for t in task_names]
        self.k_episodes = k_episodes
        self.seed_range = tuple(seed_range)
        self.observation_type = observation_type
        side = {"partial-grid": 7, "full-grid": FULL_GRID}.get(observation_type, IMAGE_SIZE)
        self.action_space = gym.spaces.Discrete(7)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, shape=(side, side, 3), dtype=np.uint8),
                "mission": gym.spaces.Box(0, len(self.WORDS) + 2, shape=(MISSION_LEN,), dtype=np.int32),
                "extra": gym.spaces.Box(0.0, 1.0, shape=(5,), dtype=np.float32),
            }
        )
        self.env: gym.Env | None = None
        self.reset()

    def sample_new_env(self, env_name: str) -> gym.Env:
        """A fresh BabyAI env for ``env_name`` fixed to one layout seed drawn from ``seed_range``."""
        wrappers = self._minigrid.wrappers
        env = gym.make(f"BabyAI-{env_name}")
        if self.observation_type == "full-grid":
            env = wrappers.FullyObsWrapper(env)
        elif self.observation_type == "partial-image":
            # 9-pixel tiles make the 7x7 view 63x63, the size the full image is resized to.
            env = wrappers.RGBImgPartialObsWrapper(env, tile_size=9)
        elif self.observation_type == "full-image":
            require("cv2", "BabyAI full-image observations")
            env = wrappers.RGBImgObsWrapper(env)
        low, high = self.seed_range
        layout_seed = int(self.np_random.integers(low, high + 1))
        # ReseedWrapper resets to the same layout every attempt.
        return wrappers.ReseedWrapper(env, seeds=(layout_seed,))

    def _image(self, raw: np.ndarray) -> np.ndarray:
        if self.observation_type == "full-grid":
            if raw.shape[0] > FULL_GRID or raw.shape[1] > FULL_GRID:
                raise ValueError(
                    f"BabyAI map {raw.shape[:2]} is larger than the {FULL_GRID}x{FULL_GRID} full grid"
                )
            img = np.zeros((FULL_GRID, FULL_GRID, 3), dtype=np.uint8)
            img[: raw.shape[0], : raw.shape[1]] = raw
            return img
        if self.observation_type == "full-image":
            import cv2

            return cv2.resize(raw, (IMAGE_SIZE, IMAGE_SIZE))
        return np.asarray(raw, dtype=np.uint8)

    def _mission(self, text: str) -> np.ndarray:
        ids = np.zeros(MISSION_LEN, dtype=np.int32)  # (9,)
        for i, word in enumerate(text.split()[:MISSION_LEN]):
            ids[i] = self.WORDS.index(word) + 2 if word in self.WORDS else 1
        return ids

    def create_observation(self, raw_obs: dict[str, Any]) -> dict[str, np.ndarray]:
        extra = np.zeros(5, dtype=np.float32)
        extra[int(raw_obs["direction"])] = 1.0
        extra[-1] = self.current_episode / self.k_episodes
        return {
            "image": self._image(raw_obs["image"]),
            "mission": self._mission(raw_obs["mission"]),
            "extra": extra,
        }

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict]:
        super().reset(seed=seed)
        self.current_episode = 1
        self._reset_next_step = False
        self.current_task = self.task_names[int(self.np_random.integers(len(self.task_names)))]
        if self.env is not None:
            self.env.close()
        self.env = self.sample_new_env(self.current_task)
        obs, info = self.env.reset()
        return self.create_observation(obs), info

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        if self._reset_next_step:
            self._reset_next_step = False
            obs, info = self.env.reset()
            return self.create_observation(obs), 0.0, False, False, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = False
        if terminated or truncated:
            info[f"{LOG_METRIC_PREFIX}Episode {self.current_episode} Success"] = float(reward > 0.0)
            self.current_episode += 1
            if self.current_episode > self.k_episodes:
                done = True
            else:
                self._reset_next_step = True
        return self.create_observation(obs), float(reward), done, False, info


class BabyAIAMAGOEnv(AMAGOEnv):
    """``AMAGOEnv`` of a :class:`MultitaskMetaBabyAI`, named after the current task (so metrics
    are logged per task). The original defines it in its BabyAI example script."""

    def __init__(self, env: gym.Env):
        if not isinstance(env, MultitaskMetaBabyAI):
            raise TypeError(f"BabyAIAMAGOEnv wraps a MultitaskMetaBabyAI, got {type(env).__name__}")
        super().__init__(env)

    @property
    def env_name(self) -> str:
        return self.env.current_task
