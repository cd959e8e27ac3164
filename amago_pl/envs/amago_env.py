"""``AMAGOEnv``: the wrapper every env goes through before amago_pl steps it.

It only normalises spaces (see ``action_spaces.py``) and observations (always a dict). The
bookkeeping the original kept inside the wrapper (previous reward/action, time index, same-step
resets) lives in the parallel-env runner (``env_group.py``), so one code path serves every env
mode and the wrapper stays a plain, ``check_env``-compatible gymnasium env.

``AMAGOEnv(vector_env, batched_envs=N)`` (the original's way to pass an already-vectorized env)
holds the vector env for ``env_mode="already_vectorized"``, which steps it. The original's
per-env bookkeeping classes (``SequenceWrapper``, ``EnvCreator``) have no counterpart here and
say so when built.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from amago_pl.envs.action_spaces import ActionAdapter, rl2_space_for

# Info keys starting with this prefix are logged as metrics (prefix stripped), as in the original.
LOG_METRIC_PREFIX = "AMAGO_LOG_METRIC"
AMAGO_ENV_LOG_PREFIX = LOG_METRIC_PREFIX  # the original's name (amago/envs/amago_env.py at 2d85600)

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

    def __init__(self, env: gym.Env | VectorEnv, env_name: str | None = None, batched_envs: int = 1):
        # Recorded so gymnasium can rebuild gym.make'd envs wrapped in AMAGOEnv (check_env does).
        gym.utils.RecordConstructorArgs.__init__(self, env_name=env_name)
        self._env_name = env_name
        self.vector_env: VectorEnv | None = None
        if isinstance(env, VectorEnv) or batched_envs > 1:
            self._hold_vector_env(env, batched_envs)
            return
        gym.Wrapper.__init__(self, env)
        self.batched_envs = 1
        self._adapter = ActionAdapter(env.action_space)
        self._obs_is_dict = isinstance(env.observation_space, spaces.Dict)
        self.observation_space = dict_observation_space(env.observation_space)
        self.action_space = self._adapter.policy_space
        self.rl2_space = rl2_space_for(self._adapter.action_dim)

    def _hold_vector_env(self, env: gym.Env | VectorEnv, batched_envs: int) -> None:
        """An already-vectorized env: kept for ``env_mode="already_vectorized"`` (which wraps it in
        ``AMAGOVectorEnv``); the spaces here are the single-env ones."""
        vec = env if isinstance(env, VectorEnv) else BatchedEnvAsVectorEnv(env, batched_envs)
        if batched_envs > 1 and vec.num_envs != batched_envs:
            raise ValueError(f"batched_envs={batched_envs} but the vector env has {vec.num_envs} envs")
        self.vector_env = vec
        self.env = vec  # what gym.Wrapper's properties read (metadata, spec, unwrapped)
        self._action_space = self._observation_space = self._metadata = self._cached_spec = None
        self.batched_envs = vec.num_envs
        self._adapter = ActionAdapter(vec.single_action_space)
        self._obs_is_dict = isinstance(vec.single_observation_space, spaces.Dict)
        self.observation_space = dict_observation_space(vec.single_observation_space)
        self.action_space = self._adapter.policy_space
        self.rl2_space = rl2_space_for(self._adapter.action_dim)

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

    def _refuse_vector_env(self) -> None:
        if self.vector_env is not None:
            raise TypeError(
                f"AMAGOEnv holds an already-vectorized env ({self.batched_envs} envs): run it with "
                "env_mode='already_vectorized' (Experiment.env_mode / --env_mode)"
            )

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, Any], dict]:
        self._refuse_vector_env()
        obs, info = self.env.reset(seed=seed, options=options)
        return self._wrap_obs(obs), info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict]:
        self._refuse_vector_env()
        obs, reward, terminated, truncated, info = self.env.step(self._adapter.to_env(action))
        return self._wrap_obs(obs), float(reward), bool(terminated), bool(truncated), info


class BatchedEnvAsVectorEnv(VectorEnv):
    """A gymnasium env that is batched inside (the original's ``AMAGOEnv(env, batched_envs=N)``
    contract: arrays with a leading N axis, single-env spaces, and resets of ended envs done by the
    env itself in the same step) as a gymnasium ``VectorEnv`` in SAME_STEP autoreset mode.

    Such an env does not report the true last observation of an ended episode, so the observation
    returned with ``done`` (already the next episode's first) stands in for it, as in the original.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: gym.Env, num_envs: int):
        self.env = env
        self.num_envs = int(num_envs)
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, self.num_envs)
        self.action_space = batch_space(env.action_space, self.num_envs)
        self.render_mode = getattr(env, "render_mode", None)

    def reset(self, *, seed: Any = None, options: dict | None = None) -> tuple[Any, dict]:
        seed = seed[0] if isinstance(seed, list) else seed
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, info if isinstance(info, dict) else {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, rew, terminated, truncated, info = self.env.step(actions)
        info = dict(info) if isinstance(info, dict) else {}
        done = np.asarray(terminated, dtype=bool).reshape(-1) | np.asarray(truncated, dtype=bool).reshape(-1)
        if done.any():
            final = np.empty(self.num_envs, dtype=object)  # (N,) the obs returned with done, per ended env
            for i in np.flatnonzero(done):
                final[i] = (
                    {k: np.array(v[i]) for k, v in obs.items()} if isinstance(obs, dict) else np.array(obs[i])
                )
            info["final_obs"], info["_final_obs"] = final, done
        return (
            obs,
            np.asarray(rew, dtype=np.float32).reshape(-1),
            np.asarray(terminated, dtype=bool).reshape(-1),
            (np.asarray(truncated, dtype=bool).reshape(-1)),
            info,
        )

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def get_action_dim_and_type(action_space: spaces.Space) -> tuple[int, bool, bool]:
    """(action_dim, discrete, multibinary) of an env's action space (the original's amago.agent helper)."""
    adapter = ActionAdapter(action_space)
    return adapter.action_dim, adapter.kind == "discrete", adapter.kind == "multibinary"


class ReturnHistory:
    """Episode returns per env name (the original's logging record): ``data[env_name] -> [returns]``."""

    def __init__(self, env_name: str | None = None):
        self.data: dict[str, list[float]] = {}

    def add_score(self, env_name: str, score: float) -> None:
        self.data.setdefault(env_name, []).append(score)


class SpecialMetricHistory:
    """Values of ``AMAGO_LOG_METRIC``-prefixed info keys per env name: ``data[env_name][key] -> [values]``
    (the prefix is stripped; arrays are flattened into the list)."""

    log_prefix = LOG_METRIC_PREFIX

    def __init__(self, env_name: str | None = None):
        self.data: dict[str, dict[str, list[Any]]] = {}

    def add_score(self, env_name: str, key: str, value: Any) -> None:
        if key.startswith(self.log_prefix):
            key = key[len(self.log_prefix) :].strip()
        if hasattr(value, "tolist") and np.ndim(value) > 0:
            values = list(np.asarray(value).reshape(-1).tolist())
        else:
            values = list(value) if isinstance(value, (list, tuple)) else [value]
        self.data.setdefault(env_name, {}).setdefault(key, []).extend(values)


class _NoPerEnvWrapper:
    """The original wrapped each env with trajectory saving and logging; amago_pl does both in the
    rollout callback (callbacks/rollout.py: ``make_parallel_envs`` + ``TrajectoryWriter``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(
            f"{type(self).__name__} does not exist in amago_pl: Experiment builds the envs with "
            "envs.make_parallel_envs and saves trajectories with datamodules.TrajectoryWriter; pass "
            "make_train_env/make_val_env (callables returning an AMAGOEnv) to Experiment instead"
        )


class SequenceWrapper(_NoPerEnvWrapper):
    """Not available in amago_pl (see :class:`_NoPerEnvWrapper`)."""


class EnvCreator(_NoPerEnvWrapper):
    """Not available in amago_pl (see :class:`_NoPerEnvWrapper`)."""
