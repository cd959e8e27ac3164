"""``make_parallel_envs``: the one entry point that builds N parallel envs in a chosen mode.

Its own file so that ``vector.py`` (the base classes) never imports the subclasses built here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from amago_pl.envs.already_vectorized import VectorizedParallelEnvs
from amago_pl.envs.async_envs import AsyncParallelEnvs
from amago_pl.envs.vector import ParallelEnvs, SyncParallelEnvs
from amago_pl.envs.watchdog import DEFAULT_HANG_TIMEOUT

# The env modes of Experiment(env_mode=...), the CLI and make_parallel_envs(mode=...).
MODES = ("sync", "async", "already_vectorized")


def as_factories(make_env: Callable | Sequence[Callable], num_envs: int) -> list[Callable]:
    """One callable repeated ``num_envs`` times, or a list of exactly ``num_envs`` callables."""
    if callable(make_env):
        return [make_env] * num_envs
    factories = list(make_env)
    if len(factories) != num_envs:
        raise ValueError(f"got {len(factories)} env factories for num_envs={num_envs}")
    if not all(callable(f) for f in factories):
        raise TypeError("make_env must be a callable or a list of callables")
    return factories


def make_parallel_envs(
    make_env: Callable | Sequence[Callable],
    num_envs: int,
    mode: str = "async",
    seed: int | None = None,
    mp_context: str | None = None,
    *,
    envs_per_worker: int | None = None,
    failure_window: int = 100,
    check_finite: bool = True,
    hang_timeout: float | None = DEFAULT_HANG_TIMEOUT,
) -> ParallelEnvs:
    """Build ``num_envs`` parallel envs.

    Args:
        make_env: a callable returning an ``AMAGOEnv`` (plain gymnasium envs are wrapped), or a
            list of ``num_envs`` callables. For ``"already_vectorized"``: one callable returning a
            ``gymnasium.vector.VectorEnv`` with ``num_envs`` sub-envs.
        num_envs: number of parallel envs N.
        mode: ``"sync"``, ``"async"`` or ``"already_vectorized"``.
        seed: env i is seeded with ``seed + i`` at its first reset (None: unseeded).
        mp_context: multiprocessing start method of async workers (default: "fork" on Linux,
            "spawn" elsewhere; see ``async_envs.py``).
        envs_per_worker: async only; envs hosted by each worker process (default: spread the
            envs over at most ``2 * cpu_count`` workers).
        failure_window: a second failure of the same env within this many of its steps raises.
        check_finite: raise a ValueError on NaN/inf observations or rewards.
        hang_timeout: seconds an env's construction, ``reset`` or ``step`` may take before
            ``EnvTimeoutError`` names it (None: wait forever); sync and async modes (see
            ``watchdog.py``); an ``"already_vectorized"`` env's ``reset``/``step`` are timed as one
            call each, like sync envs.
    """
    if mode not in MODES:
        raise ValueError(f"unknown env mode {mode!r}; choose one of {MODES}")
    if mode == "already_vectorized":
        if not callable(make_env):
            raise TypeError("mode='already_vectorized' takes a single callable that builds one VectorEnv")
        return VectorizedParallelEnvs(
            make_env(), num_envs, seed=seed, check_finite=check_finite, hang_timeout=hang_timeout
        )
    factories = as_factories(make_env, num_envs)
    if mode == "sync":
        return SyncParallelEnvs(
            factories,
            seed=seed,
            failure_window=failure_window,
            check_finite=check_finite,
            hang_timeout=hang_timeout,
        )
    return AsyncParallelEnvs(
        factories,
        seed=seed,
        mp_context=mp_context,
        envs_per_worker=envs_per_worker,
        failure_window=failure_window,
        check_finite=check_finite,
        hang_timeout=hang_timeout,
    )
