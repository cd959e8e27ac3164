"""mode="already_vectorized": SAME_STEP and NEXT_STEP gymnasium vector envs match the sync runner."""

import functools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from amago_pl.envs import AMAGOVectorEnv, make_parallel_envs
from amago_pl.testing.envs import ScriptedEnv

LENGTHS = [(2, 3), (4,), (1, 5)]  # per env: episodes end at different steps


def factories(**kw):
    return [functools.partial(ScriptedEnv, episode_lengths=lengths, **kw) for lengths in LENGTHS]


def vector_maker(mode, **kw):
    return lambda: SyncVectorEnv(factories(**kw), autoreset_mode=mode)


def run(envs, steps=12):
    rng = np.random.default_rng(0)
    first = envs.reset()
    results = [envs.step(rng.integers(0, 3, size=envs.num_envs)) for _ in range(steps)]
    envs.close()
    return first, results


def assert_same(a, b):
    (first_a, res_a), (first_b, res_b) = a, b
    np.testing.assert_array_equal(first_a.obs["observation"], first_b.obs["observation"])
    for ra, rb in zip(res_a, res_b):
        for ta, tb in ((ra.next, rb.next), (ra.final, rb.final)):
            np.testing.assert_array_equal(ta.obs["observation"], tb.obs["observation"])
            np.testing.assert_array_equal(ta.rl2s, tb.rl2s)
            np.testing.assert_array_equal(ta.time_idxs, tb.time_idxs)
        for name in ("rewards", "terminated", "truncated", "dropped"):
            np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name))
        assert ra.env_names == rb.env_names
        assert ra.infos == rb.infos


@pytest.mark.parametrize("autoreset", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
@pytest.mark.parametrize("end", ["terminated", "alternate"])
def test_matches_sync_runner(autoreset, end):
    ref = run(make_parallel_envs(factories(end=end), 3, mode="sync", seed=7))
    vec = run(make_parallel_envs(vector_maker(autoreset, end=end), 3, mode="already_vectorized", seed=7))
    assert_same(ref, vec)
    # sanity: episodes really ended at different steps, and final differs from next there
    done = np.stack([r.done for r in vec[1]])
    assert done.any() and not (done == done[:, :1]).all()
    r = next(r for r in vec[1] if r.done.any())
    i = int(np.flatnonzero(r.done)[0])
    assert r.final.time_idxs[i] > 0 and r.next.time_idxs[i] == 0
    assert r.final.obs["observation"][i, 0] + 1 == r.next.obs["observation"][i, 0]


def test_next_step_records_no_fake_transition():
    # Env 0 ends every step. Without explicit handling, NEXT_STEP would return a reset step with
    # reward 0 after each episode; here every step is a real transition with reward 100*ep + 1.
    envs = make_parallel_envs(
        lambda: SyncVectorEnv([functools.partial(ScriptedEnv, episode_lengths=(1,))] * 2),
        2,
        mode="already_vectorized",
        seed=0,
    )
    envs.reset()
    rewards = [envs.step(np.zeros(2, dtype=np.int64)).rewards[0] for _ in range(4)]
    assert rewards == [1.0, 101.0, 201.0, 301.0]
    envs.close()


def test_vector_env_wrapper_spaces_and_box_actions():
    venv = AMAGOVectorEnv(gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync"))
    assert venv.single_action_space == gym.spaces.Box(-1, 1, (1,), np.float32)
    assert venv.action_dim == 1 and not venv.discrete
    assert set(venv.single_observation_space.spaces) == {"observation"}
    envs = make_parallel_envs(lambda: venv, 2, mode="already_vectorized", seed=0)
    ts = envs.reset()
    assert ts.obs["observation"].shape == (2, 3) and ts.rl2s.shape == (2, 2)
    r = envs.step(np.array([[1.0], [-1.0]], dtype=np.float32))
    np.testing.assert_array_equal(r.final.rl2s[:, 1], [1.0, -1.0])
    assert r.env_names == ["Pendulum-v1"] * 2
    envs.close()


def test_wrong_num_envs_or_type():
    with pytest.raises(ValueError, match="3 envs"):
        make_parallel_envs(vector_maker(AutoresetMode.SAME_STEP), 2, mode="already_vectorized")
    with pytest.raises(TypeError, match="VectorEnv"):
        make_parallel_envs(lambda: ScriptedEnv(), 1, mode="already_vectorized")


def test_async_vector_env_next_step():
    def make():
        return gym.vector.AsyncVectorEnv(factories(), autoreset_mode=AutoresetMode.NEXT_STEP)

    ref = run(make_parallel_envs(factories(), 3, mode="sync", seed=1), steps=8)
    vec = run(make_parallel_envs(make, 3, mode="already_vectorized", seed=1), steps=8)
    for ra, rb in zip(ref[1], vec[1]):
        np.testing.assert_array_equal(ra.next.obs["observation"], rb.next.obs["observation"])
        np.testing.assert_array_equal(ra.final.obs["observation"], rb.final.obs["observation"])
