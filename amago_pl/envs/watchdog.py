"""Hang limits for envs: no ``reset``/``step`` may block a run forever without a message.

One setting, ``hang_timeout`` (seconds, default ``DEFAULT_HANG_TIMEOUT``; None waits forever), is
spelled the same in ``Experiment(hang_timeout=...)``, the amago-pl YAML (``run.hang_timeout``,
``--run.hang_timeout``), gin (``Experiment.hang_timeout``) and ``make_parallel_envs``.

- Which env is busy: every env is wrapped in ``MarkCurrentEnv``, which writes its index and the
  call ("reset"/"step") into a small cell before calling it. In async mode the cell is shared
  memory, so the parent names the hung env although the worker cannot answer.
- Sync mode: ``call_with_time_limit`` arms ``signal.setitimer`` on the main thread (the handler
  raises inside the env's Python code); off the main thread, or without ``setitimer``
  (Windows), the call runs in a helper thread that is abandoned when it overruns. Limitation: an
  env stuck inside C code that never returns to the interpreter is not interrupted on the main
  thread; ``env_mode="async"`` has no such limit (the parent kills the worker).
- Async workers exit when their parent dies (``exit_with_parent``): a thread polls
  ``os.getppid()``, and on Linux the kernel also sends SIGKILL (``PR_SET_PDEATHSIG``) when the
  creating thread is the main thread. Without this a SIGKILLed run leaves workers behind that
  sit in a hung env forever (issue 21, item 9).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, MutableSequence
from typing import Any

import gymnasium as gym

from amago_pl.envs.env_group import ensure_amago_env

DEFAULT_HANG_TIMEOUT = 600.0  # seconds; generous for slow simulators, short enough to notice a hang

HOW_TO_RAISE = (
    "If the env is only slow, raise the limit: Experiment(hang_timeout=SECONDS), "
    "--run.hang_timeout SECONDS (amago-pl), gin 'Experiment.hang_timeout = SECONDS' or "
    "make_parallel_envs(..., hang_timeout=SECONDS); hang_timeout=None waits forever."
)

CALLS = ("", "reset", "step")  # cell[1] codes: 0 = not inside an env call


class EnvTimeoutError(TimeoutError):
    """An env's ``reset``/``step`` (or its construction) overran ``hang_timeout``."""


class EnvWorkerDiedError(RuntimeError):
    """An async env worker process exited (killed, crashed) while the parent needed it."""


def check_hang_timeout(value: Any, where: str = "hang_timeout") -> float | None:
    """``value`` as seconds (None: no limit); a clear ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{where}={value!r} must be a number of seconds > 0, or None to wait forever")
    return None if value == float("inf") else float(value)


def new_cell() -> list[int]:
    """[env index, call code] of the env call in progress (in-process version)."""
    return [-1, 0]


class MarkCurrentEnv(gym.Wrapper):
    """Records ``(index, call)`` in ``cell`` around each ``reset``/``step`` of the wrapped env."""

    def __init__(self, env: gym.Env, index: int, cell: MutableSequence[int]):
        super().__init__(env)
        self._index = index
        self._cell = cell

    def reset(self, **kwargs: Any) -> Any:
        self._cell[0], self._cell[1] = self._index, 1
        try:
            out = self.env.reset(**kwargs)
        except Exception:  # not BaseException: a timer's interrupt must leave the mark for the message
            self._cell[1] = 0
            raise
        self._cell[1] = 0
        return out

    def step(self, action: Any) -> Any:
        self._cell[0], self._cell[1] = self._index, 2
        try:
            out = self.env.step(action)
        except Exception:
            self._cell[1] = 0
            raise
        self._cell[1] = 0
        return out


class _MarkedFactory:
    """Picklable factory: the user's env (wrapped in ``AMAGOEnv`` if needed) inside ``MarkCurrentEnv``."""

    def __init__(self, factory: Callable, index: int, cell: MutableSequence[int]):
        self.factory, self.index, self.cell = factory, index, cell

    def __call__(self) -> gym.Env:
        return MarkCurrentEnv(ensure_amago_env(self.factory()), self.index, self.cell)


def marked_factories(
    factories: list[Callable], indices: list[int], cell: MutableSequence[int]
) -> list[Callable]:
    return [_MarkedFactory(f, i, cell) for f, i in zip(factories, indices)]


def busy_env(cell: MutableSequence[int]) -> tuple[int, str] | None:
    """(index, call) of the env call in progress, or None between env calls."""
    index, code = int(cell[0]), int(cell[1])
    return (index, CALLS[code]) if code and index >= 0 else None


def hang_message(who: str, call: str, timeout: float, note: str = "") -> str:
    return f"{who} did not return from {call} within hang_timeout={timeout:g} s{note}. {HOW_TO_RAISE}"


# ---------------------------------------------------------------------- sync mode
class _Overran(BaseException):
    """Raised by the timer inside the env. A BaseException, so ``EnvSlot.step``'s ``except
    Exception`` (crash recovery) does not swallow it and rebuild the env."""


def _alarm_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def call_with_time_limit(fn: Callable[[], Any], timeout: float | None, on_overrun: Callable[[], str]) -> Any:
    """``fn()``, raising ``EnvTimeoutError(on_overrun())`` if it runs longer than ``timeout`` s."""
    if timeout is None:
        return fn()
    if _alarm_usable():
        return _with_alarm(fn, timeout, on_overrun)
    return _with_thread(fn, timeout, on_overrun)


def _with_alarm(fn: Callable[[], Any], timeout: float, on_overrun: Callable[[], str]) -> Any:
    def fire(signum: int, frame: Any) -> None:
        raise _Overran

    previous = signal.signal(signal.SIGALRM, fire)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout)
    start = time.monotonic()
    try:
        return fn()
    except _Overran:
        raise EnvTimeoutError(on_overrun()) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay > 0:  # someone else's timer was pending: give it back what is left of it
            signal.setitimer(
                signal.ITIMER_REAL, max(old_delay - (time.monotonic() - start), 1e-3), old_interval
            )


def _with_thread(fn: Callable[[], Any], timeout: float, on_overrun: Callable[[], str]) -> Any:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread below
            box["error"] = e

    worker = threading.Thread(target=run, name="amago_pl-env-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():  # abandoned: the env keeps running in a daemon thread
        raise EnvTimeoutError(on_overrun())
    if "error" in box:
        raise box["error"]
    return box["value"]


# ---------------------------------------------------------------------- async workers
PARENT_POLL_S = 0.5


def exit_with_parent(parent_pid: int, kernel_signal: bool) -> None:
    """Make this worker process exit once ``parent_pid`` is no longer its parent."""
    if kernel_signal and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl: the polling thread below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)  # no cleanup: the parent that would read our answers is gone

    threading.Thread(target=watch, name="amago_pl-parent-watch", daemon=True).start()


def describe_exit(exitcode: int | None) -> str:
    """'killed by SIGKILL', 'exit code 1' or 'exit status unknown'."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
