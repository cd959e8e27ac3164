"""The learning tasks' recipes (env, nets, schedule, metric, budgets), shared by
``tests/learning`` and ``benchmarks/learning.py``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from amago_pl.callbacks.interact import EpisodeStat  # noqa: E402
from amago_pl.envs import AMAGOEnv  # noqa: E402


# ----------------------------------------------------------------------------- env factories
# Classes (not lambdas) so they also work with env_mode="async".
class MakeTMaze:
    def __init__(self, corridor: int):
        self.corridor = corridor

    def __call__(self) -> AMAGOEnv:
        from amago_pl.envs.builtin.tmaze import TMazeAltPassive

        env = TMazeAltPassive(corridor_length=self.corridor, penalty=-1.0 / self.corridor)
        return AMAGOEnv(env, env_name=f"TMaze{self.corridor}")


class MakeFrozenLake:
    def __init__(self, size: int = 4, k: int = 3):
        self.size, self.k = size, k

    def __call__(self) -> AMAGOEnv:
        from amago_pl.envs.builtin.toy_gym import MetaFrozenLake

        return AMAGOEnv(
            MetaFrozenLake(size=self.size, k_episodes=self.k), env_name=f"FrozenLake{self.size}k{self.k}"
        )


class MakeGym:
    def __init__(self, env_id: str):
        self.env_id = env_id

    def __call__(self) -> AMAGOEnv:
        import gymnasium as gym

        return AMAGOEnv(gym.make(self.env_id), env_name=self.env_id)


class MakePOPGym:
    def __init__(self, name: str):
        self.name = name

    def __call__(self) -> AMAGOEnv:
        from amago_pl.envs.builtin.popgym_envs import POPGymAMAGO

        return POPGymAMAGO(self.name)


class MakeKeyDoor:
    def __init__(self, size: int = 8, episode: int = 50, horizon: int = 500):
        self.size, self.episode, self.horizon = size, episode, horizon

    def __call__(self) -> AMAGOEnv:
        from amago_pl.envs.builtin.toy_gym import RoomKeyDoor

        env = RoomKeyDoor(
            dark=True, size=self.size, max_episode_steps=self.episode, meta_rollout_horizon=self.horizon
        )
        return AMAGOEnv(env, env_name="DarkKeyDoor")


# ----------------------------------------------------------------------------- metrics
def mean_return(episodes: list[EpisodeStat]) -> float:
    return float(np.mean([e.total_return for e in episodes])) if episodes else float("nan")


def success_rate(episodes: list[EpisodeStat]) -> float:
    """T-Maze: the goal reward is 1, every failure ends at or below 0."""
    return float(np.mean([e.total_return > 0.5 for e in episodes])) if episodes else float("nan")


def attempt_success(i: int) -> Callable[[list[EpisodeStat]], float]:
    def metric(episodes: list[EpisodeStat]) -> float:
        vals = [e.metrics[f"Episode {i} Success"] for e in episodes if f"Episode {i} Success" in e.metrics]
        return float(np.mean(vals)) if vals else float("nan")

    return metric


# ----------------------------------------------------------------------------- recipes
@dataclass
class Budget:
    epochs: int  # each epoch: collect train_steps per actor, then `updates` gradient steps
    updates: int  # gradient steps per epoch


@dataclass
class Task:
    name: str
    description: str
    make_env: Callable[[], AMAGOEnv]
    gin: dict[str, Any]  # bindings besides the encoders/exploration below
    tstep: dict[str, Any]
    traj: tuple[str, dict[str, Any]]
    explore: dict[str, Any]
    max_seq_len: int
    train_steps: int  # env steps per actor per epoch
    val_steps: int  # env steps per actor per validation
    test: Budget
    full: Budget
    metric: Callable[[list[EpisodeStat]], float] = mean_return
    metric_name: str = "return"
    threshold: float = 0.0  # the test asserts metric >= threshold
    stop_at: float | None = None  # test budget: stop early once val metric >= stop_at (default threshold)
    stop_window: int = 1  # ... averaged over this many consecutive validations
    extra_metrics: dict[str, Callable[[list[EpisodeStat]], float]] = field(default_factory=dict)
    experiment: dict[str, Any] = field(default_factory=dict)  # extra Experiment kwargs
    parallel_actors: int = 8
    explore_strategy: str = "egreedy"  # a name registered with amago_pl.envs.exploration
    val_interval: int = 1
    test_episodes: int = 64  # episodes of the final evaluate_test
    # Validate on this many episodes, the same number from each env (``EvalCallback.episodes``),
    # with ``val_steps`` as the cap; None: every episode that ends within ``val_steps``.
    val_episodes: int | None = None

    def env_steps(self, epochs: int) -> int:
        return epochs * self.parallel_actors * self.train_steps


def _tmaze(corridor: int, arch: str, test_epochs: int = 28, full_epochs: int | None = None) -> Task:
    horizon = corridor + 1
    traj = (
        ("transformer", dict(d_model=128, d_ff=512, n_layers=2, n_heads=4))
        if arch == "transformer"
        else ("rnn", dict(d_hidden=128, d_output=128, n_layers=2))
    )
    return Task(
        name=f"tmaze{corridor}_{arch}" if corridor == 10 else f"tmaze{corridor}",
        description=f"T-Maze passive, corridor {corridor}, {arch}",
        make_env=MakeTMaze(corridor),
        # The default Agent (DPG + 0.1 filtered BC) with the original example's TMazeExploration.
        gin={"Agent.reward_multiplier": 100.0, "Agent.gamma": 0.9999, "Agent.tau": 0.01},
        tstep=dict(d_hidden=128, d_output=64, normalize_inputs=False),
        traj=traj,
        explore=dict(horizon=corridor),
        explore_strategy="tmaze",
        max_seq_len=horizon,
        train_steps=2 * horizon,
        # 64 validation episodes, 8 per env: with one episode per env (8 in all), a policy that
        # guesses the side passed a validation by luck and the early stop kept it (GRU seed 5
        # stopped after 176 env steps and tested 0.47).
        val_steps=8 * horizon,
        val_episodes=64,
        test=Budget(test_epochs, 100),
        full=Budget(full_epochs or max(30, 3 * corridor), 100),
        metric=success_rate,
        metric_name="success",
        threshold=0.95,
        stop_at=1.0,
        experiment=dict(
            traj_save_len=horizon + 1,
            sample_actions_train=False,  # greedy + epsilon: the clipped softmax never becomes deterministic
            sample_actions_val=False,
            learning_rate=3e-4,
            lr_warmup_steps=100,
        ),
    )


def _dark_key_door(
    size: int,
    episode: int,
    horizon: int,
    explore: dict[str, Any],
    full: Budget,
    explore_strategy: str = "egreedy",
    val_interval: int = 1,
    name: str = "dark_key_door",
) -> Task:
    """Dark Key-To-Door with one whole meta-rollout (``horizon`` steps) in context."""
    return Task(
        name=name,
        description=f"Dark Key-To-Door {size}x{size}, trials of {episode} steps, meta-horizon {horizon}, Transformer",
        make_env=MakeKeyDoor(size, episode, horizon),
        gin={"Agent.reward_multiplier": 100.0},
        tstep=dict(n_layers=1, d_hidden=128, d_output=64, normalize_inputs=False),
        traj=("transformer", dict(d_model=128, d_ff=512, n_layers=2, n_heads=4)),
        explore=explore,
        explore_strategy=explore_strategy,
        max_seq_len=horizon,
        train_steps=horizon,
        val_steps=horizon,
        test=Budget(10, 100),
        full=full,
        metric=mean_return,
        threshold=2.0,
        val_interval=val_interval,
        experiment=dict(traj_save_len=horizon + 1, learning_rate=3e-4, lr_warmup_steps=100),
    )


def _tasks() -> dict[str, Task]:
    tasks = [
        _tmaze(10, "transformer"),
        _tmaze(10, "gru"),
        Task(
            name="frozen_lake",
            description="Meta-Frozen-Lake 4x4, 3 attempts, Transformer",
            make_env=MakeFrozenLake(4, 3),
            # tau 0.01 (the original's 700-epoch run used 0.004): with only 1,500 updates the
            # slower target held the values back, and seeds 3 and 4 learned no in-context
            # improvement (test 0.98 / 1.08 with 0.004; 1.80 / 1.47 with 0.01).
            # Actor and critics 128 wide (default 256): updates ~1.6x faster, so 30 epochs fit
            # in less CI time than 25 did (session 10, benchmarks/results/recipe_variants.csv).
            gin={
                "Agent.reward_multiplier": 100.0,
                "Agent.tau": 0.01,
                "NCritics.d_hidden": 128,
                "Actor.d_hidden": 128,
            },
            tstep=dict(n_layers=1, d_hidden=128, d_output=64, normalize_inputs=False),
            traj=("transformer", dict(d_model=128, d_ff=512, n_layers=2, n_heads=4)),
            # Epsilon reaches its floor after ~3 meta-episodes per actor (150 steps): annealing over
            # 400 left the first 8 of 15 epochs mostly random (seed 0: 1.02 -> 1.48).
            explore=dict(eps_start=1.0, eps_end=0.05, steps_anneal=150),
            max_seq_len=48,
            train_steps=48,
            val_steps=16 * 48,  # a cap: the validation ends after 16 meta-episodes per env
            # Validations and the test on 128 meta-episodes (16 per env): on session 10's fresh
            # machine the 64-episode recipe stopped seed 0 on a lucky pair of validations (mean
            # 1.4, test 1.06) and seed 1 tested 1.11, so the test failed there.
            val_episodes=128,
            test_episodes=128,
            # 30 epochs (15 before the original's PopArt/InputNorm priors of issue [fidelity],
            # then 25): seeds learn later with those priors.
            test=Budget(30, 100),
            full=Budget(40, 100),
            metric=mean_return,
            threshold=1.2,
            # Validations take the same number of meta-episodes from every env (not biased towards
            # short ones). A single 64-episode validation >= 1.4 overestimated the policy by
            # 0.2-0.5 at test (the maximum of noisy looks: seed 1 validated 1.6 and tested 1.11),
            # hence the margin over the 1.2 threshold and the mean of two validations in a row
            # (256 meta-episodes, two sets of weights).
            stop_at=1.4,
            stop_window=2,
            extra_metrics={f"attempt{i}_success": attempt_success(i) for i in (1, 2, 3)},
            # lr 1e-4 (the original's): with 3e-4 the validation return swung between ~0 and 1.6 from
            # one epoch to the next, and seeds 3 and 4 stayed below 1.2.
            experiment=dict(traj_save_len=49, learning_rate=1e-4, lr_warmup_steps=100),
        ),
        Task(
            name="cartpole_ff",
            description="CartPole-v1, FF sequence model",
            make_env=MakeGym("CartPole-v1"),
            gin={
                "Agent.reward_multiplier": 1.0,
                "Agent.gamma": 0.99,
                # The original's 01 clipped Discrete to [1e-6, 1]; the default [0.001, 0.99] keeps
                # the actor's gradient alive and learned faster (docs/learning_results.md).
                "Actor.d_hidden": 128,
                "NCritics.d_hidden": 128,
                # 5-step returns: with the original's PopArt prior (issue [fidelity] row 1) the
                # 1-step values learned the cost of the cart's drift out of bounds (~100 steps
                # ahead) too slowly, one target-network generation (~1/tau = 333 updates) per
                # step of lookahead: seeds 1 and 2 stayed near 90-100 for all 40,000 env steps
                # (test 91 / 97). With n_step 5 seeds 0 / 1 reached 500 / 477 after 4,000 /
                # 3,000 env steps (docs/learning_results.md, session 6).
                "Agent.n_step": 5,
            },
            tstep=dict(d_hidden=128, d_output=64),
            traj=("ff", dict(d_model=128, n_layers=1)),
            # Epsilon 1 -> 0.05 over 10,000 steps per actor (80,000 env steps, twice the budget;
            # the original's default is 1,000,000), times U[0, 1) per episode: at the end of the
            # budget an episode explores with eps in [0, 0.53). With 1,000 steps the data came from
            # the near-greedy policy after 8,000 env steps; seeds 4 and 6 then drifted out of
            # bounds at x = +2.4 in every episode (greedy and sampled alike, ~150 steps) and stayed
            # at 130-290 for 80,000 env steps. With 10,000: seeds 0-9 all pass, 4 / 6 after 3,000 /
            # 12,000 env steps (docs/learning_results.md, session 7).
            explore=dict(eps_start=1.0, eps_end=0.05, steps_anneal=10_000),
            max_seq_len=16,
            train_steps=125,
            val_steps=1000,  # a cap: 2 episodes per env
            val_episodes=16,  # as many as the test: 8 validation episodes made lucky stops
            # Validate every epoch: the greedy policy's return still swings between validations
            # (docs/learning_results.md), and the early stop keeps the first policy that holds the
            # pole for 400+ steps on the validation envs.
            val_interval=1,
            test=Budget(40, 100),
            full=Budget(40, 100),
            metric=mean_return,
            threshold=300.0,
            # A wide margin over the threshold for the 16 fresh test episodes: a greedy policy
            # that validated at 421 tested 264 (seed 2 with a stop at 400); epochs are cheap once
            # the policy learns, so the run waits for a near-perfect validation.
            stop_at=475.0,
            test_episodes=16,
            experiment=dict(
                # lr 1e-3 (not 3e-4): the cart's slow drift out of bounds, which ends most
                # ~130-step episodes, is unlearned faster; 3e-4 reached 400 by 40,000 env steps
                # for 2 of 3 seeds, 1e-3 by ~20,000.
                traj_save_len=128,
                learning_rate=1e-3,
                lr_warmup_steps=100,
                sample_actions_val=False,
            ),
        ),
        Task(
            name="pendulum",
            description="Pendulum-v1, Transformer, TanhGaussian",
            make_env=MakeGym("Pendulum-v1"),
            gin={
                "Agent.reward_multiplier": 0.1,
                "Agent.gamma": 0.99,
                "Agent.tau": 0.005,
                "Agent.use_multigamma": False,  # continuous critics run once per gamma: 7x cheaper
                "Actor.d_hidden": 128,
                "NCritics.d_hidden": 128,
            },
            tstep=dict(d_hidden=128, d_output=64),
            traj=("transformer", dict(d_model=64, d_ff=256, n_layers=1, n_heads=4)),
            explore=dict(eps_start=0.5, eps_end=0.05, steps_anneal=1000),
            max_seq_len=16,
            train_steps=200,
            val_steps=400,  # a cap: 2 episodes per env
            val_episodes=16,  # as many as the test
            # 200 updates per epoch: seed 2 did not learn in 19,200 env steps; 12 epochs of 300
            # left seed 2 of the fidelity A/B at -366 (docs/learning_results.md), hence 16.
            test=Budget(16, 300),
            full=Budget(25, 300),
            metric=mean_return,
            threshold=-300.0,
            stop_at=-250.0,  # margin over the threshold for the 16 fresh test episodes
            val_interval=2,
            test_episodes=16,
            experiment=dict(
                traj_save_len=64, learning_rate=3e-4, lr_warmup_steps=100, sample_actions_val=False
            ),
        ),
        Task(
            name="popgym_repeat_previous",
            description="POPGym RepeatPreviousEasy, Transformer (rotary positions)",
            make_env=MakePOPGym("RepeatPreviousEasy"),
            gin={"Agent.reward_multiplier": 100.0, "Agent.gamma": 0.99},
            tstep=dict(d_hidden=128, d_output=64),
            # Rotary embeddings: the answer is always the card 3 observations back, a relative
            # offset that RoPE expresses directly. With the default absolute ("fixed") embedding
            # the same recipe was at return 0.06 after 10,400 env steps; with RoPE it passes 0.97
            # after 832-1,664 (docs/learning_results.md).
            traj=("transformer", dict(d_model=128, d_ff=512, n_layers=2, n_heads=4, pos_emb="rope")),
            explore=dict(eps_start=1.0, eps_end=0.05, steps_anneal=500),
            max_seq_len=52,
            train_steps=52,
            val_steps=2 * 52,  # a cap: 2 episodes per env
            val_episodes=16,
            test=Budget(12, 100),
            full=Budget(10, 100),  # solved after 2-4 epochs; 10 show that it stays solved
            metric=mean_return,
            threshold=0.9,
            experiment=dict(
                traj_save_len=53, learning_rate=3e-4, lr_warmup_steps=100, sample_actions_val=False
            ),
        ),
        # ---- optional (not default) tasks
        _tmaze(20, "transformer", test_epochs=40),
        _tmaze(50, "transformer", test_epochs=60),
        _tmaze(100, "transformer", test_epochs=100),
        _tmaze(400, "transformer", test_epochs=200),
        _dark_key_door(
            8, 50, 500, explore=dict(eps_start=1.0, eps_end=0.05, steps_anneal=5000), full=Budget(60, 200)
        ),
        # examples/05_dark_key_door.py's CPU defaults: bilevel epsilon, high early in each
        # meta-rollout, annealed over 4,000 steps per actor.
        _dark_key_door(
            5,
            25,
            200,
            explore=dict(rollout_horizon=200, steps_anneal=4000),
            explore_strategy="bilevel",
            full=Budget(40, 100),
            val_interval=2,
            name="dark_key_door_5x5",
        ),
    ]
    fl = tasks[2]
    tasks.append(
        Task(
            **{
                **fl.__dict__,
                "name": "frozen_lake_attempts",
                "full": Budget(60, 100),
                "description": "Meta-Frozen-Lake 4x4, success per attempt (in-context improvement)",
            }
        )
    )
    return {t.name: t for t in tasks}


TASKS = _tasks()
DEFAULT_TASKS = [
    "tmaze10_transformer",
    "tmaze10_gru",
    "frozen_lake",
    "cartpole_ff",
    "pendulum",
    "popgym_repeat_previous",
]
