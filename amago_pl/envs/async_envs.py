"""``mode="async"``: envs in worker processes, talking to the parent over ``multiprocessing`` pipes.

Each worker hosts an ``EnvGroup`` of several envs (``envs_per_worker``), so one round trip moves
a whole chunk of actions and results as numpy arrays. By default envs are spread over at most
``2 * cpu_count`` workers.

Start method: the default is "fork" on Linux because it starts workers in milliseconds and lets
unpicklable factories (lambdas, closures) work; workers only run numpy/gymnasium code, never
torch or CUDA, so forking a parent that has initialised them is safe in practice. Pass
``mp_context="forkserver"`` or ``"spawn"`` (the default elsewhere) when the parent holds state
that must not be forked; factories are then sent with cloudpickle when it is installed (plain
pickle otherwise, which needs module-level functions or ``functools.partial``).

gin: bindings are process-global and are not inherited by spawned/forkserver workers, so each
worker re-parses the parent's ``gin.config_str()`` before building its envs (unknown
configurables, e.g. the agent's, are skipped: workers only need the env bindings).
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX
from amago_pl.envs.env_group import EnvGroup, GroupReset, GroupStep
from amago_pl.envs.vector import GroupedParallelEnvs

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 5.0


def default_mp_context() -> str:
    methods = mp.get_all_start_methods()
    return "fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn"


def default_num_workers(num_envs: int) -> int:
    return max(1, min(num_envs, 2 * (os.cpu_count() or 1)))


class _Factories:
    """Env factories that pickle with cloudpickle (if available), so lambdas survive "spawn"."""

    def __init__(self, fns: Sequence[Callable]):
        self.fns = list(fns)

    def __getstate__(self) -> bytes:
        try:
            import cloudpickle
        except ImportError:
            return pickle.dumps(self.fns)
        return cloudpickle.dumps(self.fns)

    def __setstate__(self, state: bytes) -> None:
        self.fns = pickle.loads(state)


def _sync_gin(config: str) -> None:
    if not config:
        return
    import gin

    if gin.config_str() == config:
        return  # forked worker: the parent's bindings are already here
    import amago_pl.envs.builtin  # noqa: F401 - registers the builtin env configurables first

    gin.clear_config()
    gin.parse_config(config, skip_unknown=True)


def _picklable_infos(infos: list[dict]) -> list[dict]:
    """Fallback when an info dict cannot be pickled: keep only the entries that can."""
    out = []
    for info in infos:
        clean = {}
        for k, v in info.items():
            try:
                pickle.dumps(v)
                clean[k] = v
            except Exception:  # an unpicklable value is dropped; metrics are plain numbers
                if isinstance(k, str) and k.startswith(LOG_METRIC_PREFIX):
                    log.warning("dropping unpicklable metric %s", k)
        out.append(clean)
    return out


def _send_result(conn: Any, result: GroupReset | GroupStep) -> None:
    try:
        conn.send(("ok", result))
    except (pickle.PicklingError, TypeError, AttributeError):
        if not isinstance(result, GroupStep):
            raise
        result.infos = _picklable_infos(result.infos)
        conn.send(("ok", result))


def _worker_main(
    conn: Any,
    parent_end: Any,
    factories: _Factories,
    indices: list[int],
    seeds: list[int | None],
    failure_window: int,
    gin_config: str,
) -> None:
    """Worker loop: build the group, then answer reset/step/close commands until closed."""
    if parent_end is not None:
        parent_end.close()  # forked copy of the parent's end; keeping it would hide the parent's exit
    try:
        fns = factories.fns
        _sync_gin(gin_config)
        group = EnvGroup(fns, indices, seeds, failure_window)
        conn.send(("ready", group.spaces()))
    except Exception:
        conn.send(("error", traceback.format_exc()))
        conn.close()
        return
    while True:
        try:
            cmd, data = conn.recv()
        except (EOFError, KeyboardInterrupt, ConnectionResetError):
            break
        try:
            if cmd == "reset":
                _send_result(conn, group.reset())
            elif cmd == "step":
                _send_result(conn, group.step(data))
            elif cmd == "close":
                group.close()
                conn.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except (BrokenPipeError, ConnectionResetError):
            break
        except Exception:
            conn.send(("error", traceback.format_exc()))
    conn.close()


class AsyncParallelEnvs(GroupedParallelEnvs):
    """Envs in subprocess workers; see the module doc for start methods and gin."""

    def __init__(
        self,
        factories: Sequence[Callable],
        seed: int | None = None,
        mp_context: str | None = None,
        envs_per_worker: int | None = None,
        failure_window: int = 100,
        check_finite: bool = True,
    ):
        n = len(factories)
        per = envs_per_worker or math.ceil(n / default_num_workers(n))
        if per < 1:
            raise ValueError(f"envs_per_worker must be >= 1, got {envs_per_worker}")
        bounds = [(a, min(a + per, n)) for a in range(0, n, per)]
        super().__init__(n, bounds, check_finite)
        self.mp_context = mp_context or default_mp_context()
        ctx = mp.get_context(self.mp_context)
        import gin

        gin_config = gin.config_str()
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        self._closed = False
        for w, (a, b) in enumerate(bounds):
            parent_conn, child_conn = ctx.Pipe()
            seeds = [None if seed is None else seed + i for i in range(a, b)]
            proc = ctx.Process(
                target=_worker_main,
                name=f"amago_pl-env-worker-{w}",
                args=(
                    child_conn,
                    parent_conn if self.mp_context == "fork" else None,
                    _Factories(factories[a:b]),
                    list(range(a, b)),
                    seeds,
                    failure_window,
                    gin_config,
                ),
                daemon=True,
            )
            proc.start()
            child_conn.close()
            self._conns.append(parent_conn)
            self._procs.append(proc)
        try:
            infos = [self._recv(w, expect="ready") for w in range(len(bounds))]
        except BaseException:
            self.close()
            raise
        self._set_spaces(infos[0])
        for w, info in enumerate(infos[1:], start=1):
            if (
                info["observation_space"] != infos[0]["observation_space"]
                or info["action_space"] != infos[0]["action_space"]
            ):
                self.close()
                raise ValueError(
                    f"async envs {bounds[w][0]}..{bounds[w][1] - 1} have different spaces than env 0: "
                    f"{info['observation_space']} / {info['action_space']} vs "
                    f"{infos[0]['observation_space']} / {infos[0]['action_space']}"
                )

    @property
    def num_workers(self) -> int:
        return len(self._procs)

    def _describe(self, w: int) -> str:
        a, b = self._bounds[w]
        return f"async env worker {w} (envs {a}..{b - 1})"

    def _recv(self, w: int, expect: str = "ok") -> Any:
        try:
            status, payload = self._conns[w].recv()
        except (EOFError, ConnectionResetError, BrokenPipeError) as e:
            self._procs[w].join(timeout=1.0)
            raise RuntimeError(f"{self._describe(w)} died (exit code {self._procs[w].exitcode})") from e
        if status == "error":
            raise RuntimeError(f"{self._describe(w)} raised:\n{payload}")
        if status != expect:
            raise RuntimeError(f"{self._describe(w)} sent {status!r}, expected {expect!r}")
        return payload

    def _broadcast(self, cmd: str, chunks: Sequence[Any] | None = None) -> list[Any]:
        if self._closed:
            raise RuntimeError("these parallel envs are closed")
        # Send to every worker first so they all work at once, then collect.
        for w, conn in enumerate(self._conns):
            conn.send((cmd, None if chunks is None else chunks[w]))
        results, errors = [], []
        for w in range(len(self._conns)):
            # Read every answer even after an error, so the pipes stay in step.
            try:
                results.append(self._recv(w))
            except RuntimeError as e:
                errors.append(e)
        if errors:
            raise errors[0]
        return results

    def _run_reset(self) -> list[GroupReset]:
        return self._broadcast("reset")

    def _run_step(self, chunks: list[np.ndarray]) -> list[GroupStep]:
        return self._broadcast("step", chunks)

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for conn, proc in zip(self._conns, self._procs):
            try:
                if conn.poll(_CLOSE_TIMEOUT_S):
                    conn.recv()
            except (EOFError, OSError):
                pass
            proc.join(timeout=_CLOSE_TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=1.0)
            conn.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: best effort only
            pass
