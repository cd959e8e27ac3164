"""Run exploration classes written for the original AMAGO, one instance per env.

The original wraps every env in its own exploration ``gym.ActionWrapper`` (amago/envs/exploration.py
at 2d85600): ``cls(env)`` with ``env.batched_envs == 1``, whose ``add_exploration_noise(action,
local_step)`` and ``current_eps(local_step)`` see one env's actions, (1, 1) indices for Discrete or
(1, A) for Box, and a (1,) step count, and whose schedule counts that env's steps. User code
relies on those shapes (``if local_step > w and ...`` needs a single element). amago_pl applies
exploration in the main process to all N envs at once, so :class:`PerEnvExploration` keeps N such
instances, each built around a stand-in env that carries the action space, and feeds each its own
env's row. Episode ends reach each instance's ``on_episode_end`` (amago_pl's hook); an overridden
``step``/``reset`` of the wrapper is not called, because no env is stepped through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


class StandInEnv:
    """What an original-style wrapper reads from its env: spaces, ``batched_envs`` and flags."""

    def __init__(self, action_space: spaces.Space):
        self.action_space = action_space
        self.observation_space = None  # exploration never sees observations
        self.batched_envs = 1
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.multibinary = isinstance(action_space, spaces.MultiBinary)
        self.step_count = np.zeros(1, dtype=np.int64)  # (1,) steps since the env's reset


class PerEnvExploration:
    """N instances of an original-style exploration class behind amago_pl's exploration interface
    (``__call__(actions, time_idxs)``, ``on_episode_end``, ``current_eps``, ``seed``, state dicts)."""

    def __init__(self, cls: type, action_space: spaces.Space, num_envs: int, *args: Any, **kwargs: Any):
        """``cls(env, *args, **kwargs)`` for each of the ``num_envs`` envs (gin fills the rest)."""
        self.cls = cls
        self.action_space = action_space
        self.num_envs = int(num_envs)
        self.envs = [StandInEnv(action_space) for _ in range(self.num_envs)]
        self.wrappers = [cls(env, *args, **kwargs) for env in self.envs]
        self._last_time_idxs = np.zeros(self.num_envs, dtype=np.int64)  # (N,)
        if self._has_epsilon():
            self.current_eps = self._current_eps  # only then is there an epsilon to log

    def _has_epsilon(self) -> bool:
        # A wrapper that only overrides add_exploration_noise inherits a current_eps with no
        # schedule behind it (amago_pl's base raises NotImplementedError there).
        try:
            for w in self.wrappers:
                w.current_eps(np.zeros(1, dtype=np.int64))
        except (AttributeError, NotImplementedError, TypeError):
            return False
        return True

    def _one_env_action(self, action: np.ndarray) -> np.ndarray:
        """Env i's policy action in the original's layout: (1, 1) index or (1, A) vector."""
        return action.reshape(1, -1)

    def __call__(self, actions: np.ndarray, time_idxs: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)  # (N,) int64 or (N, A)
        time_idxs = np.asarray(time_idxs).reshape(-1).astype(np.int64)  # (N,)
        self._last_time_idxs = time_idxs
        out = actions.copy()
        for i, (env, wrapper) in enumerate(zip(self.envs, self.wrappers)):
            env.step_count[:] = time_idxs[i]
            local_step = env.step_count.copy()  # (1,)
            mine = self._one_env_action(actions[i])
            if callable(getattr(wrapper, "add_exploration_noise", None)):
                noisy = wrapper.add_exploration_noise(mine, local_step)
            else:  # an amago_pl ExplorationWrapper subclass (e.g. of EpsilonGreedy) with one env
                noisy = wrapper(actions[i : i + 1], local_step)
            out[i] = np.asarray(noisy).reshape(actions[i].shape).astype(actions.dtype)
        return out

    def on_episode_end(self, done: np.ndarray) -> None:
        done = np.asarray(done, dtype=bool).reshape(-1)  # (N,)
        for i in np.flatnonzero(done):
            hook = getattr(self.wrappers[i], "on_episode_end", None)
            if callable(hook):
                hook(np.ones(1, dtype=bool))

    def _current_eps(self, time_idxs: np.ndarray | None = None) -> np.ndarray:
        """(N,) each env's epsilon at its current (or the given) step."""
        t = self._last_time_idxs if time_idxs is None else np.asarray(time_idxs).reshape(-1)
        return np.concatenate(
            [np.asarray(w.current_eps(t[i : i + 1]), dtype=np.float64).reshape(-1)[:1]
             for i, w in enumerate(self.wrappers)]
        )  # fmt: skip

    def seed(self, seed: int | None) -> None:
        """Give every env's instance its own generator, derived from ``seed``."""
        children = np.random.SeedSequence(seed).spawn(self.num_envs)
        for wrapper, child in zip(self.wrappers, children):
            sub_seed = int(child.generate_state(1)[0])
            if callable(getattr(wrapper, "seed", None)):
                wrapper.seed(sub_seed)
            else:
                wrapper.rng = np.random.default_rng(sub_seed)

    def state_dict(self) -> dict[str, Any]:
        return {
            "per_env": [
                w.state_dict() if callable(getattr(w, "state_dict", None)) else {} for w in self.wrappers
            ]
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for wrapper, sub in zip(self.wrappers, state.get("per_env", [])):
            if sub and callable(getattr(wrapper, "load_state_dict", None)):
                wrapper.load_state_dict(sub)
