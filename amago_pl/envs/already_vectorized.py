"""``mode="already_vectorized"``: one ``gymnasium.vector.VectorEnv`` holding all N envs.

gymnasium 1.x vector envs auto-reset in one of three modes (https://farama.org/Vector-Autoreset-Mode):

- SAME_STEP: the obs returned with ``done`` is already the next episode's first obs; the true last
  obs is in ``infos["final_obs"][i]`` and the step's info in ``infos["final_info"]``.
- NEXT_STEP (gymnasium's default): the done step returns the true last obs, and the *following*
  ``step`` ignores the action and returns the reset obs with reward 0. Recording that step would
  add a fake transition, so it is skipped: right after a done step the ended envs are reset
  explicitly with ``reset(options={"reset_mask": done})`` (which also clears the vector env's
  pending autoreset), giving same-step semantics without the fake transition.
- DISABLED: handled like NEXT_STEP (the envs are reset with ``reset_mask``).

The original records the obs returned with ``done`` as the episode's last obs and treats the env as
if it had reset in the same step (amago/envs/amago_env.py:281-292 at 2d85600), so a truncated
episode bootstrapped from the next episode's first obs; ``StepResult.final`` holds the true one here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from amago_pl.envs.action_spaces import ActionAdapter, rl2_space_for
from amago_pl.envs.amago_env import OBS_KEY, default_env_name, dict_observation_space
from amago_pl.envs.vector import ParallelEnvs
from amago_pl.envs.watchdog import (
    DEFAULT_HANG_TIMEOUT,
    call_with_time_limit,
    check_hang_timeout,
    hang_message,
)
from amago_pl.types import StepResult, Timestep

_MISSING = object()


def vector_attr(env: VectorEnv, name: str, default: Any = _MISSING) -> Any:
    """Find ``name`` on a vector env or any vector wrapper below it (vector wrappers do not forward)."""
    e: Any = env
    while e is not None:
        if name in vars(e) or hasattr(type(e), name):
            return getattr(e, name)
        e = e.env if isinstance(e, VectorWrapper) else None
    if default is _MISSING:
        raise AttributeError(f"{type(env).__name__} has no attribute {name!r} on any wrapper level")
    return default


def unbatch_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s entries of a gymnasium vector info dict (``key`` + ``_key`` mask layout)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        out[key] = unbatch_info(value, i) if isinstance(value, dict) else value[i]
    return out


class AMAGOVectorEnv(VectorWrapper):
    """``AMAGOEnv``'s normalisation for a vector env: dict observations and policy-space actions.

    ``single_action_space`` is the policy's space; ``step`` takes (N,) indices or (N, A) policy
    actions. ``infos["final_obs"]`` entries (SAME_STEP mode) are converted to dicts as well.
    """

    def __init__(self, env: VectorEnv, env_name: str | None = None):
        super().__init__(env)
        self.action_adapter = ActionAdapter(env.single_action_space)
        self._obs_is_dict = isinstance(env.single_observation_space, gym.spaces.Dict)
        self.single_observation_space = dict_observation_space(env.single_observation_space)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self.single_action_space = self.action_adapter.policy_space
        self.action_space = batch_space(self.single_action_space, env.num_envs)
        self.rl2_space = rl2_space_for(self.action_adapter.action_dim)
        self._env_name = env_name
        self._spec_names: list[str] | None = None

    @property
    def discrete(self) -> bool:
        return self.action_adapter.discrete

    @property
    def action_dim(self) -> int:
        return self.action_adapter.action_dim

    @property
    def env_name(self) -> str:
        if self._env_name is not None:
            return self._env_name
        name = vector_attr(self.env, "env_name", None)
        if name is not None:
            return str(name)
        spec = self.env.spec
        return spec.id if spec is not None else type(self.env.unwrapped).__name__

    def env_names(self) -> list[str]:
        """(N,) current episode names.

        In order: the name given here; the vector env's own ``env_names`` (list or method) for
        multi-task vector envs; each sub-env's ``env_name``/spec id for ``SyncVectorEnv``; the
        sub-env spec ids of other gymnasium vector envs (asking an ``AsyncVectorEnv`` for a missing
        attribute would shut its workers down, so only ``spec`` is queried there); else one name.
        """
        if self._env_name is not None:
            return [self._env_name] * self.num_envs
        names = vector_attr(self.env, "env_names", None)
        if names is not None:
            names = names() if callable(names) else names
            return [str(n) for n in names]
        base = self.env.unwrapped
        if isinstance(base, SyncVectorEnv):
            return [default_env_name(e) for e in base.envs]
        if self._spec_names is None and callable(getattr(base, "get_attr", None)):
            specs = base.get_attr("spec")
            self._spec_names = [s.id for s in specs] if all(s is not None for s in specs) else []
        return list(self._spec_names) if self._spec_names else [self.env_name] * self.num_envs

    def _wrap(self, obs: Any) -> dict[str, Any]:
        return obs if self._obs_is_dict else {OBS_KEY: obs}

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._wrap(obs), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        env_actions = self.action_adapter.to_env_batch(np.asarray(actions))
        obs, rewards, terminated, truncated, infos = self.env.step(env_actions)
        if "final_obs" in infos:
            infos = dict(infos)
            final = np.array(infos["final_obs"], dtype=object, copy=True)
            for i, o in enumerate(final):
                if o is not None:
                    final[i] = self._wrap(o)
            infos["final_obs"] = final
        return self._wrap(obs), rewards, terminated, truncated, infos


def _rows(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in obs.items()}


class VectorizedParallelEnvs(ParallelEnvs):
    """``ParallelEnvs`` over one vector env (see the module doc for the autoreset handling)."""

    def __init__(
        self,
        venv: VectorEnv,
        num_envs: int,
        seed: int | None = None,
        check_finite: bool = True,
        hang_timeout: float | None = DEFAULT_HANG_TIMEOUT,
    ):
        if getattr(venv, "vector_env", None) is not None:  # AMAGOEnv(vector_env, batched_envs=N)
            venv = AMAGOVectorEnv(venv.vector_env, env_name=venv.env_name)
        if not isinstance(venv, VectorEnv):
            raise TypeError(
                f"mode='already_vectorized' needs make_env to return a gymnasium VectorEnv, got {type(venv).__name__}"
            )
        if venv.num_envs != num_envs:
            raise ValueError(f"the vector env has {venv.num_envs} envs but num_envs={num_envs}")
        super().__init__(num_envs, check_finite)
        self.venv = venv if isinstance(venv, AMAGOVectorEnv) else AMAGOVectorEnv(venv)
        mode = self.venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode
        self.seed = seed
        self._seeded = False
        self.hang_timeout = check_hang_timeout(hang_timeout)
        self._set_spaces(
            {
                "observation_space": self.venv.single_observation_space,
                "action_space": self.venv.single_action_space,
                "rl2_space": self.venv.rl2_space,
                "discrete": self.venv.discrete,
                "action_dim": self.venv.action_dim,
            }
        )
        self._obs: dict[str, np.ndarray] = {}
        self._rl2s = np.zeros((num_envs, 1 + self.action_dim), dtype=np.float32)  # (N, 1 + A)
        self._time_idxs = np.zeros(num_envs, dtype=np.int64)  # (N,)
        self._names = [""] * num_envs

    def _current(self) -> Timestep:
        return Timestep(obs=_rows(self._obs), rl2s=self._rl2s.copy(), time_idxs=self._time_idxs.copy())

    def _timed(self, call: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` under ``hang_timeout`` (watchdog.call_with_time_limit: a main-thread timer, as
        for sync envs; code that never returns to the interpreter is not interrupted)."""
        who = f"the vector env {type(getattr(self.venv, 'env', self.venv)).__name__!r}"
        note = " (env_mode='already_vectorized')"
        return call_with_time_limit(
            fn, self.hang_timeout, lambda: hang_message(who, f"{call}()", self.hang_timeout, note)
        )

    def reset(self) -> Timestep:
        # gymnasium seeds sub-env i with seed + i when given an int seed.
        seed = None if self._seeded else self.seed
        self._seeded = True
        obs, _ = self._timed("reset", lambda: self.venv.reset(seed=seed))
        self._obs = _rows(obs)
        self._rl2s[:] = 0.0
        self._time_idxs[:] = 0
        self._names = self.venv.env_names()
        ts = self._current()
        self._validate(ts, self._names, "reset")
        return ts

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions)
        step_names = list(self._names)
        obs, rewards, terminated, truncated, infos = self._timed("step", lambda: self.venv.step(actions))
        self.steps += 1
        rewards = np.asarray(rewards, dtype=np.float32)  # (N,)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated  # (N,)
        obs = _rows(obs)
        rl2s = np.concatenate(
            [rewards[:, None], self.venv.action_adapter.rep_batch(actions)], axis=1
        )  # (N, 1+A)
        time_idxs = self._time_idxs + 1  # (N,)
        step_infos = [unbatch_info(infos, i) for i in range(self.num_envs)]
        final_obs = _rows(obs)
        next_obs = obs
        if done.any():
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                # The returned obs already starts the next episode; the true last obs is in infos.
                final_info = infos.get("final_info", {})
                for i in np.flatnonzero(done):
                    for k, v in infos["final_obs"][i].items():
                        final_obs[k][i] = v
                    step_infos[i] = unbatch_info(final_info, i) if final_info else {}
            else:
                # NEXT_STEP / DISABLED: the returned obs is the true last obs; reset the ended envs
                # now instead of letting the next step() do it (that step would be a fake transition).
                mask = done.copy()
                reset_obs, _ = self._timed("reset", lambda: self.venv.reset(options={"reset_mask": mask}))
                for k in next_obs:
                    next_obs[k][done] = np.asarray(reset_obs[k])[done]
        final = Timestep(obs=final_obs, rl2s=rl2s.copy(), time_idxs=time_idxs.copy())
        self._validate(final, step_names, "step", rewards)
        self._obs = next_obs
        self._rl2s = np.where(done[:, None], 0.0, rl2s).astype(np.float32)
        self._time_idxs = np.where(done, 0, time_idxs).astype(np.int64)
        if done.any():
            self._names = self.venv.env_names()
        nxt = self._current()
        self._validate(nxt, self._names, "reset")
        return StepResult(
            next=nxt,
            final=final,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            env_names=step_names,
            infos=step_infos,
            dropped=np.zeros(self.num_envs, dtype=bool),
        )

    def close(self) -> None:
        self.venv.close()
