"""The original's env helpers (``amago.envs.env_utils`` at 2d85600), for ported env code.

amago_pl itself does not use them: ``AMAGOEnv`` normalises action spaces with
:class:`~amago_pl.envs.action_spaces.ActionAdapter`, and ``make_parallel_envs`` runs parallel and
already-vectorized envs. What each maps to:

- ``extend_box_obs_space_by``: a Box with ``by`` extra dimensions (for envs that append features).
- ``space_convert``: a space of the legacy ``gym`` package -> the gymnasium equivalent.
- ``DiscreteActionWrapper`` / ``ContinuousActionWrapper`` / ``MultiBinaryActionWrapper``: the action
  conversions of ``AMAGOEnv`` as standalone gymnasium wrappers (``ActionAdapter``'s mapping).
- ``AlreadyVectorizedEnv`` / ``DummyAsyncVectorEnv``: the original's stand-ins for an async vector
  env (``call_async``/``call_wait``); amago_pl's counterparts are the ``"already_vectorized"`` and
  ``"sync"`` modes of ``make_parallel_envs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from amago_pl.envs.action_spaces import ActionAdapter


def extend_box_obs_space_by(space: gym.spaces.Box, by: int, low: float, high: float) -> gym.spaces.Box:
    """``space`` (D,) -> Box (D + by,) whose new dimensions lie in [low, high]."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"extend_box_obs_space_by needs a Box space, got {space!r}")
    return gym.spaces.Box(
        low=np.concatenate((space.low, np.full(by, low, dtype=space.dtype))),
        high=np.concatenate((space.high, np.full(by, high, dtype=space.dtype))),
        dtype=space.dtype,
    )


def space_convert(space: Any) -> gym.spaces.Space:
    """A gymnasium space for a gymnasium space (unchanged) or a legacy ``gym`` Box/Discrete."""
    if isinstance(space, gym.spaces.Space):
        return space
    kind = type(space).__name__
    if kind == "Box" and hasattr(space, "low"):
        return gym.spaces.Box(low=space.low, high=space.high, shape=space.shape, dtype=space.dtype)
    if kind == "Discrete" and hasattr(space, "n"):
        return gym.spaces.Discrete(int(space.n))
    raise TypeError(f"cannot convert space {space!r} of type {type(space)} to a gymnasium space")


class DiscreteActionWrapper(gym.ActionWrapper):
    """Accepts a Discrete action as an int, a (1,) array or an (N, 1) array of indices."""

    def action(self, action: Any) -> Any:
        if isinstance(action, np.ndarray):
            if action.ndim == 1 and action.shape[0] == 1:
                return int(action[0])
            if action.ndim == 2 and action.shape[1] == 1:
                return action[:, 0]
        return action


class ContinuousActionWrapper(gym.ActionWrapper):
    """The policy acts in Box(-1, 1); actions are rescaled linearly to the env's finite bounds."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._adapter = ActionAdapter(env.action_space)
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float32)
        if np.abs(action).max() > 1.0:
            raise ValueError("continuous action outside [-1, 1]")
        return self._adapter.to_env(action.reshape(-1)).reshape(self.env.action_space.shape)


class MultiBinaryActionWrapper(gym.ActionWrapper):
    """MultiBinary actions as int8 0/1 vectors."""

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action).astype(np.int8)


class _CallBuffer:
    """``call_async(name)`` / ``call_wait()`` over a list of envs: an attribute, or a method's result."""

    envs: list[Any]

    def call_async(self, name: str, *args: Any, **kwargs: Any) -> None:
        values = [getattr(e, name) for e in self.envs]
        self._results = [v(*args, **kwargs) if callable(v) else v for v in values]

    def call_wait(self) -> list[Any]:
        return self._results

    def render(self) -> Any:
        return self.envs[0].render()


class AlreadyVectorizedEnv(_CallBuffer):
    """One env with a leading batch axis (``batched_envs``) behind the async-vector-env calls.

    The env resets its ended sub-envs itself.
    """

    def __init__(self, env_funcs: list[Callable[[], Any]]):
        if len(env_funcs) != 1:
            raise ValueError("AlreadyVectorizedEnv takes exactly one env factory")
        self.env = env_funcs[0]()
        self.envs = [self.env]
        self.batched_envs = int(getattr(self.env, "batched_envs", 1))
        self.observation_space = self.env.observation_space
        self.action_space = self.single_action_space = self.env.action_space

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        return self.env.reset()

    def step(self, action: np.ndarray) -> tuple[Any, ...]:
        if action.shape[0] != self.batched_envs:
            raise ValueError(f"expected {self.batched_envs} actions, got {action.shape[0]}")
        obs, rewards, terminated, truncated, info = self.env.step(action)
        return np.stack(obs, axis=0), rewards, terminated, truncated, info


class DummyAsyncVectorEnv(_CallBuffer):
    """Several envs stepped one after the other, each reset as soon as it ends."""

    def __init__(self, env_funcs: list[Callable[[], gym.Env]]):
        self.envs = [f() for f in env_funcs]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.single_action_space = self.envs[0].action_space

    def reset(self, *args: Any, **kwargs: Any) -> tuple[np.ndarray, list[dict]]:
        outs = [e.reset() for e in self.envs]
        return np.stack([o for o, _ in outs]), [info for _, info in outs]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if action.shape[0] != len(self.envs):
            raise ValueError(f"expected {len(self.envs)} actions, got {action.shape[0]}")
        obs, rews, terms, truncs, infos = [], [], [], [], []
        for env, a in zip(self.envs, action):
            o, r, te, tr, info = env.step(a)
            if te or tr:
                o, info = env.reset()
            obs.append(o), rews.append(r), terms.append(te), truncs.append(tr), infos.append(info)
        return np.stack(obs), np.stack(rews), np.stack(terms), np.stack(truncs), infos
