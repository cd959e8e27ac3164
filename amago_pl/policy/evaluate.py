"""``evaluate_policy``: returns and lengths of a policy's episodes, without a Trainer.

The counterpart of Stable-Baselines3's ``evaluate_policy``
(https://stable-baselines3.readthedocs.io/en/master/common/evaluation.html): ``n_episodes`` episodes
over ``num_envs`` parallel envs, env i contributing ``(n_episodes + i) // num_envs`` of them, so
short episodes are not over-represented (the first ``n_episodes`` to finish would favour them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from amago_pl.policy.policy import Policy


@dataclass
class EvaluationResult:
    """Per-episode returns and lengths (in the order episodes finished) and their mean/std."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns)) if self.returns else float("nan")

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths)) if self.lengths else float("nan")

    @property
    def std_length(self) -> float:
        return float(np.std(self.lengths)) if self.lengths else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "mean_length": self.mean_length,
            "std_length": self.std_length,
        }


def evaluate_policy(
    policy: Policy,
    make_env: Callable[[], gym.Env | VectorEnv],
    n_episodes: int = 10,
    *,
    num_envs: int = 1,
    deterministic: bool = True,
    seed: int | None = None,
    max_steps: int | None = None,
) -> EvaluationResult:
    """Run ``policy`` for ``n_episodes`` episodes and return their returns and lengths.

    Args:
        policy: a :class:`Policy`; its memory is reset first.
        make_env: builds one gymnasium env (``num_envs`` of them are stepped as a ``SyncVectorEnv``)
            or one ``VectorEnv`` (used as it is; ``num_envs`` is then its own; any autoreset mode:
            with ``DISABLED`` ended envs are reset here through ``reset_mask``).
        n_episodes: episodes to finish in total.
        num_envs: parallel envs.
        deterministic: act with the distribution's mode/mean (SB3's default) or sample.
        seed: env i is seeded with ``seed + i`` at its first reset (as ``make_parallel_envs`` does).
        max_steps: stop after this many vector steps even if episodes are missing (None: no limit).
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    built = make_env()
    if isinstance(built, VectorEnv):
        envs = built
    else:
        factories = [lambda first=built: first] + [make_env] * (num_envs - 1)
        envs = SyncVectorEnv(factories, autoreset_mode=AutoresetMode.NEXT_STEP)
    n = envs.num_envs
    quota = np.array([(n_episodes + i) // n for i in range(n)], dtype=np.int64)  # (N,) sums to n_episodes
    result = EvaluationResult()
    try:
        policy.reset(env=envs)
        obs, _ = envs.reset(seed=seed)
        reward = terminated = truncated = None
        running = np.zeros(n, dtype=np.float64)  # (N,) returns of the running episodes
        length = np.zeros(n, dtype=np.int64)  # (N,)
        # NEXT_STEP: the step after an episode's end only resets that env (no reward, not counted).
        resetting = np.zeros(n, dtype=bool)
        same_step = policy.autoreset_mode == AutoresetMode.SAME_STEP
        # DISABLED: the env never resets itself (stepping an ended env fails inside gymnasium), so
        # ended envs are reset here with gymnasium's reset_mask and the policy told where episodes start.
        disabled = policy.autoreset_mode == AutoresetMode.DISABLED
        starts = None
        steps = 0
        while quota.any() and (max_steps is None or steps < max_steps):
            if disabled:
                actions = policy.act(obs, reward, deterministic=deterministic, episode_start=starts)
            else:
                actions = policy.act(obs, reward, terminated, truncated, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = envs.step(actions)
            steps += 1
            counted = ~resetting
            running[counted] += np.asarray(reward, dtype=np.float64)[counted]
            length[counted] += 1
            ended = (np.asarray(terminated) | np.asarray(truncated)) & counted
            for i in np.flatnonzero(ended):
                if quota[i] > 0:
                    quota[i] -= 1
                    result.returns.append(float(running[i]))
                    result.lengths.append(int(length[i]))
                running[i], length[i] = 0.0, 0
            resetting = ended if not (same_step or disabled) else np.zeros(n, dtype=bool)
            if disabled:
                starts = np.asarray(terminated) | np.asarray(truncated)  # (N,)
                if starts.any():
                    obs, _ = envs.reset(options={"reset_mask": starts})
    finally:
        envs.close()
    return result
