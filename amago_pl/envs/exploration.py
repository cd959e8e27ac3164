"""Exploration noise applied in the main process to the policy's batched actions.

Unlike the original (one ``gym.ActionWrapper`` per env process), one object serves all N
parallel envs, so its schedule, per-env multipliers and RNG are checkpoint state
(``state_dict``/``load_state_dict`` hold only plain Python values, safe for ``weights_only``
checkpoint loading).

Schedules count *calls*: one call = one step of every actor, as the original's wrapper counts its
own steps (one increment per call, amago/envs/exploration.py:218 at 2d85600). The call at count k
uses the epsilon of count k, then the count increases; ``current_eps()`` reports the epsilon the
next call will use.

The rollout callback builds a strategy as ``cls(action_space, num_envs)``: the env's single action
space and the number of parallel envs this process serves (``Experiment.parallel_actors``). Every
other argument is a gin keyword (docs/configuration.md).

Classes written for the original (an action wrapper built as ``cls(env)``, with
``add_exploration_noise(action, local_step)`` and/or ``current_eps(local_step)`` working on one
env's batch; amago/envs/exploration.py at 2d85600) run unchanged: built as ``cls(action_space,
num_envs)``, such a class becomes one instance per env behind a
:class:`~amago_pl.envs.per_env_exploration.PerEnvExploration` (see :func:`original_style`).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

import gin
import numpy as np
from gymnasium import spaces

log = logging.getLogger(__name__)

_EXPLORATIONS: dict[str, type[ExplorationWrapper]] = {}


def register_exploration(name: str) -> Callable[[type], type]:
    """Class decorator: make an exploration class available as ``get_exploration_cls(name)``."""

    def deco(cls: type) -> type:
        _EXPLORATIONS[name] = cls
        return cls

    return deco


# Strategies defined next to the env they were written for, imported on first use by name.
_LAZY_EXPLORATIONS = {"tmaze": "amago_pl.envs.builtin.tmaze_exploration"}


def get_exploration_cls(name: str) -> type[ExplorationWrapper]:
    if name not in _EXPLORATIONS and name in _LAZY_EXPLORATIONS:
        importlib.import_module(_LAZY_EXPLORATIONS[name])
    try:
        return _EXPLORATIONS[name]
    except KeyError:
        raise KeyError(f"unknown exploration {name!r}; registered: {sorted(_EXPLORATIONS)}") from None


def list_registered_explorations() -> list[str]:
    return sorted(set(_EXPLORATIONS) | set(_LAZY_EXPLORATIONS))


def linear_anneal(start: float, end: float, step: int, steps_anneal: int) -> float:
    """``start`` at step 0, ``end`` from ``steps_anneal`` on, linear in between."""
    frac = min(step / max(steps_anneal, 1), 1.0)
    return start + (end - start) * frac


def original_style(cls: type) -> bool:
    """True for exploration classes written against the original's API (see the module doc).

    Recognised by any of: an ``add_exploration_noise`` method; an ``__init__`` whose first argument
    is not ``action_space`` (the original's is the env); a ``current_eps`` override whose argument
    is named ``local_step``.
    """
    if callable(getattr(cls, "add_exploration_noise", None)):
        return True
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    if params and params[0] not in ("action_space", "args"):
        return True
    eps_params = list(inspect.signature(cls.current_eps).parameters)[1:]
    return bool(eps_params) and eps_params[0] == "local_step"


class ExplorationWrapper:
    """Base class: perturbs (N,) int64 or (N, A) float32 policy actions of N parallel envs.

    Subclasses implement ``epsilon(time_idxs) -> (N,)`` (before per-env multipliers) or override
    ``add_noise``. The RNG is a numpy ``Generator``; ``seed(s)`` makes it reproducible.

    ``action_space`` may also be an env (the original's signature, one env per instance): its
    ``action_space`` is used, ``num_envs`` defaults to its ``batched_envs`` (1), and ``self.env``
    keeps it.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # amago_pl builds every strategy as cls(action_space, num_envs); an original-style class
        # expects one env instead, so it gets one instance per env (envs/per_env_exploration.py).
        # (A __new__ rather than a metaclass __call__, so inspect.signature(cls) stays __init__'s.)
        if args and isinstance(args[0], spaces.Space) and original_style(cls):
            from amago_pl.envs.per_env_exploration import PerEnvExploration

            num_envs = args[1] if len(args) > 1 else kwargs.pop("num_envs", 1)
            return PerEnvExploration(cls, args[0], int(num_envs), *args[2:], **kwargs)
        return super().__new__(cls)

    def __init__(self, action_space: spaces.Space | Any, num_envs: int | None = None):
        self.env = None
        if not isinstance(action_space, spaces.Space) and hasattr(action_space, "action_space"):
            self.env = action_space
            action_space = self.env.action_space
            if num_envs is None:
                num_envs = int(getattr(self.env, "batched_envs", 1))
        if isinstance(action_space, spaces.Discrete):
            self.kind = "discrete"
        elif isinstance(action_space, spaces.MultiBinary):
            self.kind = "multibinary"
        elif isinstance(action_space, spaces.Box):
            self.kind = "continuous"
        else:
            raise ValueError(f"exploration does not support action space {action_space!r}")
        self.action_space = action_space
        self.num_envs = int(num_envs if num_envs is not None else 1)
        self.steps = 0  # calls so far (= steps of each actor)
        self.rng = np.random.default_rng()
        self._last_time_idxs = np.zeros(self.num_envs, dtype=np.int64)  # (N,)

    # The original's attribute names, for subclasses written against it.
    @property
    def batched_envs(self) -> int:
        return self.num_envs

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def global_step(self) -> int:
        return self.steps

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ schedule
    def epsilon(self, time_idxs: np.ndarray) -> np.ndarray:
        """(N,) exploration strength at the current schedule step, before per-env multipliers."""
        raise NotImplementedError(f"{type(self).__name__} must implement epsilon(time_idxs) or add_noise")

    def multipliers(self) -> np.ndarray:
        """(N,) per-env scale of epsilon (ones unless a subclass randomises it)."""
        return np.ones(self.num_envs, dtype=np.float64)

    def current_eps(self, time_idxs: np.ndarray | None = None) -> np.ndarray:
        """(N,) effective epsilon the next call would use (for logging)."""
        t = self._last_time_idxs if time_idxs is None else np.asarray(time_idxs).reshape(-1)
        return self.epsilon(t) * self.multipliers()

    # ------------------------------------------------------------------ acting
    def __call__(self, actions: np.ndarray, time_idxs: np.ndarray) -> np.ndarray:
        time_idxs = np.asarray(time_idxs).reshape(-1)  # (N,)
        self._last_time_idxs = time_idxs.astype(np.int64)
        eps = self.current_eps(time_idxs)  # (N,)
        out = self.add_noise(np.asarray(actions), eps)
        self.steps += 1
        return out

    def add_noise(self, actions: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Epsilon-greedy style noise with per-env strength ``eps`` (N,)."""
        n = actions.shape[0]
        if self.kind == "discrete":
            # actions: (N,) or (N, 1) int indices; shape and dtype are preserved.
            flat = actions.reshape(n)
            random_idx = self.rng.integers(0, int(self.action_space.n), size=n)  # (N,)
            take_random = self.rng.random(n) < eps  # (N,)
            return np.where(take_random, random_idx, flat).astype(actions.dtype).reshape(actions.shape)
        if self.kind == "multibinary":
            flip = self.rng.random(actions.shape) < eps.reshape(n, *([1] * (actions.ndim - 1)))  # (N, A)
            return np.where(flip, 1 - actions, actions).astype(actions.dtype)
        # Continuous: Gaussian noise scaled by eps, kept inside the policy's [-1, 1] box.
        noise = self.rng.standard_normal(actions.shape) * eps.reshape(n, *([1] * (actions.ndim - 1)))
        return np.clip(actions + noise, -1.0, 1.0).astype(np.float32)

    def on_episode_end(self, done: np.ndarray) -> None:
        """Called after every env step with the (N,) bool mask of envs whose episode ended."""
        return None  # stateless by default; subclasses with per-episode state override it

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": int(self.steps),
            "rng": self.rng.bit_generator.state,
            "last_time_idxs": [int(t) for t in self._last_time_idxs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        rng_state = state["rng"]
        self.rng = np.random.Generator(getattr(np.random, rng_state["bit_generator"])())
        self.rng.bit_generator.state = rng_state
        last = np.asarray(state.get("last_time_idxs", []), dtype=np.int64)
        self._last_time_idxs = last if len(last) == self.num_envs else np.zeros(self.num_envs, dtype=np.int64)


class _RandomizedEps(ExplorationWrapper):
    """Adds the optional per-env U[0, 1) epsilon multiplier, redrawn when that env's episode ends."""

    def __init__(self, action_space: spaces.Space, num_envs: int | None, randomize_eps: bool):
        super().__init__(action_space, num_envs)
        self.randomize_eps = bool(randomize_eps)
        self._multipliers = self._draw(self.num_envs)  # (N,)

    def _draw(self, n: int) -> np.ndarray:
        if not self.randomize_eps:
            return np.ones(n, dtype=np.float64)
        return self.rng.random(n)

    def seed(self, seed: int | None) -> None:
        super().seed(seed)
        self._multipliers = self._draw(self.num_envs)  # so a seed fixes the multipliers too

    def multipliers(self) -> np.ndarray:
        return self._multipliers

    def on_episode_end(self, done: np.ndarray) -> None:
        done = np.asarray(done, dtype=bool).reshape(-1)
        # The original keeps a float multiplier when randomize_eps=False (amago/envs/exploration.py:161
        # at 2d85600) and indexes it on episode ends (:191), a TypeError; here the multipliers are
        # always an (N,) array, and only redrawn when randomising.
        if self.randomize_eps and done.any():
            self._multipliers[done] = self.rng.random(int(done.sum()))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["multipliers"] = [float(m) for m in self._multipliers]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        mult = np.asarray(state.get("multipliers", []), dtype=np.float64)
        if len(mult) == self.num_envs:
            self._multipliers = mult
        else:
            log.warning(
                "exploration checkpoint has %d env multipliers but there are %d envs: redrawing them",
                len(mult),
                self.num_envs,
            )
            self._multipliers = self._draw(self.num_envs)


@register_exploration("egreedy")
@gin.configurable
class EpsilonGreedy(_RandomizedEps):
    """Epsilon-greedy with a linear schedule from ``eps_start`` to ``eps_end`` over ``steps_anneal`` calls.

    Discrete: with probability eps take a uniform random action. Continuous: ``clip(a + eps *
    N(0, 1), -1, 1)``. MultiBinary: flip each bit with probability eps. With ``randomize_eps``
    each env's eps is multiplied by U[0, 1), redrawn when that env's episode ends.

    A call is one step of all parallel envs in this process, so the schedule counts steps per
    env, not total env steps. The default ``Experiment.exploration_wrapper_type``.
    """

    def __init__(
        self,
        action_space: spaces.Space,
        num_envs: int | None = None,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        steps_anneal: int = 1_000_000,
        randomize_eps: bool = True,
    ):
        super().__init__(action_space, num_envs, randomize_eps)
        self.eps_start = eps_start
        self.eps_end = eps_end
        self.steps_anneal = steps_anneal

    def epsilon(self, time_idxs: np.ndarray) -> np.ndarray:
        eps = linear_anneal(self.eps_start, self.eps_end, self.steps, self.steps_anneal)
        return np.full(self.num_envs, eps, dtype=np.float64)


@register_exploration("bilevel")
@gin.configurable
class BilevelEpsilonGreedy(_RandomizedEps):
    """Epsilon that also decays *within* a rollout (AMAGO paper, Fig. 13).

    At schedule step k the rollout starts with ``eps_start(k)`` (``eps_start_start`` ->
    ``eps_start_end``) and reaches ``eps_end(k)`` (``eps_end_start`` -> ``eps_end_end``) at
    ``time_idx = rollout_horizon``, linearly in between. Past the horizon it stays at the end value
    (the original kept extrapolating, which can go negative). The noise itself is applied as in
    :class:`EpsilonGreedy`. Select it with
    ``Experiment.exploration_wrapper_type = @BilevelEpsilonGreedy``.

    Args:
        rollout_horizon: time index (steps since the env's last reset) at which epsilon reaches
            its end-of-rollout value; usually the length of a rollout. ``gin.REQUIRED``
            (``BilevelEpsilonGreedy.rollout_horizon = 500``).
        steps_anneal: number of calls (steps of each env) over which both endpoints move from
            their start to their end values.
    """

    def __init__(
        self,
        action_space: spaces.Space,
        num_envs: int | None = None,
        rollout_horizon: int = gin.REQUIRED,
        eps_start_start: float = 1.0,
        eps_start_end: float = 0.05,
        eps_end_start: float = 0.8,
        eps_end_end: float = 0.01,
        steps_anneal: int = 1_000_000,
        randomize_eps: bool = True,
    ):
        super().__init__(action_space, num_envs, randomize_eps)
        if rollout_horizon is gin.REQUIRED or rollout_horizon is None:
            raise ValueError(
                "BilevelEpsilonGreedy needs rollout_horizon (gin: BilevelEpsilonGreedy.rollout_horizon)"
            )
        if rollout_horizon <= 0:
            raise ValueError(f"rollout_horizon must be positive, got {rollout_horizon}")
        self.rollout_horizon = rollout_horizon
        self.eps_start_start = eps_start_start
        self.eps_start_end = eps_start_end
        self.eps_end_start = eps_end_start
        self.eps_end_end = eps_end_end
        self.steps_anneal = steps_anneal

    def epsilon(self, time_idxs: np.ndarray) -> np.ndarray:
        at_start = linear_anneal(self.eps_start_start, self.eps_start_end, self.steps, self.steps_anneal)
        at_end = linear_anneal(self.eps_end_start, self.eps_end_end, self.steps, self.steps_anneal)
        frac = np.clip(np.asarray(time_idxs, dtype=np.float64) / self.rollout_horizon, 0.0, 1.0)  # (N,)
        return at_start + (at_end - at_start) * frac
