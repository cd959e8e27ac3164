"""``make_parallel_envs``: N envs stepped together, returning ``Timestep``/``StepResult``.

Modes (see docs/architecture.md, "Envs"):

- ``"sync"``: every env in this process, stepped in a loop (``SyncParallelEnvs``).
- ``"async"``: envs in worker processes over pipes (``AsyncParallelEnvs``, ``async_envs.py``).
- ``"already_vectorized"``: one ``gymnasium.vector.VectorEnv`` built by ``make_env``
  (``VectorizedParallelEnvs``, ``already_vectorized.py``).

All modes use same-step autoreset: ``StepResult.next`` already starts the new episode (rl2 zeros,
time index 0) and ``StepResult.final`` holds the true last timestep of an ended episode. Env i
is seeded with ``seed + i`` at its first reset.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from amago_pl.envs.amago_env import default_env_name
from amago_pl.envs.env_group import EnvFailure, EnvGroup, GroupReset, GroupStep
from amago_pl.envs.watchdog import (
    DEFAULT_HANG_TIMEOUT,
    busy_env,
    call_with_time_limit,
    check_hang_timeout,
    hang_message,
    marked_factories,
    new_cell,
)
from amago_pl.types import StepResult, Timestep

log = logging.getLogger(__name__)


class ParallelEnvs(ABC):
    """N envs behind one batched interface (see module doc)."""

    num_envs: int
    single_observation_space: spaces.Dict
    single_action_space: spaces.Space
    rl2_space: spaces.Box
    discrete: bool
    action_dim: int

    def __init__(self, num_envs: int, check_finite: bool = True):
        self.num_envs = int(num_envs)
        self.check_finite = check_finite
        self.restarts = 0  # envs rebuilt after raising
        self.steps = 0  # step() calls so far

    def _set_spaces(self, info: dict[str, Any]) -> None:
        self.single_observation_space = info["observation_space"]
        self.single_action_space = info["action_space"]
        self.rl2_space = info["rl2_space"]
        self.discrete = bool(info["discrete"])
        self.action_dim = int(info["action_dim"])

    @abstractmethod
    def reset(self) -> Timestep: ...

    @abstractmethod
    def step(self, actions: np.ndarray) -> StepResult: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ParallelEnvs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ validation
    def _validate(
        self, ts: Timestep, names: Sequence[str], what: str, rewards: np.ndarray | None = None
    ) -> None:
        """Raise a ValueError naming the env, key and step for NaN/inf observations or rewards."""
        if not self.check_finite:
            return
        for key, arr in ts.obs.items():
            if not np.issubdtype(arr.dtype, np.floating):
                continue
            bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)  # (N,)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"env {i} ({names[i]!r}) returned a non-finite {what} observation in key {key!r} at "
                    f"step {self.steps}: {arr[i]!r}"
                )
        if rewards is not None and not np.isfinite(rewards).all():
            i = int(np.flatnonzero(~np.isfinite(rewards))[0])
            raise ValueError(
                f"env {i} ({names[i]!r}) returned a non-finite reward {rewards[i]!r} at step {self.steps}"
            )


def _concat_ts(parts: Sequence[GroupReset]) -> tuple[Timestep, list[str]]:
    obs = {k: np.concatenate([p.obs[k] for p in parts]) for k in parts[0].obs}
    ts = Timestep(
        obs=obs,
        rl2s=np.concatenate([p.rl2s for p in parts]),
        time_idxs=np.concatenate([p.time_idxs for p in parts]),
    )
    return ts, [n for p in parts for n in p.env_names]


class GroupedParallelEnvs(ParallelEnvs):
    """Shared parent-side logic of modes whose envs live in ``EnvGroup``s (sync and async).

    Subclasses send the per-group work with ``_run_reset``/``_run_step``; this class merges the
    groups, validates the arrays and turns env failures into restart counts or a RuntimeError.
    """

    def __init__(self, num_envs: int, bounds: Sequence[tuple[int, int]], check_finite: bool = True):
        super().__init__(num_envs, check_finite)
        self._bounds = list(bounds)  # (start, end) env indices of each group

    @abstractmethod
    def _run_reset(self) -> list[GroupReset]: ...

    @abstractmethod
    def _run_step(self, chunks: list[np.ndarray]) -> list[GroupStep]: ...

    def _handle_failures(self, failures: list[EnvFailure]) -> None:
        for f in failures:
            if f.fatal:
                raise RuntimeError(
                    f"env {f.index} ({f.env_name!r}) failed again within its failure window; giving up. "
                    f"Its traceback:\n{f.traceback}"
                )
            self.restarts += 1
            log.warning(
                "env %d (%r) raised and was rebuilt (restart #%d; the episode is dropped):\n%s",
                f.index,
                f.env_name,
                self.restarts,
                f.traceback,
            )

    def reset(self) -> Timestep:
        parts = self._run_reset()
        self._handle_failures([f for p in parts for f in p.failures])
        ts, names = _concat_ts(parts)
        self._validate(ts, names, "reset")
        return ts

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"expected actions for {self.num_envs} envs, got shape {actions.shape}")
        parts = self._run_step([actions[a:b] for a, b in self._bounds])
        self.steps += 1
        self._handle_failures([f for p in parts for f in p.failures])
        nxt, next_names = _concat_ts([p.next for p in parts])
        final, _ = _concat_ts([p.final for p in parts])
        names = [n for p in parts for n in p.env_names]
        rewards = np.concatenate([p.rewards for p in parts])
        self._validate(final, names, "step", rewards)
        self._validate(nxt, next_names, "reset")
        return StepResult(
            next=nxt,
            final=final,
            rewards=rewards,
            terminated=np.concatenate([p.terminated for p in parts]),
            truncated=np.concatenate([p.truncated for p in parts]),
            env_names=names,
            infos=[i for p in parts for i in p.infos],
            dropped=np.concatenate([p.dropped for p in parts]),
        )


class SyncParallelEnvs(GroupedParallelEnvs):
    """All envs in this process (one ``EnvGroup``). Easiest to debug; no parallelism.

    Each ``reset``/``step`` of the group runs under ``hang_timeout`` (see ``watchdog.py`` for how,
    and for the one case it cannot interrupt).
    """

    def __init__(
        self,
        factories: Sequence[Callable],
        seed: int | None = None,
        failure_window: int = 100,
        check_finite: bool = True,
        hang_timeout: float | None = DEFAULT_HANG_TIMEOUT,
    ):
        n = len(factories)
        super().__init__(n, [(0, n)], check_finite)
        self.hang_timeout = check_hang_timeout(hang_timeout)
        seeds = [None if seed is None else seed + i for i in range(n)]
        self._cell = new_cell()
        marked = marked_factories(list(factories), list(range(n)), self._cell)
        self.group = call_with_time_limit(
            lambda: EnvGroup(marked, list(range(n)), seeds, failure_window),
            self.hang_timeout,
            lambda: hang_message(f"building the {n} sync envs", "their factories", self.hang_timeout),
        )
        self._set_spaces(self.group.spaces())

    def _overrun(self) -> str:
        busy = busy_env(self._cell)
        if busy is None:  # between env calls (e.g. rebuilding a crashed env)
            return hang_message("the sync envs", "their reset/step", self.hang_timeout)
        index, call = busy
        name = default_env_name(self.group.slots[index].env)
        return hang_message(f"env {index} ({name!r})", f"{call}()", self.hang_timeout, " (env_mode='sync')")

    def _run_reset(self) -> list[GroupReset]:
        return [call_with_time_limit(self.group.reset, self.hang_timeout, self._overrun)]

    def _run_step(self, chunks: list[np.ndarray]) -> list[GroupStep]:
        return [call_with_time_limit(lambda: self.group.step(chunks[0]), self.hang_timeout, self._overrun)]

    def close(self) -> None:
        self.group.close()
