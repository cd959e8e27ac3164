"""Stepping a group of ``AMAGOEnv``s with same-step autoreset, rl2 features and crash recovery.

One ``EnvGroup`` runs in-process for ``mode="sync"`` and one inside each worker process for
``mode="async"``, so both modes share exactly this logic. A group returns numpy arrays stacked
over its envs (``GroupReset``/``GroupStep``); the parent concatenates groups into a ``Timestep``
or ``StepResult``.

Crash recovery: when ``reset``/``step`` raises, the env is rebuilt from its factory and reset, the
step is reported with ``dropped=True`` (the episode is discarded) and the failure is returned to
the parent, which counts a restart. A second failure of the same env within ``failure_window`` of
its own steps is reported as fatal and the parent raises.

Output checks: an observation whose keys, shape or dtype contradict the env's observation space
raises ``EnvOutputError`` at once (naming the env, the key and the step). It is a bug in the env,
not a crash to retry, so it is never turned into a restart.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from amago_pl.envs.amago_env import AMAGOEnv, default_env_name

# A rebuilt env gets a new seed derived from the base seed so its episodes differ from the crashed ones.
_RESTART_SEED_STRIDE = 1_000_003


class EnvOutputError(ValueError):
    """An env returned an observation that does not fit its observation space."""


def _obs_spec(space: gym.spaces.Space) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{key: (shape, dtype)}`` of a Dict observation space's array-like subspaces."""
    if not isinstance(space, gym.spaces.Dict):
        return {}
    out = {}
    for key, sub in space.spaces.items():
        if isinstance(
            sub, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiBinary, gym.spaces.MultiDiscrete)
        ):
            out[key] = (tuple(sub.shape), np.dtype(sub.dtype))
    return out


def check_obs(
    obs: dict[str, np.ndarray], spec: dict[str, tuple[tuple[int, ...], np.dtype]], who: str, when: str
) -> None:
    """Raise ``EnvOutputError`` unless every key of ``spec`` is present with its shape and a
    compatible dtype (numeric or bool; no floats where the space holds integers)."""
    for key, (shape, dtype) in spec.items():
        if key not in obs:
            raise EnvOutputError(f"{who} returned no observation key {key!r} {when}; got keys {sorted(obs)}")
        arr = obs[key]
        problem = None
        if arr.shape != shape:
            problem = f"shape {arr.shape}, but its observation space has shape {shape}"
        elif not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            problem = f"dtype {arr.dtype} (not numeric)"
        elif np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(dtype, np.floating):
            problem = f"dtype {arr.dtype}, but its observation space holds {dtype}"
        if problem:
            raise EnvOutputError(
                f"{who} returned observation key {key!r} with {problem} {when}. Fix the env or its "
                "observation_space."
            )


@dataclass
class EnvFailure:
    index: int  # global env index
    env_name: str
    traceback: str
    fatal: bool


@dataclass
class GroupReset:
    obs: dict[str, np.ndarray]  # each (k, ...)
    rl2s: np.ndarray  # (k, 1 + A) float32
    time_idxs: np.ndarray  # (k,) int64
    env_names: list[str]  # (k,)
    failures: list[EnvFailure] = field(default_factory=list)


@dataclass
class GroupStep:
    next: GroupReset  # the timestep the policy sees next (a new episode where one ended)
    final: GroupReset  # the true last timestep of this step (before any reset)
    rewards: np.ndarray  # (k,) float32
    terminated: np.ndarray  # (k,) bool
    truncated: np.ndarray  # (k,) bool
    dropped: np.ndarray  # (k,) bool
    env_names: list[str]  # (k,) name of the episode each step belonged to
    infos: list[dict]  # (k,)
    failures: list[EnvFailure] = field(default_factory=list)


def ensure_amago_env(env: gym.Env) -> gym.Env:
    """Envs that do not expose ``rl2_space`` (i.e. no ``AMAGOEnv`` in the stack) get wrapped."""
    try:
        env.get_wrapper_attr("rl2_space")
        return env
    except AttributeError:
        return AMAGOEnv(env)


def _copy_obs(obs: dict[str, Any]) -> dict[str, np.ndarray]:
    # Envs may reuse (and later mutate) their obs buffers; the runner keeps its own copies.
    return {k: np.array(v, copy=True) for k, v in obs.items()}


class EnvSlot:
    """One env plus its running rl2 features, time index and episode name."""

    def __init__(self, factory: Callable[[], gym.Env], index: int, seed: int | None, failure_window: int):
        self.factory = factory
        self.index = index
        self.seed = seed
        self.failure_window = failure_window
        self.restarts = 0
        self.env_steps = 0  # lifetime steps of this env slot (the failure window counts these)
        self._last_failure_step: int | None = None
        self.env = self._build()
        self.obs_spec = _obs_spec(self.env.observation_space)
        self.rl2_dim = int(self.env.get_wrapper_attr("rl2_space").shape[0])
        self.obs: dict[str, np.ndarray] = {}
        self.rl2 = np.zeros(self.rl2_dim, dtype=np.float32)  # (1 + A,)
        self.time_idx = 0
        self.env_name = ""

    def _build(self) -> gym.Env:
        env = ensure_amago_env(self.factory())
        self._action_rep = env.get_wrapper_attr("action_rep")  # looked up once, used every step
        # Discrete actions have n possible representations: build each once. (env.step has already
        # validated the index; re-validating it for the rep was ~10% of a cheap env's rollout step.)
        # Only for small n: the cache holds up to n reps of n floats, 160 GB for Discrete(200000)
        # (issue 21 item 11 saw ~3 GB per 1,000 steps).
        small = env.get_wrapper_attr("discrete") and env.get_wrapper_attr("action_dim") <= 1024
        self._rep_cache: dict[int, np.ndarray] | None = {} if small else None
        return env

    def _name(self) -> str:
        return default_env_name(self.env)

    def _check(self, obs: dict[str, np.ndarray], when: str) -> None:
        who = f"env {self.index} ({self.env_name or default_env_name(self.env)!r})"
        check_obs(
            obs, self.obs_spec, who, f"{when} (env step {self.env_steps}, episode step {self.time_idx})"
        )

    def reset(self, seed: int | None) -> None:
        obs, _ = self.env.reset(seed=seed)
        obs = _copy_obs(obs)
        self.time_idx = 0
        self._check(obs, "at reset")
        self.obs = obs
        self.rl2 = np.zeros(self.rl2_dim, dtype=np.float32)
        self.time_idx = 0
        self.env_name = self._name()  # read after reset: multi-task envs rename per episode

    def current(self) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
        return self.obs, self.rl2, self.time_idx

    def recover(self, error: str) -> EnvFailure:
        """Rebuild and reset after an exception; says whether this failure is fatal."""
        name = self.env_name or "<not reset yet>"
        fatal = (
            self._last_failure_step is not None
            and self.env_steps - self._last_failure_step < self.failure_window
        )
        self._last_failure_step = self.env_steps
        self.restarts += 1
        try:
            self.env.close()
        except Exception:  # a crashed env may not close cleanly; it is discarded anyway
            pass
        try:
            self.env = self._build()
            seed = None if self.seed is None else self.seed + _RESTART_SEED_STRIDE * self.restarts
            self.reset(seed)
        except EnvOutputError:
            raise
        except Exception:  # reported to the parent as fatal
            fatal = True
            error = error + "\nwhile rebuilding the env:\n" + traceback.format_exc()
        return EnvFailure(self.index, name, error, fatal)

    def _rep(self, action: Any) -> np.ndarray:
        if self._rep_cache is None:
            return self._action_rep(action)
        key = int(np.asarray(action).reshape(-1)[0])
        rep = self._rep_cache.get(key)
        if rep is None:
            rep = self._rep_cache[key] = self._action_rep(action)
        return rep

    def step(self, action: Any) -> tuple[tuple, EnvFailure | None]:
        """Returns ``((final_obs, final_rl2, final_t, reward, terminated, truncated, name, info,
        dropped), failure)``; afterwards ``current()`` is the next timestep."""
        name = self.env_name
        prev_obs, prev_rl2, prev_t = self.obs, self.rl2, self.time_idx
        self.env_steps += 1
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
            obs = _copy_obs(obs)
            self._check(obs, "from step")
            rep = self._rep(action)  # (A,)
            rl2 = np.concatenate([np.asarray([reward], dtype=np.float32), rep.astype(np.float32)])  # (1 + A,)
            final = (obs, rl2, self.time_idx + 1)
            if terminated or truncated:
                self.reset(None)
            else:
                self.obs, self.rl2, self.time_idx = final
        except EnvOutputError:
            raise  # a broken env contract: report it, do not retry
        except Exception:  # any env error becomes a restart (see module doc)
            failure = self.recover(traceback.format_exc())
            out = (prev_obs, prev_rl2, prev_t, 0.0, False, False, name, {}, True)
            return out, failure
        out = (*final, float(reward), bool(terminated), bool(truncated), name, info, False)
        return out, None


def _stack(obs_list: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}


class EnvGroup:
    """Several ``EnvSlot``s stepped one after the other (in the parent or in one worker)."""

    def __init__(
        self,
        factories: Sequence[Callable[[], gym.Env]],
        indices: Sequence[int],
        seeds: Sequence[int | None],
        failure_window: int = 100,
    ):
        self.slots = [EnvSlot(f, i, s, failure_window) for f, i, s in zip(factories, indices, seeds)]
        self._seeded = False

    def spaces(self) -> dict[str, Any]:
        env = self.slots[0].env
        return {
            "observation_space": env.observation_space,
            "action_space": env.action_space,
            "rl2_space": env.get_wrapper_attr("rl2_space"),
            "discrete": bool(env.get_wrapper_attr("discrete")),
            "action_dim": int(env.get_wrapper_attr("action_dim")),
        }

    def _timestep(self) -> GroupReset:
        return GroupReset(
            obs=_stack([s.obs for s in self.slots]),
            rl2s=np.stack([s.rl2 for s in self.slots]).astype(np.float32),
            time_idxs=np.asarray([s.time_idx for s in self.slots], dtype=np.int64),
            env_names=[s.env_name for s in self.slots],
        )

    def reset(self) -> GroupReset:
        # Env i gets seed + i only at its first reset; later resets continue its own RNG stream.
        failures = []
        for slot in self.slots:
            seed = None if self._seeded else slot.seed
            try:
                slot.reset(seed)
            except EnvOutputError:
                raise
            except Exception:  # reported as a restart (or fatal)
                failures.append(slot.recover(traceback.format_exc()))
        self._seeded = True
        out = self._timestep()
        out.failures = failures
        return out

    def step(self, actions: np.ndarray) -> GroupStep:
        """``actions``: (k, ...) policy actions, one row per env of this group."""
        rows, failures = [], []
        for slot, action in zip(self.slots, actions):
            row, failure = slot.step(action)
            rows.append(row)
            if failure is not None:
                failures.append(failure)
        final_obs, final_rl2, final_t, rewards, term, trunc, names, infos, dropped = zip(*rows)
        final = GroupReset(
            obs=_stack(final_obs),
            rl2s=np.stack(final_rl2).astype(np.float32),
            time_idxs=np.asarray(final_t, dtype=np.int64),
            env_names=list(names),
        )
        return GroupStep(
            next=self._timestep(),
            final=final,
            rewards=np.asarray(rewards, dtype=np.float32),
            terminated=np.asarray(term, dtype=bool),
            truncated=np.asarray(trunc, dtype=bool),
            dropped=np.asarray(dropped, dtype=bool),
            env_names=list(names),
            infos=list(infos),
            failures=failures,
        )

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.slots)

    def close(self) -> None:
        for slot in self.slots:
            try:
                slot.env.close()
            except Exception:  # closing is best effort
                pass
