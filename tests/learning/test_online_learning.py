"""Online learning on CPU-sized tasks: amago_pl must learn what the original learns, at least as
sample-efficiently (docs/learning_results.md has the measured numbers and the original's).

Each test trains one seeded run of a recipe from ``benchmarks/learning.py`` (the single source of
the hyperparameters; the benchmark script runs the same recipes with bigger budgets and more
seeds) and asserts a threshold on ``Experiment.evaluate_test`` episodes. To save CI time a run
stops as soon as a validation reaches ``Task.stop_at`` (default: the threshold); the budget
asserted below (env steps, updates) is the most it may use.

Shared settings: ``Experiment(env_mode="sync", dloader_workers=0)``, 8 actors, batch 24, AdamW lr
3e-4 (CartPole: 1e-3, Meta-Frozen-Lake: 1e-4) with 100 warmup steps, ``FFTstepEncoder`` timestep encoder, epsilon-greedy exploration
(``EpsilonGreedy``, randomised per actor), one torch thread. Per task (``Task`` fields):

- T-Maze passive, corridor 10 (Transformer d_model 128 / 2 layers / 4 heads, or GRU 2 x 128):
  22 env steps per actor per epoch (176 env steps), 100 updates per epoch, at most 28 epochs
  (4,928 env steps, 2,800 updates); the default ``Agent`` (DPG + 0.1 filtered BC), reward x100,
  gamma 0.9999, tau 0.01, penalty -1/10 per non-forward step, greedy train and eval actions,
  ``TMazeExploration`` (the original example's: epsilon 0.05 in the corridor, randomised epsilon
  ~1 at the start and the last 3 steps). Metric: success rate (return > 0.5) over 64 test
  episodes, threshold 0.95.
- Meta-Frozen-Lake 4x4, 3 attempts (Transformer 128 / 2 layers, actor and critics 128 wide): 48
  steps per actor per epoch (one meta-episode; 384 env steps), 100 updates, at most 30 epochs
  (11,520 env steps, 3,000 updates), early stop once two validations in a row (128
  meta-episodes each, 16 per env) average 1.4; reward x100, tau 0.01, lr 1e-4, epsilon 1 -> 0.05
  over 150 steps per actor, sampled actions. Metric: mean return over 128 test meta-episodes, 16
  per env (max 3).
- CartPole-v1 (``FFTrajEncoder`` 128): 125 steps per actor per epoch (1,000 env steps), 100
  updates, at most 40 epochs (40,000 env steps, 4,000 updates; update ratio 0.1), context 16,
  reward x1, gamma 0.99, AdamW lr 1e-3, default Discrete probability clip [0.001, 0.99], actor
  and critic MLPs 128 wide, 5-step returns, epsilon 1 -> 0.05 over 10,000 steps per actor, greedy
  eval after every epoch, early stop once a validation reaches 475.
- Pendulum-v1 (Transformer d_model 64 / 1 layer, TanhGaussian): 200 steps per actor per epoch
  (1,600 env steps), 300 updates, at most 12 epochs (19,200 env steps, 3,600 updates), context
  16, reward x0.1, gamma 0.99, tau 0.005, one gamma (no multigamma), heads 128, Gaussian action
  noise 0.5 -> 0.05 over 1,000 steps per actor, greedy eval.
- POPGym RepeatPreviousEasy (Transformer 128 / 2 layers, rotary positions): one 52-step episode
  per actor per epoch, 100 updates, at most 12 epochs (4,992 env steps, 1,200 updates), context 52
  (a whole episode), reward x100, gamma 0.99, greedy eval. The best return is 1.0.
"""

from __future__ import annotations

import pytest

from benchmarks.learning import TASKS, RunResult, run_task

pytestmark = pytest.mark.learning


def report(r: RunResult) -> str:
    t = TASKS[r.task]
    last = r.curve[-1] if r.curve else {}
    return (
        f"{r.task}: test {t.metric_name} {r.test_metric:.3f} {r.test_extra or ''} "
        f"(threshold {t.threshold}) after {r.env_steps} env steps, {r.updates} updates, "
        f"{r.wall_s:.0f}s wall / {r.cpu_s:.0f}s CPU; last val {last.get(t.metric_name)}"
    )


def check(
    name: str, tmp_path, max_env_steps: int, max_updates: int, seeds: tuple[int, ...] = (0, 1)
) -> RunResult:
    """Train ``seeds`` in order until one passes; fail with every seed's report if none does.

    At most 2 seeds: each recipe's budget is set so that at least 9 of 10 seeds pass on their own
    (docs/learning_results.md lists all 10), so a second seed makes a chance failure rare.

    A seed's run is repeatable on one machine, but the same seed took another path on another
    machine (Meta-Frozen-Lake seed 0: 1.91 in session 2, 1.02 in session 3, same code; float
    differences between CPUs or package builds are enough), so a task whose seeds pass 4 times
    in 5 gets a second seed rather than a flaky test.
    """
    reports = []
    for seed in seeds:
        run_dir = tmp_path / f"seed{seed}"
        run_dir.mkdir()
        r = run_task(name, seed=seed, budget="test", run_dir=run_dir)
        reports.append(f"seed {seed}: {report(r)}")
        print(reports[-1])
        assert r.env_steps <= max_env_steps and r.updates <= max_updates, reports[-1]
        if r.test_metric >= TASKS[name].threshold:
            return r
    raise AssertionError("no seed reached the threshold:\n" + "\n".join(reports))


def test_tmaze10_transformer(tmp_path):
    """Original: val return 1.0 by epoch 20 of 8 x 22 steps (~3,500 env steps, 2,000 updates)."""
    check("tmaze10_transformer", tmp_path, 5000, 3000)


def test_tmaze10_gru(tmp_path):
    check("tmaze10_gru", tmp_path, 5000, 3000)


@pytest.mark.timeout(2400)  # up to 2 seeds of 3-9 minutes each (more on a loaded machine)
def test_meta_frozen_lake(tmp_path):
    """Original: 1.14 of 3 with 5,400 env steps and 1,400 updates.

    Seeds 0-9 (session 10, this recipe: 30 epochs, 128-episode validations and test, actor and
    critics 128 wide, stop when two validations in a row average 1.4): 1.46 / 1.33 / 1.52 / 1.41 /
    1.58 / 1.46 / 1.03 / 1.55 / 1.56 / 1.73, 9 of 10 pass (benchmarks/results/recipe_variants.csv,
    variant fl_robust; docs/learning_results.md). Session 6's recipe (fl_b25w2) passed 9 of 10 on
    its machine but failed seeds 0 and 1 on session 10's. A seed's path differs between machines,
    so the test tries a second seed when the first misses."""
    check("frozen_lake", tmp_path, 11_520, 3000)


def test_cartpole_ff(tmp_path):
    """Original: 141 (FF) / 125 (Transformer) after 40,000 env steps and 1,000 updates.

    Seeds 0-9 (session 7, exploration annealed over 10,000 steps per actor): 489 / 475 / 465 /
    492 / 500 / 480 / 499 / 440 / 500 / 339, 10 of 10 pass, after 22,000 / 3,000 / 37,000 /
    18,000 / 3,000 / 12,000 / 12,000 / 5,000 / 18,000 / 40,000 env steps
    (benchmarks/results/recipe_variants.csv, variant c_eps10k)."""
    check("cartpole_ff", tmp_path, 40_000, 4000)


def test_pendulum_transformer(tmp_path):
    check("pendulum", tmp_path, 25_600, 4800)


def test_popgym_repeat_previous_easy(tmp_path):
    """Seeds 0-2 passed 0.98 after 832 / 1,664 / 1,248 env steps (rotary positions)."""
    check("popgym_repeat_previous", tmp_path, 5_000, 1200)
