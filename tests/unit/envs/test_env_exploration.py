"""Exploration schedules, noise types, per-env multipliers and checkpoint round trips."""

import io

import gin
import numpy as np
import pytest
import torch
from gymnasium import spaces

from amago_pl.envs.exploration import (
    BilevelEpsilonGreedy,
    EpsilonGreedy,
    get_exploration_cls,
    list_registered_explorations,
)

DISC = spaces.Discrete(6)
BOX = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)


def run(expl, n_calls, actions, time_idxs=None):
    t = np.zeros(expl.num_envs, dtype=np.int64) if time_idxs is None else time_idxs
    out = None
    for _ in range(n_calls):
        out = expl(actions, t)
    return out


def test_registry():
    assert get_exploration_cls("egreedy") is EpsilonGreedy
    assert get_exploration_cls("bilevel") is BilevelEpsilonGreedy
    assert {"egreedy", "bilevel"} <= set(list_registered_explorations())
    with pytest.raises(KeyError, match="nope"):
        get_exploration_cls("nope")


def test_defaults_match_original():
    e = EpsilonGreedy(DISC, 2)
    assert (e.eps_start, e.eps_end, e.steps_anneal, e.randomize_eps) == (1.0, 0.05, 1_000_000, True)


def test_epsilon_anneals_linearly_per_call():
    e = EpsilonGreedy(DISC, 3, eps_start=1.0, eps_end=0.2, steps_anneal=10, randomize_eps=False)
    acts = np.zeros(3, dtype=np.int64)
    np.testing.assert_allclose(e.current_eps(), [1.0] * 3)
    run(e, 5, acts)
    np.testing.assert_allclose(e.current_eps(), [0.6] * 3)
    run(e, 5, acts)
    np.testing.assert_allclose(e.current_eps(), [0.2] * 3)
    run(e, 50, acts)
    np.testing.assert_allclose(e.current_eps(), [0.2] * 3)  # stays at eps_end
    assert e.steps == 60


def test_discrete_noise_extremes():
    acts = np.full(4, 2, dtype=np.int64)
    e = EpsilonGreedy(DISC, 4, eps_start=0.0, eps_end=0.0, randomize_eps=False)
    out = run(e, 1, acts)
    assert out.dtype == np.int64 and out.shape == (4,)
    np.testing.assert_array_equal(out, acts)
    e = EpsilonGreedy(DISC, 4, eps_start=1.0, eps_end=1.0, randomize_eps=False)
    e.seed(0)
    seen = np.concatenate([e(acts, np.zeros(4)) for _ in range(50)])
    assert set(seen.tolist()) == set(range(6))  # uniform over all actions
    assert e(acts[:, None], np.zeros(4)).shape == (4, 1)  # (N, 1) indices keep their shape


def test_continuous_noise_is_clipped_gaussian():
    acts = np.full((2, 3), 0.9, dtype=np.float32)
    e = EpsilonGreedy(BOX, 2, eps_start=0.0, eps_end=0.0, randomize_eps=False)
    np.testing.assert_array_equal(run(e, 1, acts), acts)
    e = EpsilonGreedy(BOX, 2, eps_start=0.5, eps_end=0.5, randomize_eps=False)
    e.seed(3)
    out = e(acts, np.zeros(2))
    assert out.dtype == np.float32 and np.all(np.abs(out) <= 1.0)
    assert not np.allclose(out, acts)


def test_multibinary_flips_with_eps():
    space = spaces.MultiBinary(5)
    acts = np.array([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=np.float32)
    e = EpsilonGreedy(space, 2, eps_start=1.0, eps_end=1.0, randomize_eps=False)
    np.testing.assert_array_equal(run(e, 1, acts), 1 - acts)
    e = EpsilonGreedy(space, 2, eps_start=0.0, eps_end=0.0, randomize_eps=False)
    np.testing.assert_array_equal(run(e, 1, acts), acts)


def test_randomize_eps_multipliers_redrawn_only_on_done():
    e = EpsilonGreedy(DISC, 3, eps_start=0.5, eps_end=0.5, randomize_eps=True)
    e.seed(1)
    m0 = e.multipliers().copy()
    assert np.all((m0 >= 0) & (m0 < 1))
    np.testing.assert_allclose(e.current_eps(), 0.5 * m0)
    e.on_episode_end(np.array([False, True, False]))
    m1 = e.multipliers()
    assert m1[0] == m0[0] and m1[2] == m0[2] and m1[1] != m0[1]


def test_randomize_eps_false_does_not_crash_on_done():
    # The original crashed here (TypeError on item assignment to a float).
    e = EpsilonGreedy(DISC, 2, eps_start=0.3, eps_end=0.3, randomize_eps=False)
    e.on_episode_end(np.array([True, False]))
    np.testing.assert_allclose(e.current_eps(), [0.3, 0.3])


def test_bilevel_schedule_and_clamp():
    kw = dict(
        rollout_horizon=10,
        eps_start_start=1.0,
        eps_start_end=0.5,
        eps_end_start=0.2,
        eps_end_end=0.0,
        steps_anneal=100,
        randomize_eps=False,
    )
    e = BilevelEpsilonGreedy(DISC, 4, **kw)
    t = np.array([0, 5, 10, 50])
    np.testing.assert_allclose(e.current_eps(t), [1.0, 0.6, 0.2, 0.2])  # clamped past the horizon
    run(e, 50, np.zeros(4, dtype=np.int64), t)
    np.testing.assert_allclose(e.current_eps(t), [0.75, 0.425, 0.1, 0.1])
    run(e, 100, np.zeros(4, dtype=np.int64), t)
    np.testing.assert_allclose(e.current_eps(t), [0.5, 0.25, 0.0, 0.0])
    e.on_episode_end(np.array([True, True, False, False]))  # randomize_eps=False: no crash


def test_bilevel_requires_rollout_horizon():
    gin.clear_config()
    with pytest.raises(Exception, match="rollout_horizon"):
        BilevelEpsilonGreedy(DISC, 2)


def test_bilevel_randomized_multipliers():
    e = BilevelEpsilonGreedy(DISC, 2, rollout_horizon=5, randomize_eps=True)
    e.seed(0)
    np.testing.assert_allclose(e.current_eps(np.zeros(2)), 1.0 * e.multipliers())


@pytest.mark.parametrize("cls, kw", [(EpsilonGreedy, {}), (BilevelEpsilonGreedy, {"rollout_horizon": 7})])
@pytest.mark.parametrize("space", [DISC, BOX])
def test_state_dict_round_trip_restores_schedule_and_rng(cls, kw, space):
    n = 3
    acts = np.zeros(n, dtype=np.int64) if space is DISC else np.zeros((n, 3), dtype=np.float32)
    a = cls(space, n, steps_anneal=50, **kw)
    a.seed(123)
    t = np.array([0, 3, 9])
    for i in range(11):
        a(acts, t)
        a.on_episode_end(np.array([i % 3 == 0, False, i % 4 == 0]))
    state = a.state_dict()
    # Plain Python values only: loadable with torch.load(weights_only=True) in checkpoints.
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b = cls(space, n, steps_anneal=50, **kw)
    b.seed(999)
    b.load_state_dict(state)
    assert b.steps == a.steps == 11
    np.testing.assert_array_equal(b.current_eps(), a.current_eps())
    for _ in range(5):
        np.testing.assert_array_equal(a(acts, t), b(acts, t))
        done = np.array([True, False, True])
        a.on_episode_end(done)
        b.on_episode_end(done)
    np.testing.assert_array_equal(a.multipliers(), b.multipliers())


def test_base_class_rejects_unsupported_space():
    with pytest.raises(ValueError, match="Tuple"):
        EpsilonGreedy(spaces.Tuple((DISC, DISC)), 2)


def test_gin_binds_keywords():
    gin.clear_config()
    try:
        gin.parse_config("EpsilonGreedy.eps_end = 0.3\nEpsilonGreedy.steps_anneal = 4")
        e = EpsilonGreedy(DISC, 1, randomize_eps=False)
        run(e, 4, np.zeros(1, dtype=np.int64))
        np.testing.assert_allclose(e.current_eps(), [0.3])
    finally:
        gin.clear_config()


def test_tmaze_exploration_windows():
    from amago_pl.envs.builtin.tmaze import TMazeExploration

    assert get_exploration_cls("tmaze") is TMazeExploration
    e = TMazeExploration(spaces.Discrete(4), 2, horizon=10, eps_start=0.8, eps_end=0.8, randomize_eps=False)
    eps = [e.epsilon(np.array([t, t]))[0] for t in range(12)]
    # the annealed epsilon at the start and in the last end_window=3 steps, 0.5 / horizon in between
    np.testing.assert_allclose(eps, [0.8] + [0.05] * 6 + [0.8] * 5)
    acts = np.zeros(2, dtype=np.int64)
    out = [e(acts, np.array([0, 5])) for _ in range(2000)]
    random_at = np.mean([o != 0 for o in out], axis=0)  # random actions differ from 0 3/4 of the time
    assert random_at[0] == pytest.approx(0.8 * 0.75, abs=0.04) and random_at[1] < 0.06
    with pytest.raises(RuntimeError, match="horizon"):  # gin names the missing binding
        TMazeExploration(spaces.Discrete(4), 2)
    with pytest.raises(ValueError, match="TMazeExploration.horizon"):
        TMazeExploration(spaces.Discrete(4), 2, horizon=None)
