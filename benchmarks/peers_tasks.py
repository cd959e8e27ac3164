"""The tasks of ``benchmarks/peers.py``: amago_pl's recipe, the shared env-step budget and the
``sb3_contrib.RecurrentPPO`` settings for each.

Budget rule (the same number of env steps for both libraries on a task):

    budget = min(10 x S_test, S_20min), rounded down to whole amago_pl epochs

* ``S_test``: env steps of the recipe's CI budget (``Task.test``: the budget within which
  ``tests/learning`` requires amago_pl to pass), i.e. 10x what amago_pl needs to pass its test;
* ``S_20min``: env steps amago_pl's recipe covers in 20 CPU-minutes on one torch thread, from the
  CPU seconds per 1,000 env steps measured in ``benchmarks/results/<task>.csv`` (``cpu_s`` over
  ``env_steps`` of the full-budget runs, validation included);
* tasks without a CI test (CountRecallEasy, CartPole without velocities) have no ``S_test``: their
  budget is ``S_20min``.

RecurrentPPO settings: the "documented default for the env type" is the RL Zoo's tuned entry
for the same env type where one exists (``hyperparams/ppo_lstm.yml`` of DLR-RM/rl-baselines3-zoo:
``CartPoleNoVel-v1`` for CartPole without velocities, ``PendulumNoVel-v1`` for Pendulum) and
sb3-contrib's constructor defaults (its API docs) otherwise; ``--sweep`` tries every setting
listed for the task on seeds that are never reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from amago_pl.envs import AMAGOEnv
from benchmarks.learning_tasks import TASKS, Budget, MakePOPGym, Task

CPU_MINUTES_CAP = 20.0
# CartPole without velocities has no full-budget run yet: its first 3 epochs took 3.6 CPU s per
# 1,000 env steps (seed 300, load ~4); 5.0 allows for the FF recipe's 4.4-5.2 over whole runs
# (benchmarks/results/cartpole_ff.csv), whose validations lengthen as the policy improves.
CARTPOLE_NOVEL_CPU_S_PER_1K = 5.0
CARTPOLE_NOVEL_SOURCE = "3 epochs measured (3.6), rounded up to the FF recipe's full-run cost"


# ----------------------------------------------------------------------------- new envs and recipes
class HideVelocities(gym.ObservationWrapper):
    """CartPole with the cart velocity and the pole's angular velocity removed (a POMDP): the
    observation keeps [cart position, pole angle], as the RL Zoo's ``CartPoleNoVel-v1`` does."""

    KEEP = (0, 2)

    def __init__(self, env: gym.Env):
        super().__init__(env)
        box = env.observation_space
        idx = list(self.KEEP)
        self.observation_space = gym.spaces.Box(box.low[idx], box.high[idx], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)[list(self.KEEP)]  # (4,) -> (2,)


class MakeCartPoleNoVel:
    """A class (not a lambda) so it also works with env_mode="async"."""

    def __call__(self) -> AMAGOEnv:
        return AMAGOEnv(HideVelocities(gym.make("CartPole-v1")), env_name="CartPoleNoVel-v1")


def _cartpole_novel() -> Task:
    # The CartPole recipe (benchmarks/learning_tasks.py, "cartpole_ff") with a memory: two
    # frames tell the velocities, so the small Transformer of the Pendulum recipe over a context
    # of 16 steps is enough. Not tuned; no CI test exists for it.
    base = TASKS["cartpole_ff"]
    return Task(
        **{
            **base.__dict__,
            "name": "cartpole_novel",
            "description": "CartPole-v1 without velocities (POMDP), Transformer 64 x 1",
            "make_env": MakeCartPoleNoVel(),
            "traj": ("transformer", dict(d_model=64, d_ff=256, n_layers=1, n_heads=4)),
        }
    )


def _count_recall() -> Task:
    # The RepeatPreviousEasy recipe with the env swapped (same episode length, 51 steps, and
    # observation size). Not tuned; no CI test exists for it. threshold: a plot line only.
    base = TASKS["popgym_repeat_previous"]
    return Task(
        **{
            **base.__dict__,
            "name": "popgym_count_recall",
            "description": "POPGym CountRecallEasy, Transformer (rotary positions)",
            "make_env": MakePOPGym("CountRecallEasy"),
            "threshold": 0.0,
        }
    )


# ----------------------------------------------------------------------------- RecurrentPPO settings
class Linear:
    """SB3 schedule ``progress_remaining -> start * progress_remaining`` (the Zoo's ``lin_<x>``);
    a class so the model stays picklable."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return self.start * progress_remaining

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


# Each setting: RecurrentPPO keyword arguments plus "n_envs" (parallel training envs).
PPO_SETTINGS: dict[str, dict[str, Any]] = {
    # sb3-contrib's RecurrentPPO constructor defaults (n_steps 128, batch 128, 10 epochs, lr 3e-4,
    # gamma 0.99, GAE 0.95, clip 0.2, no entropy bonus, LSTM 256), with amago_pl's 8 actors.
    "sb3_defaults": dict(n_envs=8),
    # The defaults plus an entropy bonus: the memory tasks' policies otherwise tend to commit to
    # one action before the memory is useful (e.g. one side at the T-Maze junction).
    "sb3_defaults_ent0.01": dict(n_envs=8, ent_coef=0.01),
    # Longer rollouts for long credit assignment (T-Maze 50 rewards after 51 steps): RecurrentPPO
    # back-propagates only inside one n_steps segment, so n_steps must cover an episode.
    "long_rollout": dict(n_envs=8, n_steps=512, batch_size=512, gamma=0.999, gae_lambda=0.98),
    # rl-baselines3-zoo hyperparams/ppo_lstm.yml, CartPoleNoVel-v1.
    "zoo_cartpole_novel": dict(
        n_envs=8,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=Linear(1e-3),
        clip_range=Linear(0.2),
    ),
    # rl-baselines3-zoo hyperparams/ppo_lstm.yml, PendulumNoVel-v1.
    "zoo_pendulum_novel": dict(
        n_envs=4,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
    ),
    # The same without state-dependent exploration (plain Gaussian noise).
    "zoo_pendulum_novel_nosde": dict(
        n_envs=4,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
    ),
    "sb3_defaults_4envs": dict(n_envs=4),
}

# amago_pl variants for issue [peers] item 3 ("try the fix the measurement points to"): the
# profile (benchmarks/peers_profile.py) puts ~98% of amago_pl's training wall time in updates, so
# the variants keep the recipe and the env-step budget and scale the updates per epoch. Each value
# is the fraction of the recipe's updates per epoch; "recipe" is the reported setting.
AMAGO_SETTINGS: dict[str, float] = {"recipe": 1.0, "half_updates": 0.5, "quarter_updates": 0.25}


def amago_budget(budget: Budget, setting: str) -> Budget:
    """``budget``'s epochs (so the same env steps) with the updates per epoch scaled by the
    ``AMAGO_SETTINGS`` entry ``setting`` (at least one update per epoch)."""
    return Budget(budget.epochs, max(1, round(budget.updates * AMAGO_SETTINGS[setting])))


DISCRETE_SWEEP = ["sb3_defaults", "sb3_defaults_ent0.01", "long_rollout", "zoo_cartpole_novel"]
CONTINUOUS_SWEEP = ["zoo_pendulum_novel", "zoo_pendulum_novel_nosde", "sb3_defaults_4envs"]


# ----------------------------------------------------------------------------- the benchmark tasks
@dataclass
class PeerTask:
    name: str
    task: Task  # amago_pl's recipe (env factory, nets, schedule, metric, evaluation sizes)
    cpu_s_per_1k: float  # amago_pl's measured CPU s per 1,000 env steps (see the module doc)
    cpu_source: str  # where that number comes from
    ppo_default: str  # the documented default setting for this env type
    ppo_sweep: list[str] = field(default_factory=list)
    has_ci_test: bool = True

    @property
    def steps_per_epoch(self) -> int:
        return self.task.parallel_actors * self.task.train_steps

    @property
    def epochs(self) -> int:
        """amago_pl epochs of the shared budget (the module doc's rule)."""
        cap = math.floor(CPU_MINUTES_CAP * 60.0 / (self.cpu_s_per_1k / 1000.0) / self.steps_per_epoch)
        return min(10 * self.task.test.epochs, cap) if self.has_ci_test else cap

    @property
    def budget(self) -> Budget:
        return Budget(self.epochs, self.task.full.updates)

    @property
    def env_steps(self) -> int:
        return self.task.env_steps(self.epochs)

    @property
    def eval_every(self) -> int:
        """Env steps between two curve points: amago_pl validates every ``val_interval`` epochs."""
        return self.task.val_interval * self.steps_per_epoch

    @property
    def curve_episodes(self) -> int:
        """Episodes per curve point for the peer: as many as amago_pl's validation reports
        (``val_episodes``, or one per actor when ``val_steps`` holds one whole episode)."""
        return self.task.val_episodes or self.task.parallel_actors

    def rule(self) -> str:
        s20 = CPU_MINUTES_CAP * 60.0 / (self.cpu_s_per_1k / 1000.0)
        test = (
            f"10 x S_test = {10 * self.task.env_steps(self.task.test.epochs):,}"
            if self.has_ci_test
            else "no CI test"
        )
        return f"min({test}, S_20min = {s20:,.0f}) -> {self.epochs} epochs x {self.steps_per_epoch}"


def _peer_tasks() -> dict[str, PeerTask]:
    t = TASKS
    rows = [
        PeerTask(
            "tmaze10",
            t["tmaze10_transformer"],
            35.6,
            "results/tmaze10_transformer.csv, 3 seeds",
            "sb3_defaults",
            DISCRETE_SWEEP,
        ),
        PeerTask(
            "tmaze50", t["tmaze50"], 24.6, "results/tmaze50.csv, seed 0", "sb3_defaults", DISCRETE_SWEEP
        ),
        PeerTask(
            "popgym_repeat_previous",
            t["popgym_repeat_previous"],
            46.5,
            "results/popgym_repeat_previous.csv, 3 seeds",
            "sb3_defaults",
            DISCRETE_SWEEP,
        ),
        PeerTask(
            "popgym_count_recall",
            _count_recall(),
            46.5,
            "assumed equal to RepeatPreviousEasy (same nets and episode length)",
            "sb3_defaults",
            DISCRETE_SWEEP,
            has_ci_test=False,
        ),
        PeerTask(
            "frozen_lake",
            t["frozen_lake"],
            # Measured for the recipe before session 10 (256-wide actor and critics, 16-episode
            # validations). The session-10 recipe (128 wide, 128-episode validations) has no
            # full-budget run yet; the budget keeps this figure so the rule stays reproducible.
            39.5,
            "results/frozen_lake.csv, 3 seeds of the recipe before session 10",
            "sb3_defaults",
            DISCRETE_SWEEP,
        ),
        PeerTask(
            "cartpole_novel",
            _cartpole_novel(),
            CARTPOLE_NOVEL_CPU_S_PER_1K,
            CARTPOLE_NOVEL_SOURCE,
            "zoo_cartpole_novel",
            DISCRETE_SWEEP,
            has_ci_test=False,
        ),
        PeerTask(
            "pendulum",
            t["pendulum"],
            7.8,
            "results/pendulum.csv, 3 seeds",
            "zoo_pendulum_novel",
            CONTINUOUS_SWEEP,
        ),
    ]
    return {r.name: r for r in rows}


PEER_TASKS = _peer_tasks()
