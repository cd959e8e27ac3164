"""The rollout loop shared by data collection, validation and test: policy <-> parallel envs.

Memory is per env: after every step, the hidden state (KV cache / RNN state) is reset only for the
envs whose episode ended, so parallel envs that finish at different times keep their context. The
step itself (acting with memory, forgetting ended episodes) is ``amago_pl.policy.step``, the same
code a deployed ``amago_pl.Policy`` runs.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX
from amago_pl.policy.step import act_step, forget, new_memory
from amago_pl.types import StepResult, Timestep


@dataclass
class EpisodeStat:
    """One finished episode: its raw (unscaled) return, length and env-reported metrics."""

    env_name: str
    total_return: float
    length: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RolloutState:
    """What a rollout carries between calls: the envs' current timestep and the policy memory."""

    timestep: Timestep
    hidden_state: Any
    returns: np.ndarray  # (N,) float64 running episode returns
    lengths: np.ndarray  # (N,) int64 running episode lengths
    metrics: list[dict[str, float]]  # (N,) latest env-reported metrics of the running episode


@dataclass
class RolloutResult:
    episodes: list[EpisodeStat]
    env_steps: int  # steps summed over envs
    seconds: float
    dropped_episodes: int = 0


def fresh_state(agent: Any, timestep: Timestep, device: torch.device) -> RolloutState:
    """A new rollout memory for ``timestep.num_envs`` envs, usable in and out of inference mode
    (``amago_pl.policy.step.new_memory``)."""
    n = timestep.num_envs
    return RolloutState(
        timestep=timestep,
        hidden_state=new_memory(agent, n, device),
        returns=np.zeros(n, dtype=np.float64),
        lengths=np.zeros(n, dtype=np.int64),
        metrics=[{} for _ in range(n)],
    )


def _env_metrics(info: dict) -> dict[str, float]:
    """Scalar info entries whose key starts with the documented prefix (prefix stripped)."""
    out = {}
    for key, value in info.items():
        if isinstance(key, str) and key.startswith(LOG_METRIC_PREFIX):
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            name = key[len(LOG_METRIC_PREFIX) :].strip()
            if arr.size == 1:
                out[name] = float(arr[0])
            else:
                out.update({f"{name}_{i}": float(v) for i, v in enumerate(arr)})
    return out


def interact(
    agent: Any,
    envs: Any,
    state: RolloutState,
    timesteps: int,
    *,
    sample: bool = True,
    exploration: Callable | None = None,
    writer: Any = None,
    episodes: int | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RolloutResult:
    """Step ``envs`` for ``timesteps`` steps per env (or until ``episodes`` episodes finish).

    With ``episodes``, every env contributes its first ``ceil(episodes / num_envs)`` episodes and
    the rollout ends once each env has: taking the first ``episodes`` to finish overall would
    over-represent short episodes (on Meta-Frozen-Lake, quick falls into holes), biasing returns.
    ``state`` is updated in place, so collection can continue across epochs with the same memory.
    ``writer`` (a ``TrajectoryWriter``) receives every transition; ``exploration`` perturbs the
    policy's actions (train envs only).
    """
    was_training = agent.training
    agent.eval()
    finished: list[EpisodeStat] = []
    dropped = 0
    quota = None if episodes is None else np.full(envs.num_envs, -(-episodes // envs.num_envs))
    start = time.perf_counter()
    steps = 0
    try:
        for _ in range(timesteps):
            actions, state.hidden_state = act_step(
                agent, state.timestep, state.hidden_state, sample=sample, autocast=autocast
            )
            if exploration is not None:
                actions = exploration(actions, state.timestep.time_idxs)
            result: StepResult = envs.step(actions)
            if writer is not None:
                writer.add(actions, result)
            done = result.done
            dropped += _account(state, result, finished, quota)
            if exploration is not None:
                exploration.on_episode_end(done)
            state.hidden_state = forget(agent, state.hidden_state, done)
            state.timestep = result.next
            steps += envs.num_envs
            if progress is not None:
                progress(1)
            if quota is not None and not quota.any():
                break
    finally:
        agent.train(was_training)
    return RolloutResult(finished, steps, time.perf_counter() - start, dropped)


def _account(
    state: RolloutState, result: StepResult, finished: list[EpisodeStat], quota: np.ndarray | None = None
) -> int:
    """Update running returns; move ended episodes into ``finished``. Returns #dropped episodes.

    ``quota`` (N,) int: episodes each env may still contribute (decremented in place); None = all.
    """
    state.returns += result.rewards
    state.lengths += 1
    for i, info in enumerate(result.infos):
        if info:
            state.metrics[i].update(_env_metrics(info))
    dropped = 0
    for i in np.flatnonzero(result.done):
        if result.dropped[i]:
            dropped += 1  # a crashed env's partial episode is not a real result
        elif quota is None or quota[i] > 0:
            if quota is not None:
                quota[i] -= 1
            finished.append(
                EpisodeStat(
                    result.env_names[i],
                    float(state.returns[i]),
                    int(state.lengths[i]),
                    dict(state.metrics[i]),
                )
            )
        state.returns[i] = 0.0
        state.lengths[i] = 0
        state.metrics[i] = {}
    return dropped


def summarize_episodes(episodes: list[EpisodeStat], prefix: str) -> dict[str, float]:
    """Dashboard metrics of finished episodes: per env_name and across all env names."""
    if not episodes:
        return {}
    by_env: dict[str, list[EpisodeStat]] = defaultdict(list)
    for ep in episodes:
        by_env[ep.env_name].append(ep)
    out: dict[str, float] = {}
    for env_name, eps in sorted(by_env.items()):
        rets = np.array([e.total_return for e in eps])
        out[f"{prefix}/return/{env_name}"] = float(rets.mean())
        # Bottom quintile: the mean of the worst 20% of episodes (at least one).
        k = max(1, int(np.ceil(0.2 * len(rets))))
        out[f"{prefix}/bottom_quintile_return/{env_name}"] = float(np.sort(rets)[:k].mean())
        keys = sorted({k for e in eps for k in e.metrics})
        for key in keys:
            vals = [e.metrics[key] for e in eps if key in e.metrics]
            out[f"{prefix}/{key}/{env_name}"] = float(np.mean(vals))
    out[f"{prefix}/return"] = float(np.mean([e.total_return for e in episodes]))
    out[f"{prefix}/episode_length"] = float(np.mean([e.length for e in episodes]))
    out[f"{prefix}/episodes"] = float(len(episodes))
    return out
