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

Hangs and deaths (``watchdog.py``): the parent waits at most ``hang_timeout`` seconds for each
answer, then kills the worker and raises ``EnvTimeoutError`` naming the env that was inside
``reset``/``step`` (read from a shared-memory cell the worker's ``MarkCurrentEnv`` writes). A
worker that exits (killed, segfault, OOM) is reported as ``EnvWorkerDiedError``, "async env
worker N died (killed by SIGKILL)", with its envs' names, whether the parent notices it while
sending or while waiting. Workers exit on their own when the parent process dies.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX, default_env_name
from amago_pl.envs.env_group import EnvGroup, GroupReset, GroupStep
from amago_pl.envs.vector import GroupedParallelEnvs
from amago_pl.envs.watchdog import (
    DEFAULT_HANG_TIMEOUT,
    EnvTimeoutError,
    EnvWorkerDiedError,
    busy_env,
    check_hang_timeout,
    describe_exit,
    exit_with_parent,
    hang_message,
    marked_factories,
)

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 5.0
_POLL_S = 0.2  # how often a waiting parent checks that the worker is alive


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
    cell: Any = None,
    parent_pid: int | None = None,
    kernel_signal: bool = False,
) -> None:
    """Worker loop: build the group, then answer reset/step/close commands until closed."""
    if parent_end is not None:
        parent_end.close()  # forked copy of the parent's end; keeping it would hide the parent's exit
    # forkserver: our parent is the server, which exits with the run; use whoever it is now.
    exit_with_parent(parent_pid or os.getppid(), kernel_signal)
    try:
        fns = factories.fns
        if cell is not None:
            fns = marked_factories(fns, indices, cell)
        _sync_gin(gin_config)
        group = EnvGroup(fns, indices, seeds, failure_window)
        names = [default_env_name(slot.env) for slot in group.slots]
        conn.send(("ready", (group.spaces(), names)))
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
    """Envs in subprocess workers; see the module doc for start methods, gin, hangs and deaths."""

    def __init__(
        self,
        factories: Sequence[Callable],
        seed: int | None = None,
        mp_context: str | None = None,
        envs_per_worker: int | None = None,
        failure_window: int = 100,
        check_finite: bool = True,
        hang_timeout: float | None = DEFAULT_HANG_TIMEOUT,
    ):
        n = len(factories)
        per = envs_per_worker or math.ceil(n / default_num_workers(n))
        if per < 1:
            raise ValueError(f"envs_per_worker must be >= 1, got {envs_per_worker}")
        bounds = [(a, min(a + per, n)) for a in range(0, n, per)]
        super().__init__(n, bounds, check_finite)
        self.hang_timeout = check_hang_timeout(hang_timeout)
        self.mp_context = mp_context or default_mp_context()
        ctx = mp.get_context(self.mp_context)
        import gin

        gin_config = gin.config_str()
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        self._cells: list[Any] = []
        self._names: list[list[str]] = [["?"] * (b - a) for a, b in bounds]
        self._failed: dict[int, BaseException] = {}  # workers that died or were killed after a hang
        self._closed = False
        parent_pid = os.getpid() if self.mp_context != "forkserver" else None
        main_thread = threading.current_thread() is threading.main_thread()
        for w, (a, b) in enumerate(bounds):
            parent_conn, child_conn = ctx.Pipe()
            cell = ctx.Array("q", [-1, 0], lock=False)  # [env index, call] in progress (watchdog.py)
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
                    cell,
                    parent_pid,
                    main_thread,
                ),
                daemon=True,
            )
            proc.start()
            child_conn.close()
            self._conns.append(parent_conn)
            self._procs.append(proc)
            self._cells.append(cell)
        try:
            ready = [self._recv(w, expect="ready", call="construction") for w in range(len(bounds))]
        except BaseException:
            self.close()
            raise
        infos = [info for info, _ in ready]
        self._names = [list(names) for _, names in ready]
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

    def worker_pids(self) -> list[int]:
        return [int(p.pid) for p in self._procs]

    def _envs_of(self, w: int) -> str:
        """Like "env 1 ('TMaze')" or "envs 2 ('A'), 3 ('B')"; "envs 2..3" before they are built."""
        a, b = self._bounds[w]
        if "?" in self._names[w]:
            return f"envs {a}..{b - 1}"
        envs = ", ".join(f"{i} ({name!r})" for i, name in zip(range(a, b), self._names[w]))
        return f"env{'s' if b - a > 1 else ''} {envs}"

    def _describe(self, w: int) -> str:
        return f"async env worker {w} ({self._envs_of(w)})"

    # ------------------------------------------------------------------ failures
    def _died(self, w: int, call: str) -> EnvWorkerDiedError:
        proc = self._procs[w]
        proc.join(timeout=1.0)  # let the exit status arrive
        error = EnvWorkerDiedError(
            f"async env worker {w} died ({describe_exit(proc.exitcode)}) during {call}; it hosted "
            f"{self._envs_of(w)}. Usual causes: the env crashed the interpreter (segfault), the OOM "
            "killer (SIGKILL), or a kill from outside. env_mode='sync' runs the env in this process "
            "and shows its own error."
        )
        self._failed.setdefault(w, error)
        return error

    def _hung(self, w: int, call: str) -> EnvTimeoutError:
        busy = busy_env(self._cells[w])
        a, _ = self._bounds[w]
        if busy is not None:
            index, what = busy
            who, what = f"env {index} ({self._names[w][index - a]!r})", f"{what}()"
        else:  # construction, or the worker's own code between env calls
            who, what = self._describe(w), call
        proc = self._procs[w]
        proc.kill()  # a hung env ignores polite requests; its episode state is lost anyway
        proc.join(timeout=_CLOSE_TIMEOUT_S)
        error = EnvTimeoutError(
            hang_message(who, what, self.hang_timeout, f" (async env worker {w}, pid {proc.pid}, now killed)")
        )
        self._failed.setdefault(w, error)
        return error

    def _recv(self, w: int, expect: str = "ok", call: str = "step") -> Any:
        conn, proc = self._conns[w], self._procs[w]
        deadline = None if self.hang_timeout is None else time.monotonic() + self.hang_timeout
        while True:
            wait = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic()))
            try:
                if conn.poll(wait):
                    status, payload = conn.recv()
                    break
            except (EOFError, OSError) as e:  # the worker's end closed: it exited
                raise self._died(w, call) from e
            if not proc.is_alive() and not conn.poll(0):
                raise self._died(w, call)
            if deadline is not None and time.monotonic() >= deadline:
                raise self._hung(w, call)
        if status == "error":
            raise RuntimeError(f"{self._describe(w)} raised:\n{payload}")
        if status != expect:
            raise RuntimeError(f"{self._describe(w)} sent {status!r}, expected {expect!r}")
        return payload

    def _broadcast(self, cmd: str, chunks: Sequence[Any] | None = None) -> list[Any]:
        if self._closed:
            raise RuntimeError("these parallel envs are closed")
        if self._failed:  # a worker is gone: these envs cannot continue
            raise self._failed[min(self._failed)]
        errors: list[BaseException] = []
        # Send to every worker first so they all work at once, then collect.
        sent = []
        for w, conn in enumerate(self._conns):
            try:
                conn.send((cmd, None if chunks is None else chunks[w]))
                sent.append(w)
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError) as e:
                died = self._died(w, cmd)
                died.__cause__ = e
                errors.append(died)
        results = []
        for w in sent:
            # Read every answer even after an error, so the pipes stay in step.
            try:
                results.append(self._recv(w, call=cmd))
            except (RuntimeError, TimeoutError) as e:
                errors.append(e)
        if errors:
            raise errors[0]
        return results

    def _run_reset(self) -> list[GroupReset]:
        parts = self._broadcast("reset")
        self._names = [list(p.env_names) for p in parts]
        return parts

    def _run_step(self, chunks: list[np.ndarray]) -> list[GroupStep]:
        parts = self._broadcast("step", chunks)
        self._names = [list(p.next.env_names) for p in parts]
        return parts

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for w, conn in enumerate(self._conns):
            if w in self._failed:
                continue
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for w, (conn, proc) in enumerate(zip(self._conns, self._procs)):
            try:
                if w not in self._failed and conn.poll(_CLOSE_TIMEOUT_S):
                    conn.recv()
            except (EOFError, OSError):
                pass
            proc.join(timeout=_CLOSE_TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=1.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=1.0)
            conn.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: best effort only
            pass
