"""The peer side of ``benchmarks/peers.py``: ``sb3_contrib.RecurrentPPO`` on the tasks' own envs,
and the evaluation routine of the peer's curve and test and of the random baseline. It follows the
rules of amago_pl's ``Experiment.evaluate_test(episodes=...)``: fresh envs seeded the same way, the
same number of episodes from each env, the recipe's metric function on the same ``EpisodeStat``s.

RecurrentPPO sees what amago_pl's policy sees: amago_pl's runner feeds its policy the observation
plus the previous reward and a representation of the previous action (one-hot for Discrete,
the [-1, 1] vector for Box), zeros after a reset (``amago_pl/envs/env_group.py``, ``EnvSlot.step``);
:class:`PrevActionReward` appends exactly those to the flattened observation of the same
``AMAGOEnv`` the recipe builds (same action space, same rescaling of continuous actions).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from amago_pl.callbacks.interact import EpisodeStat
from amago_pl.envs.amago_env import LOG_METRIC_PREFIX
from benchmarks.peers_tasks import PPO_SETTINGS, PeerTask

# Test envs: env i is seeded run seed + 2_000_000 + i, as amago_pl's Experiment.evaluate_test
# seeds them (amago_pl/experiment.py), so both libraries see the same test episodes where the
# episodes do not depend on the policy (T-Maze goal sides, Frozen Lake maps).
TEST_SEED_OFFSET = 2_000_000
CURVE_SEED_OFFSET = 1_000_000


class PrevActionReward(gym.Wrapper):
    """Flat float32 observation ``[obs..., previous reward, previous action rep...]`` of an
    ``AMAGOEnv`` (see the module doc)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._obs_space = env.observation_space
        flat = spaces.flatten_space(self._obs_space)
        self._rep = env.get_wrapper_attr("action_rep")
        self._a = int(env.get_wrapper_attr("action_dim"))
        low = np.concatenate([flat.low, np.full(1 + self._a, -np.inf)]).astype(np.float32)
        high = np.concatenate([flat.high, np.full(1 + self._a, np.inf)]).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

    def _obs(self, obs: Any, reward: float, rep: np.ndarray) -> np.ndarray:
        flat = spaces.flatten(self._obs_space, obs).astype(np.float32)
        return np.concatenate([flat, np.float32([reward]), rep]).astype(np.float32)  # (D + 1 + A,)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._obs(obs, 0.0, np.zeros(self._a, np.float32)), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        rep = np.asarray(self._rep(action), dtype=np.float32)  # (A,)
        return self._obs(obs, float(reward), rep), reward, terminated, truncated, info


class MakePeerEnv:
    def __init__(self, make_env: Callable[[], gym.Env]):
        self.make_env = make_env

    def __call__(self) -> gym.Env:
        return PrevActionReward(self.make_env())


def _env_metrics(info: dict) -> dict[str, float]:
    """Scalar ``AMAGO_LOG_METRIC...`` info entries, named as amago_pl's rollouts name them."""
    return {
        k[len(LOG_METRIC_PREFIX) :].strip(): float(np.asarray(v).reshape(-1)[0])
        for k, v in info.items()
        if isinstance(k, str) and k.startswith(LOG_METRIC_PREFIX) and np.asarray(v).size == 1
    }


def run_episodes(
    act: Callable[[np.ndarray, np.ndarray], np.ndarray],
    make_env: Callable[[], gym.Env],
    n_envs: int,
    episodes: int,
    seed: int,
    max_steps: int = 1_000_000,
) -> list[EpisodeStat]:
    """``ceil(episodes / n_envs)`` episodes from each of ``n_envs`` fresh envs (env i seeded
    ``seed + i`` at its first reset, as amago_pl's eval envs), the same rule as amago_pl's
    ``evaluate_test(episodes=...)``, so short episodes are not over-represented.

    ``act(obs (n_envs, D), episode_start (n_envs,) bool) -> actions (n_envs, ...)``.
    """
    per_env = math.ceil(episodes / n_envs)
    envs = [MakePeerEnv(make_env)() for _ in range(n_envs)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])  # (N, D)
    start = np.ones(n_envs, dtype=bool)
    ret, length = np.zeros(n_envs), np.zeros(n_envs, dtype=np.int64)
    metrics: list[dict[str, float]] = [{} for _ in envs]
    done: list[list[EpisodeStat]] = [[] for _ in envs]
    for _ in range(max_steps):
        if all(len(d) >= per_env for d in done):
            break
        actions = act(obs, start)
        start = np.zeros(n_envs, dtype=bool)
        for i, env in enumerate(envs):
            if len(done[i]) >= per_env:
                continue  # this env has its quota; its memory no longer matters
            o, r, term, trunc, info = env.step(actions[i])
            ret[i] += r
            length[i] += 1
            metrics[i].update(_env_metrics(info))
            if term or trunc:
                name = str(env.get_wrapper_attr("env_name"))
                done[i].append(EpisodeStat(name, float(ret[i]), int(length[i]), metrics[i]))
                ret[i], length[i], metrics[i] = 0.0, 0, {}
                o, _ = env.reset()
                start[i] = True
            obs[i] = o
    for env in envs:
        env.close()
    return [ep for d in done for ep in d[:per_env]]


def random_actor(
    make_env: Callable[[], gym.Env], seed: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    space = make_env().action_space
    space.seed(seed)
    return lambda obs, start: np.stack([np.asarray(space.sample()) for _ in range(len(obs))])


class PPOActor:
    """Greedy (``deterministic=True``) RecurrentPPO actions with the LSTM state carried across steps."""

    def __init__(self, model: Any):
        self.model, self.state = model, None

    def __call__(self, obs: np.ndarray, start: np.ndarray) -> np.ndarray:
        actions, self.state = self.model.predict(
            obs, state=self.state, episode_start=start, deterministic=True
        )
        return actions


@dataclass
class PeerResult:
    curve: list[dict[str, float]]
    test_metric: float
    test_extra: dict[str, float]
    env_steps: int
    updates: int  # gradient (minibatch) steps
    wall_s: float  # model.learn() wall time minus the curve evaluations
    cpu_s: float
    eval_s: float  # wall time of the curve evaluations
    out_of_time: bool = False


def _curve_callback(pt: PeerTask, budget: int, seed: int, max_wall_s: float | None, timer: dict) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    task = pt.task

    class Curve(BaseCallback):
        """Evaluates at every ``pt.eval_every`` env steps (amago_pl's validation grid) and stops
        collection once ``budget`` env steps are done (SB3 would finish the whole rollout)."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = pt.eval_every
            self.rows: list[dict[str, float]] = []
            self.out_of_time = False

        def evaluate(self) -> None:
            t, c = time.perf_counter(), time.process_time()
            # New episodes at every point (amago_pl's val envs also keep running between points).
            eps = run_episodes(
                PPOActor(self.model),
                task.make_env,
                task.parallel_actors,
                pt.curve_episodes,
                seed + CURVE_SEED_OFFSET + 1000 * len(self.rows),
            )
            timer["eval_s"] += time.perf_counter() - t
            timer["eval_cpu_s"] += time.process_time() - c
            row = {
                "env_steps": float(self.num_timesteps),
                "updates": float(timer["updates"]),
                "wall_s": time.perf_counter() - timer["t0"] - timer["eval_s"],
                "episodes": float(len(eps)),
                "metric": task.metric(eps),
            }
            row.update({k: fn(eps) for k, fn in task.extra_metrics.items()})
            self.rows.append(row)

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.evaluate()
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += pt.eval_every
            if max_wall_s is not None and time.perf_counter() - timer["t0"] >= max_wall_s:
                self.out_of_time = True
                return False
            # At the budget: stop inside a rollout (its steps are then not trained on), but let a
            # rollout that ends exactly here be trained; SB3's loop then ends by itself.
            rollout_ends = self.locals["n_steps"] + 1 >= self.locals["n_rollout_steps"]
            return self.num_timesteps < budget or rollout_ends

    return Curve()


def run_ppo(
    pt: PeerTask,
    seed: int,
    setting: str,
    budget: int,
    max_minutes: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> PeerResult:
    """Train RecurrentPPO with ``PPO_SETTINGS[setting]`` (plus ``overrides``) for ``budget`` env
    steps on 1 torch thread, then test it greedily on ``pt.task.test_episodes`` episodes."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    task = pt.task
    kwargs = {**PPO_SETTINGS[setting], **(overrides or {})}
    n_envs = kwargs.pop("n_envs")
    venv = DummyVecEnv([MakePeerEnv(task.make_env)] * n_envs)
    model = RecurrentPPO("MlpLstmPolicy", venv, seed=seed, device="cpu", verbose=0, **kwargs)
    timer = {"t0": 0.0, "eval_s": 0.0, "eval_cpu_s": 0.0, "updates": 0}

    def count_update(*_: Any) -> None:
        timer["updates"] += 1

    model.policy.optimizer.register_step_post_hook(count_update)
    curve = _curve_callback(pt, budget, seed, None if max_minutes is None else 60.0 * max_minutes, timer)
    timer["t0"], c0 = time.perf_counter(), time.process_time()
    # The linear schedules (lin_<x>) decay over total_timesteps = the budget.
    model.learn(total_timesteps=budget, callback=curve)
    # The last point sees the final policy (amago_pl validates after its last epoch's updates): a
    # point taken at the budget before the last rollout was trained on is taken again.
    last = curve.rows[-1] if curve.rows else None
    if last is not None and last["env_steps"] == model.num_timesteps and last["updates"] < timer["updates"]:
        curve.rows.pop()
    if not curve.rows or curve.rows[-1]["env_steps"] < model.num_timesteps:
        curve.evaluate()
    wall = time.perf_counter() - timer["t0"] - timer["eval_s"]
    cpu = time.process_time() - c0 - timer["eval_cpu_s"]
    per_actor_cap = math.ceil(task.test_episodes / task.parallel_actors) * task.val_steps + 1
    test = run_episodes(
        PPOActor(model),
        task.make_env,
        task.parallel_actors,
        task.test_episodes,
        seed + TEST_SEED_OFFSET,
        max_steps=per_actor_cap,
    )
    venv.close()
    return PeerResult(
        curve=curve.rows,
        test_metric=task.metric(test),
        test_extra={k: fn(test) for k, fn in task.extra_metrics.items()},
        env_steps=int(model.num_timesteps),
        updates=int(timer["updates"]),
        wall_s=wall,
        cpu_s=cpu,
        eval_s=timer["eval_s"],
        out_of_time=curve.out_of_time,
    )
