"""gymnax (JAX) envs as a gymnasium ``VectorEnv`` for ``env_mode="already_vectorized"``.

Needs ``gymnax`` and a CPU ``jax`` (``pip install amago_pl[envs-extra]``). The module imports
without them; building an env raises an ImportError naming the package.

``GymnaxCompatibility(env, num_envs, params)`` runs ``num_envs`` copies of a gymnax env under one
jitted ``vmap`` and returns numpy arrays. Like gymnax's own auto-reset, an env that ends an
episode is reset inside the same ``step`` (gymnasium's SAME_STEP autoreset mode); the true last
observation is in ``infos["final_obs"]``, so amago_pl records it and bootstraps from it
(docs/envs.md). Usage, as in the original's gymnax example (examples/02_gymnax.py at 2d85600)::

    env, params = gymnax.make("MemoryChain-bsuite")
    make_env = lambda: AMAGOVectorEnv(GymnaxCompatibility(env, num_envs=8, params=params))
    # or GymnaxAMAGO("MemoryChain-bsuite", parallel_envs=8)
    Experiment(make_train_env=make_env, env_mode="already_vectorized", parallel_actors=8, ...)

Differences from the original (amago/envs/builtin/gymnax_envs.py at 2d85600), which subclassed
gymnax's gym wrapper and reported unbatched spaces as ``observation_space``: this is a plain
gymnasium 1.x ``VectorEnv`` (batched ``observation_space``, unbatched
``single_observation_space``), the ``VectorEnv`` that amago_pl's already-vectorized mode takes;
it steps gymnax's ``step_env``/``reset_env`` itself so the last observation of an episode is kept
(the original's recorded the next episode's first observation in its place); and it works with
gymnax 0.0.9 and 1.x alike.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from amago_pl.envs.already_vectorized import AMAGOVectorEnv
from amago_pl.envs.builtin._optional import require

EXTRA_HINT = "pip install amago_pl[envs-extra]"


def _jax() -> Any:
    try:
        return require("jax", "gymnax / XLand-MiniGrid envs")
    except ImportError as e:
        raise ImportError(f"JAX envs need the `jax` package (CPU build): `{EXTRA_HINT}`") from e


def _gymnax() -> Any:
    _jax()
    try:
        return require("gymnax", "gymnax envs")
    except ImportError as e:
        raise ImportError(f"gymnax envs need the `gymnax` package: `{EXTRA_HINT}`") from e


def to_gym_space(space: Any) -> gym.spaces.Space:
    """A gymnax space as the equivalent gymnasium space (Discrete, Box, Dict, Tuple)."""
    kind = type(space).__name__
    if kind == "Discrete":
        return gym.spaces.Discrete(int(space.n))
    if kind == "Box":
        dtype = np.dtype(space.dtype)
        low = np.broadcast_to(np.asarray(space.low, dtype=dtype), space.shape)
        high = np.broadcast_to(np.asarray(space.high, dtype=dtype), space.shape)
        return gym.spaces.Box(low, high, shape=tuple(space.shape), dtype=dtype)
    if kind == "Dict":
        return gym.spaces.Dict({k: to_gym_space(v) for k, v in space.spaces.items()})
    if kind == "Tuple":
        return gym.spaces.Tuple([to_gym_space(s) for s in space.spaces])
    raise NotImplementedError(f"cannot convert a gymnax {kind} space")


def to_numpy(tree: Any) -> Any:
    """JAX arrays (possibly nested in dicts) -> writable numpy arrays."""
    if isinstance(tree, dict):
        return {k: to_numpy(v) for k, v in tree.items()}
    return np.array(tree)


def take(tree: Any, i: int) -> Any:
    """Env ``i``'s entry of a batched (possibly dict) numpy observation."""
    if isinstance(tree, dict):
        return {k: take(v, i) for k, v in tree.items()}
    return tree[i]


@gin.configurable
class GymnaxCompatibility(VectorEnv):
    """``num_envs`` copies of a gymnax env as one gymnasium ``VectorEnv`` (SAME_STEP autoreset).

    Args:
        env: a gymnax environment (``gymnax.make(name)[0]``).
        num_envs: parallel copies N.
        params: gymnax ``EnvParams``; None uses ``env.default_params``.
        seed: seed of the JAX keys until ``reset(seed=...)`` sets new ones (None: 0, as gymnax).

    ``step(actions)`` takes (N,) ints or (N, A) floats and returns numpy arrays; ``infos`` has
    gymnasium's ``final_obs``/``_final_obs`` entries for the envs that ended an episode.
    ``reset(options={"reset_mask": mask})`` resets only the masked envs.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: Any, num_envs: int = 1, params: Any = None, seed: int | None = None):
        jax = _jax()
        self._jax = jax
        self._env = env
        self.num_envs = num_envs
        self.env_params = params if params is not None else env.default_params
        self.single_observation_space = to_gym_space(env.observation_space(self.env_params))
        self.single_action_space = to_gym_space(env.action_space(self.env_params))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._reset_fn = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))
        self._step_fn = jax.jit(jax.vmap(self._step_one, in_axes=(0, 0, 0, None)))
        self._keys = jax.random.split(jax.random.key(seed or 0), num_envs)  # (N,) keys
        self._obs, self._state = self._reset_fn(self._next_keys(), self.env_params)

    def _next_keys(self) -> Any:
        split = self._jax.vmap(self._jax.random.split)(self._keys)  # (N, 2) keys
        self._keys = split[:, 0]
        return split[:, 1]

    def _step_one(self, key: Any, state: Any, action: Any, params: Any) -> tuple:
        """One env's step with a same-step reset; vmapped over the N envs."""
        jax, jnp = self._jax, self._jax.numpy
        k_step, k_reset = jax.random.split(key)
        obs, state, reward, terminated, info = self._env.step_env(k_step, state, action, params)
        # gymnax >= 1.0 keeps the time limit out of step_env's flag; 0.0.9 folds it in.
        if hasattr(self._env, "is_truncated"):
            truncated = jnp.logical_and(self._env.is_truncated(state, params), ~terminated)
        else:
            truncated = jnp.zeros_like(terminated)
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = self._env.reset_env(k_reset, params)
        pick = lambda fresh, old: jnp.where(done, fresh, old)  # noqa: E731
        next_obs = jax.tree_util.tree_map(pick, obs_re, obs)
        next_state = jax.tree_util.tree_map(pick, state_re, state)
        return next_obs, obs, next_state, reward, terminated, truncated

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None) -> tuple[Any, dict]:
        jax, jnp = self._jax, self._jax.numpy
        if isinstance(seed, list | tuple):
            seed = seed[0]
        if seed is not None:
            self._keys = jax.random.split(jax.random.key(int(seed)), self.num_envs)
        obs, state = self._reset_fn(self._next_keys(), self.env_params)
        mask = (options or {}).get("reset_mask")
        if mask is not None:
            keep = jnp.asarray(np.asarray(mask, dtype=bool))  # (N,)

            def pick(fresh: Any, old: Any) -> Any:
                return jnp.where(keep.reshape(-1, *([1] * (fresh.ndim - 1))), fresh, old)

            obs = jax.tree_util.tree_map(pick, obs, self._obs)
            state = jax.tree_util.tree_map(pick, state, self._state)
        self._obs, self._state = obs, state
        return to_numpy(obs), {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        jnp = self._jax.numpy
        actions = jnp.asarray(np.asarray(actions))
        next_obs, last_obs, self._state, reward, terminated, truncated = self._step_fn(
            self._next_keys(), self._state, actions, self.env_params
        )
        self._obs = next_obs
        terminated = np.array(terminated, dtype=bool)  # (N,)
        truncated = np.array(truncated, dtype=bool)  # (N,)
        infos: dict[str, Any] = {}
        done = terminated | truncated
        if done.any():
            last = to_numpy(last_obs)
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = take(last, i)
            infos = {"final_obs": final, "_final_obs": done, "final_info": {}, "_final_info": done}
        return to_numpy(next_obs), np.array(reward, dtype=np.float32), terminated, truncated, infos

    def render(self) -> Any:
        return None


class GymnaxAMAGO(AMAGOVectorEnv):
    """``AMAGOVectorEnv(GymnaxCompatibility(...))`` of a gymnax env by name, named
    ``gymnax_<name>`` as in the original's gymnax example.

    Args:
        env_name: a gymnax env id ("CartPole-v1", "MemoryChain-bsuite", ...).
        parallel_envs: parallel copies (must equal the Experiment's ``parallel_actors``).
        params: gymnax ``EnvParams``; None uses the env's defaults.
        seed: initial JAX seed.
    """

    def __init__(self, env_name: str, parallel_envs: int, params: Any = None, seed: int | None = None):
        env, default_params = _gymnax().make(env_name)
        vec = GymnaxCompatibility(env, num_envs=parallel_envs, params=params or default_params, seed=seed)
        super().__init__(vec, env_name=f"gymnax_{env_name}")
