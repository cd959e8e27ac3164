"""k-attempt Meta-World ML1/ML10/ML45 (needs ``metaworld`` >= 3: ``pip install amago_pl[envs-extra]``).

The module imports without metaworld; building a benchmark raises an ImportError naming it.

Each env episode samples one task (an env class and one of its goal variations) and gives the
agent ``k_episodes`` attempts at it. The observation is Meta-World's (39,) vector plus a flag that
is 1 on the first step of each attempt; attempt successes and their total are logged (amago/envs/
builtin/metaworld_ml.py at 2d85600 describes the same task).

Differences from the original, both forced by Meta-World 3 (the original pins a 2023 commit of
the gym-based 2.x line): Meta-World 3 only ships the "-v3" tasks, so a "-v2" name (the
original's default "reach-v2") is mapped to its "-v3" successor with a warning; and its envs are
gymnasium envs, so no gym -> gymnasium space conversion is needed. Tasks are drawn from the
env's ``np_random`` (seeded through ``reset(seed=...)``) instead of Python's global ``random``.
"""

from __future__ import annotations

import warnings
from typing import Any

import gin
import gymnasium as gym
import numpy as np

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX, AMAGOEnv
from amago_pl.envs.builtin._optional import require

EXTRA_HINT = "pip install amago_pl[envs-extra]"


def _metaworld() -> Any:
    try:
        return require("metaworld", "Meta-World")
    except ImportError as e:
        raise ImportError(f"Meta-World envs need the `metaworld` package (>= 3.0): `{EXTRA_HINT}`") from e


def make_benchmark(benchmark_name: str, seed: int | None = None) -> Any:
    """A Meta-World benchmark: "ml10", "ml45" or one task name for ML1 ("reach-v3")."""
    metaworld = _metaworld()
    name = benchmark_name.lower()
    if name == "ml10":
        return metaworld.ML10(seed=seed)
    if name == "ml45":
        return metaworld.ML45(seed=seed)
    if benchmark_name.endswith("-v2"):
        new = benchmark_name[: -len("-v2")] + "-v3"
        warnings.warn(
            f"Meta-World 3 has no '-v2' tasks; using {new!r} for {benchmark_name!r}",
            UserWarning,
            stacklevel=3,
        )
        benchmark_name = new
    try:
        return metaworld.ML1(benchmark_name, seed=seed)
    except ValueError as e:
        raise ValueError(f"Unrecognized metaworld benchmark {benchmark_name!r} ({e})") from e


@gin.configurable
class KEpisodeMetaworld(gym.Env):
    """One Meta-World task per env episode, attempted ``k_episodes`` times.

    Args:
        benchmark: a Meta-World benchmark object (``metaworld.ML1("reach-v3")``, ``ML10()``, ...).
        split: "train" (the benchmark's train classes and tasks) or "test".
        k_episodes: attempts per task; the env episode ends after the last one.
        max_episode_length: steps per attempt (Meta-World's own limit is 500).

    Observation: (40,) float32, Meta-World's 39 features then the attempt-start flag. The info of
    the step that ends attempt i holds ``AMAGO_LOG_METRIC Trial {i} Success``; the last step also
    holds ``AMAGO_LOG_METRIC Total Successes``. ``task_name`` is the current task's env name.
    ``reward_scales`` (class attribute, task name -> multiplier) rescales rewards per task.
    """

    reward_scales: dict[str, float] = {}

    def __init__(self, benchmark: Any, split: str, k_episodes: int, max_episode_length: int = 500):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.benchmark = benchmark
        self.split = split
        self.k_episodes = k_episodes
        self.max_episode_length = max_episode_length
        self._envs = self.get_env_funcs(benchmark, train_set=split == "train")
        self.reset()
        inner = self.env.observation_space
        self.action_space = self.env.action_space
        self.observation_space = gym.spaces.Box(
            low=np.append(inner.low, 0.0).astype(np.float32),
            high=np.append(inner.high, 1.0).astype(np.float32),
            dtype=np.float32,
        )

    def get_env_funcs(self, benchmark: Any, train_set: bool) -> dict[str, tuple[gym.Env, list]]:
        """task name -> (one env instance, that env's task variations) for the chosen split."""
        classes = benchmark.train_classes if train_set else benchmark.test_classes
        tasks = benchmark.train_tasks if train_set else benchmark.test_tasks
        return {name: (cls(), [t for t in tasks if t.env_name == name]) for name, cls in classes.items()}

    def get_obs(self, og_obs: np.ndarray, soft_reset: bool) -> np.ndarray:
        return np.append(np.asarray(og_obs, dtype=np.float32), np.float32(soft_reset))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.current_trial = 0
        self.current_time = 0
        self.successes = 0.0
        self.trial_success = 0.0
        names = sorted(self._envs)
        self.task_name = names[int(self.np_random.integers(len(names)))]
        self.env, tasks = self._envs[self.task_name]
        self.env.set_task(tasks[int(self.np_random.integers(len(tasks)))])
        inner_seed = None if seed is None else int(self.np_random.integers(2**31))
        obs, _ = self.env.reset(seed=inner_seed)
        return self.get_obs(obs, True), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        metrics: dict[str, float] = {}
        self.trial_success = max(float(info["success"]), self.trial_success)
        self.current_time += 1
        soft_reset = bool(terminated or truncated or self.current_time >= self.max_episode_length)
        if soft_reset:
            metrics[f"{LOG_METRIC_PREFIX} Trial {self.current_trial} Success"] = self.trial_success
            self.successes += self.trial_success
            self.trial_success = 0.0
            self.current_time = 0
            self.current_trial += 1
            obs, _ = self.env.reset()
        done = self.current_trial >= self.k_episodes
        if done:
            metrics[f"{LOG_METRIC_PREFIX} Total Successes"] = self.successes
        reward = float(reward) * self.reward_scales.get(self.task_name, 1.0)
        # Like the original, the last attempt ends the env episode as both terminal and truncated.
        return self.get_obs(obs, soft_reset), reward, done, done, metrics


@gin.configurable
class Metaworld(AMAGOEnv):
    """``AMAGOEnv`` of a k-attempt Meta-World benchmark, named after the current task.

    Args:
        benchmark_name: "ml10", "ml45" or an ML1 task name ("reach-v3"; "-v2" names map to "-v3").
        split: "train" or "test" tasks.
        k_episodes: attempts per task.
    """

    def __init__(self, benchmark_name: str, split: str, k_episodes: int):
        env = KEpisodeMetaworld(make_benchmark(benchmark_name), split, k_episodes)
        super().__init__(env, env_name=f"metaworld_{benchmark_name}")

    @property
    def env_name(self) -> str:
        return self.env.task_name
