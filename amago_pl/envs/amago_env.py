"""``AMAGOEnv``: the wrapper every env goes through before amago_pl steps it.

It only normalises spaces (see ``action_spaces.py``) and observations (always a dict). The
bookkeeping the original kept inside the wrapper (previous reward/action, time index, same-step
resets) lives in the parallel-env runner (``env_group.py``), so one code path serves every env
mode and the wrapper stays a plain, ``check_env``-compatible gymnasium env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl.envs.action_spaces import ActionAdapter, rl2_space_for

# Info keys starting with this prefix are logged as metrics (prefix stripped), as in the original.
LOG_METRIC_PREFIX = "AMAGO_LOG_METRIC"

OBS_KEY = "observation"  # the single key of non-dict observation spaces


def dict_observation_space(space: spaces.Space) -> spaces.Dict:
    """Dict spaces pass through; anything else becomes ``Dict({"observation": space})``."""
    if isinstance(space, spaces.Dict):
        return space
    return spaces.Dict({OBS_KEY: space})


def default_env_name(env: gym.Env) -> str:
    """The env's own ``env_name`` if it has one, else its spec id, else its class name.

    Looked up with ``get_wrapper_attr`` because gymnasium >= 1.0 wrappers do not forward
    attributes (``Wrapper.__getattr__`` was removed in 1.0, see
    https://github.com/Farama-Foundation/Gymnasium/releases/tag/v0.29.1); multi-task envs may
    define ``env_name`` as a property that changes on every reset, so callers should read it after
    each reset.
    """
    try:
        name = env.get_wrapper_attr("env_name")
        if name is not None:
            return str(name)
    except AttributeError:
        pass
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return str(spec.id)
    return type(env.unwrapped).__name__


class AMAGOEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Normalises an env's spaces for amago_pl.

    - ``observation_space`` is a ``Dict`` (non-dict spaces become ``{"observation": ...}``).
    - ``action_space`` is the policy's space: ``Discrete(n)`` (int index), ``MultiBinary(A)``
      (0/1 vector) or ``Box(-1, 1, (A,))`` rescaled linearly to the env's finite bounds.
    - ``rl2_space = Box(1 + A)`` unbounded float32; ``discrete``; ``action_dim = A``;
      ``action_rep(action) -> (A,) float32``.
    - ``env_name``: the name given here, otherwise the inner env's ``env_name`` (read each time,
      so per-reset names of multi-task envs are seen), spec id or class name.

    Raises ``ValueError`` naming the space for unsupported action spaces (Tuple, Dict,
    MultiDiscrete, ...) and for Box action spaces with non-finite bounds.
    """

    def __init__(self, env: gym.Env, env_name: str | None = None):
        # Recorded so gymnasium can rebuild gym.make'd envs wrapped in AMAGOEnv (check_env does).
        gym.utils.RecordConstructorArgs.__init__(self, env_name=env_name)
        gym.Wrapper.__init__(self, env)
        self._adapter = ActionAdapter(env.action_space)
        self._obs_is_dict = isinstance(env.observation_space, spaces.Dict)
        self.observation_space = dict_observation_space(env.observation_space)
        self.action_space = self._adapter.policy_space
        self.rl2_space = rl2_space_for(self._adapter.action_dim)
        self._env_name = env_name

    @property
    def env_name(self) -> str:
        if self._env_name is not None:
            return self._env_name
        return default_env_name(self.env)

    @property
    def discrete(self) -> bool:
        return self._adapter.discrete

    @property
    def multibinary(self) -> bool:
        return self._adapter.kind == "multibinary"

    @property
    def action_dim(self) -> int:
        return self._adapter.action_dim

    @property
    def action_adapter(self) -> ActionAdapter:
        return self._adapter

    def action_rep(self, action: Any) -> np.ndarray:
        """(A,) float32 representation of one policy action (one-hot for Discrete)."""
        return self._adapter.rep(action)

    def to_env_action(self, action: Any) -> Any:
        """The env-space action that ``step(action)`` executes."""
        return self._adapter.to_env(action)

    def _wrap_obs(self, obs: Any) -> dict[str, Any]:
        return obs if self._obs_is_dict else {OBS_KEY: obs}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, Any], dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._wrap_obs(obs), info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(self._adapter.to_env(action))
        return self._wrap_obs(obs), float(reward), bool(terminated), bool(truncated), info
