"""XLand-MiniGrid (JAX) meta-RL as a gymnasium ``VectorEnv`` for ``env_mode="already_vectorized"``.

Needs ``xminigrid`` and a CPU ``jax`` (``pip install amago_pl[envs-extra]``). The module imports
without them; building an env raises an ImportError naming the package.

"XLand-MiniGrid: Scalable Meta-Reinforcement Learning Environments in JAX", Nikulin et al., 2023
(https://arxiv.org/abs/2312.12044). Each of the ``parallel_envs`` envs plays a ruleset (a hidden
goal plus production rules) drawn from a benchmark for ``k_episodes`` episodes, then draws a new
one; the same task as amago/envs/builtin/xland_minigrid.py at 2d85600. Observations: ``grid``
(the agent's view), ``direction_done`` (direction one-hot and whether the inner episode just
ended) and ``goal`` (the goal's encoding).

Rulesets: ``ruleset_benchmark`` names one of xminigrid's published benchmarks, which
``xminigrid.load_benchmark`` downloads (and unpickles) from a dataset hub on first use; pass an
``xminigrid.benchmarks.Benchmark`` instead to use rulesets built locally (docs/envs.md).

Differences from the original: it is a gymnasium 1.x ``VectorEnv`` (SAME_STEP autoreset: an env
whose ``k_episodes`` are over gets a new ruleset within the same ``step``, and the observation
before that reset is in ``infos["final_obs"]``); per-episode returns are logged in gymnasium's
vector info layout; ``ruleset_benchmark`` also takes a ``Benchmark``; unseeded envs draw their
JAX key from numpy's entropy instead of Python's ``random``.
"""

from __future__ import annotations

import os
from typing import Any

import gin
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from amago_pl.envs.already_vectorized import AMAGOVectorEnv
from amago_pl.envs.amago_env import LOG_METRIC_PREFIX
from amago_pl.envs.builtin._optional import require
from amago_pl.envs.builtin.gymnax_envs import EXTRA_HINT, _jax, take


def _xminigrid() -> Any:
    _jax()
    try:
        return require("xminigrid", "XLand-MiniGrid")
    except ImportError as e:
        raise ImportError(f"XLand-MiniGrid needs the `xminigrid` package: `{EXTRA_HINT}`") from e


@gin.configurable
class XLandMinigridVectorizedGym(VectorEnv):
    """``parallel_envs`` XLand-MiniGrid meta-RL envs as one ``VectorEnv``.

    Args:
        parallel_envs: number of envs N (the batch size of observations, actions, rewards).
        k_episodes: episodes played with each ruleset before a new one is drawn.
        rooms: rooms the grid is split into (1, 2, 4, 6 or 9; more is harder to explore).
        grid_size: the grid is ``grid_size`` x ``grid_size``.
        ruleset_benchmark: an xminigrid benchmark name ("trivial-21k", "small-1m", "medium-1m",
            "high-1m", ...; downloaded on first use) or an ``xminigrid.benchmarks.Benchmark``.
        train_test_split: "train" or "test" part of the shuffled benchmark.
        train_test_split_key: seed of the shuffle before the split.
        train_test_split_pct: fraction (0, 1) of the rulesets in the train part.

    ``infos`` of a step where env i finished its episode n holds ``AMAGO_LOG_METRICEp {n}
    Return`` (masked per env).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        parallel_envs: int,
        k_episodes: int = 25,
        rooms: int = 4,
        grid_size: int = 13,
        ruleset_benchmark: Any = "small-1m",
        train_test_split: str = "train",
        train_test_split_key: int = 0,
        train_test_split_pct: float = 0.8,
        k_shots: int | None = None,
    ):
        # The original's examples/11_xland_minigrid.py passes k_shots, which its own class never
        # accepted; here it is another name for k_episodes.
        if k_shots is not None:
            k_episodes = k_shots
        xminigrid = _xminigrid()
        jax = _jax()
        from xminigrid.wrappers import (
            DirectionObservationWrapper,
            DmEnvAutoResetWrapper,
            RulesAndGoalsObservationWrapper,
        )

        if train_test_split not in ("train", "test"):
            raise ValueError(f"train_test_split must be 'train' or 'test', got {train_test_split!r}")
        self._jax, self._xminigrid = jax, xminigrid
        self.rooms, self.grid_size, self.k_episodes = rooms, grid_size, k_episodes
        self.num_envs = self.parallel_envs = parallel_envs
        if isinstance(ruleset_benchmark, str):
            self.ruleset_benchmark = ruleset_benchmark
            benchmark = _load_named_benchmark(xminigrid, ruleset_benchmark)
        else:
            self.ruleset_benchmark, benchmark = "custom", ruleset_benchmark
        shuffled = benchmark.shuffle(key=jax.random.key(train_test_split_key))
        train, test = shuffled.split(prop=train_test_split_pct)
        self.benchmark = train if train_test_split == "train" else test
        if self.benchmark.num_rulesets() == 0:
            raise ValueError(f"the {train_test_split} split of the benchmark has no rulesets")

        env, self.env_params = xminigrid.make(f"XLand-MiniGrid-R{rooms}-{grid_size}x{grid_size}")
        self.x_env = RulesAndGoalsObservationWrapper(DirectionObservationWrapper(DmEnvAutoResetWrapper(env)))
        self._ruleset_key, self._reset_key = jax.random.split(
            jax.random.key(int(np.random.default_rng().integers(2**31)))
        )
        self.x_sample = jax.jit(jax.vmap(self.benchmark.sample_ruleset))
        self.x_reset = jax.jit(jax.vmap(self.x_env.reset, in_axes=(0, 0)))
        self.x_step = jax.jit(jax.vmap(self.x_env.step, in_axes=(0, 0, 0)))
        self.x_select = jax.jit(self._select)

        shapes = self.x_env.observation_shape(self.env_params)
        self.max_steps_per_episode = int(self.env_params.max_steps)
        self.single_action_space = gym.spaces.Discrete(self.x_env.num_actions(self.env_params))
        self.single_observation_space = gym.spaces.Dict(
            {
                "grid": gym.spaces.Box(0, 14, shape=tuple(shapes["img"]), dtype=np.uint8),
                "direction_done": gym.spaces.Box(0, 1, shape=(5,), dtype=np.uint8),
                "goal": gym.spaces.Box(0, 14, shape=tuple(shapes["goal_encoding"]), dtype=np.uint8),
            }
        )
        self.action_space = batch_space(self.single_action_space, parallel_envs)
        self.observation_space = batch_space(self.single_observation_space, parallel_envs)
        # Placeholder rulesets and timesteps; reset() replaces all of them.
        self.env_params = self.env_params.replace(ruleset=self.x_sample(self._split("_ruleset_key")))
        self.x_timestep = self.x_reset(self.env_params, self._split("_reset_key"))
        self.current_episode = np.zeros(parallel_envs, dtype=np.int64)  # (N,)
        self.episode_return = np.zeros(parallel_envs, dtype=np.float32)  # (N,)

    def _split(self, attr: str) -> Any:
        """N fresh keys from the key stored at ``attr`` (which is advanced)."""
        keys = self._jax.random.split(getattr(self, attr), self.num_envs + 1)
        setattr(self, attr, keys[0])
        return keys[1:]

    def _select(self, old: Any, new: Any, replace: Any) -> Any:
        """Per env, ``new``'s leaves where ``replace`` (N,) is True, else ``old``'s."""
        jnp = self._jax.numpy

        def pick(o: Any, n: Any) -> Any:
            return jnp.where(replace.reshape(-1, *([1] * (o.ndim - 1))), n, o)

        return self._jax.tree_util.tree_map(pick, old, new)

    @property
    def suggested_max_seq_len(self) -> int:
        return (self.max_steps_per_episode + 1) * self.k_episodes

    def get_obs(self) -> dict[str, np.ndarray]:
        obs = self.x_timestep.observation
        last = np.asarray(self.x_timestep.last(), dtype=np.uint8)[:, None]  # (N, 1)
        return {
            "grid": np.array(obs["img"], dtype=np.uint8),
            "direction_done": np.concatenate((np.asarray(obs["direction"], dtype=np.uint8), last), axis=-1),
            "goal": np.array(obs["goal_encoding"], dtype=np.uint8),
        }

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None) -> tuple[dict, dict]:
        jax = self._jax
        if isinstance(seed, list | tuple):
            seed = seed[0]
        if seed is not None:
            self._ruleset_key, self._reset_key = jax.random.split(jax.random.key(int(seed)))
        mask = (options or {}).get("reset_mask")
        replace = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        return self.reset_if_done(replace), {}

    def reset_if_done(self, is_done: np.ndarray) -> dict[str, np.ndarray]:
        """New rulesets and fresh episodes for the envs where ``is_done`` (N,) is True."""
        jnp = self._jax.numpy
        replace = jnp.asarray(is_done)
        new_rules = self.x_sample(self._split("_ruleset_key"))
        ruleset = self.x_select(self.env_params.ruleset, new_rules, replace)
        self.env_params = self.env_params.replace(ruleset=ruleset)
        fresh = self.x_reset(self.env_params, self._split("_reset_key"))
        self.x_timestep = self.x_select(self.x_timestep, fresh, replace)
        self.current_episode[is_done] = 0
        self.episode_return[is_done] = 0.0
        return self.get_obs()

    def step(self, actions: Any) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions).reshape(self.num_envs)
        # DmEnvAutoResetWrapper: the step after a LAST timestep resets the inner episode and
        # ignores the action, so the episode that ended on the previous step is counted now.
        ended = np.asarray(self.x_timestep.last(), dtype=bool)  # (N,)
        metrics: dict[str, np.ndarray] = {}
        for i in np.flatnonzero(ended):
            key = f"{LOG_METRIC_PREFIX}Ep {int(self.current_episode[i])} Return"
            if key not in metrics:
                metrics[key] = np.zeros(self.num_envs, dtype=np.float32)
                metrics[f"_{key}"] = np.zeros(self.num_envs, dtype=bool)
            metrics[key][i] = self.episode_return[i]
            metrics[f"_{key}"][i] = True
        self.x_timestep = self.x_step(self.env_params, self.x_timestep, self._jax.numpy.asarray(actions))
        self.episode_return[ended] = 0.0
        self.current_episode += ended
        reward = np.array(self.x_timestep.reward, dtype=np.float32)  # (N,)
        self.episode_return += reward
        done = self.current_episode >= self.k_episodes  # (N,)
        infos: dict[str, Any] = dict(metrics)
        if done.any():
            # The ruleset changes within this step (SAME_STEP); keep the observation before it.
            last_obs = self.get_obs()
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = take(last_obs, i)
            infos.update(
                final_obs=final, _final_obs=done.copy(), final_info=dict(metrics), _final_info=done.copy()
            )
            self.reset_if_done(done)
        return self.get_obs(), reward, done.copy(), done.copy(), infos

    def render(self, env_idx: int = 0) -> Any:
        one = self._jax.tree_util.tree_map(lambda x: x[env_idx], self.x_timestep)
        params = self.env_params.replace(
            ruleset=self._jax.tree_util.tree_map(lambda x: x[env_idx], self.env_params.ruleset)
        )
        return self.x_env.render(params, one)


class XLandMiniGridAMAGO(AMAGOVectorEnv):
    """``AMAGOVectorEnv`` of an :class:`XLandMinigridVectorizedGym`, named
    ``XLandMiniGrid-<benchmark>-R<rooms>-<size>x<size>`` (the original's XLand example defines it)."""

    def __init__(self, env: XLandMinigridVectorizedGym):
        if not isinstance(env, XLandMinigridVectorizedGym):
            raise TypeError(
                f"XLandMiniGridAMAGO wraps an XLandMinigridVectorizedGym, got {type(env).__name__}"
            )
        name = f"XLandMiniGrid-{env.ruleset_benchmark}-R{env.rooms}-{env.grid_size}x{env.grid_size}"
        super().__init__(env, env_name=name)

    @property
    def suggested_max_seq_len(self) -> int:
        return self.env.suggested_max_seq_len


def _load_named_benchmark(xminigrid: Any, name: str) -> Any:
    """``xminigrid.load_benchmark(name)`` with errors that say what to do.

    xminigrid keeps rulesets in ``$XLAND_MINIGRID_DATA`` (default ``~/.xland_minigrid``) and
    downloads a missing one from the Hugging Face hub on first use; an offline machine, or a name
    the installed xminigrid no longer registers (``trivial-1m`` is gone in 0.9), otherwise ends in a
    bare ``URLError``/``RuntimeError``.
    """
    registered = tuple(xminigrid.registered_benchmarks())
    if name not in registered:
        raise ValueError(
            f"XLand-MiniGrid ruleset benchmark {name!r} is not registered by the installed xminigrid "
            f"({getattr(xminigrid, '__version__', '?')}); choose one of {registered}, or pass an "
            "xminigrid.benchmarks.Benchmark built yourself as ruleset_benchmark="
        )
    try:
        return xminigrid.load_benchmark(name=name)
    except OSError as err:  # urllib's URLError is an OSError
        data_dir = os.environ.get("XLAND_MINIGRID_DATA", os.path.expanduser("~/.xland_minigrid"))
        raise RuntimeError(
            f"XLand-MiniGrid ruleset benchmark {name!r} is not in {data_dir} and could not be downloaded "
            f"({type(err).__name__}: {err}). Download it once on a machine with network access (any "
            f"call to xminigrid.load_benchmark({name!r})) and copy the file into {data_dir} (or set "
            "XLAND_MINIGRID_DATA), or pass an xminigrid.benchmarks.Benchmark as ruleset_benchmark="
        ) from err
