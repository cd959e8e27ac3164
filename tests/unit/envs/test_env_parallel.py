"""Parallel envs (sync/async): same-step autoreset, rl2 features, seeding, crashes, validation."""

import functools

import gin
import numpy as np
import pytest

from amago_pl.envs import AMAGOEnv, make_parallel_envs
from amago_pl.testing.envs import ScriptedEnv
from amago_pl.types import StepResult

MODES = ["sync", "async"]


def scripted(**kw):
    return functools.partial(lambda **k: AMAGOEnv(ScriptedEnv(**k)), **kw)


def rollout(envs, steps, actions_fn):
    ts = envs.reset()
    out = [ts]
    results: list[StepResult] = []
    for k in range(steps):
        r = envs.step(actions_fn(k))
        results.append(r)
        out.append(r.next)
    return out, results


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("end", ["terminated", "truncated", "alternate"])
def test_rl2_time_and_final_across_resets(mode, end):
    # Env 0 has episodes of 2 then 3 steps, env 1 of 4: episodes end at different steps.
    factories = [scripted(episode_lengths=(2, 3), end=end), scripted(episode_lengths=(4,), end=end)]
    envs = make_parallel_envs(factories, 2, mode=mode, seed=0, envs_per_worker=1)
    try:
        assert envs.num_envs == 2 and envs.discrete and envs.action_dim == 3
        assert envs.rl2_space.shape == (4,)
        actions = lambda k: np.array([k % 3, (k + 1) % 3], dtype=np.int64)  # noqa: E731
        steps, results = rollout(envs, 9, actions)
    finally:
        envs.close()
    first = steps[0]
    np.testing.assert_array_equal(first.time_idxs, [0, 0])
    np.testing.assert_array_equal(first.rl2s, np.zeros((2, 4)))
    lengths = {0: [2, 3, 2, 3, 2], 1: [4, 4, 4]}
    for i in range(2):
        episode, t = 0, 0
        for k, r in enumerate(results):
            t += 1
            length = lengths[i][episode]
            a = actions(k)[i]
            # final = the true timestep this step reached
            assert r.final.obs["observation"][i, 0] == episode and r.final.obs["observation"][i, 1] == t
            assert r.final.time_idxs[i] == t
            assert r.final.rl2s[i, 0] == 100 * episode + t == r.rewards[i]
            np.testing.assert_array_equal(r.final.rl2s[i, 1:], np.eye(3)[a])
            ended = t == length
            assert r.done[i] == ended and not r.dropped[i]
            truncate = end == "truncated" or (end == "alternate" and episode % 2 == 1)
            assert r.terminated[i] == (ended and not truncate) and r.truncated[i] == (ended and truncate)
            if ended:
                episode, t = episode + 1, 0
                # next starts the new episode: rl2 zeros, time 0, obs of the new episode
                np.testing.assert_array_equal(r.next.rl2s[i], np.zeros(4))
                assert r.next.time_idxs[i] == 0 and r.next.obs["observation"][i, 0] == episode
            else:
                np.testing.assert_array_equal(r.next.obs["observation"][i], r.final.obs["observation"][i])
                np.testing.assert_array_equal(r.next.rl2s[i], r.final.rl2s[i])
                assert r.next.time_idxs[i] == t
            assert r.infos[i] == {"episode": episode - ended, "t": length if ended else t}


def collect(mode, seed, steps=12, n=3, **kw):
    f = scripted(episode_lengths=(2, 5, 3))
    envs = make_parallel_envs(f, n, mode=mode, seed=seed, **kw)
    try:
        rng = np.random.default_rng(0)
        ts, results = rollout(envs, steps, lambda k: rng.integers(0, 3, size=n))
    finally:
        envs.close()
    obs = np.stack([t.obs["observation"] for t in ts])
    finals = np.stack([r.final.obs["observation"] for r in results])
    return obs, finals


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_trajectories(mode):
    a_obs, a_final = collect(mode, seed=5, envs_per_worker=2 if mode == "async" else None)
    b_obs, b_final = collect(mode, seed=5)
    np.testing.assert_array_equal(a_obs, b_obs)
    np.testing.assert_array_equal(a_final, b_final)
    c_obs, _ = collect(mode, seed=6)
    assert not np.array_equal(a_obs[..., 2], c_obs[..., 2])
    # env i seeded with seed + i: env 1 of seed 5 is env 0 of seed 6 (until per-env scripts differ)
    np.testing.assert_array_equal(a_obs[:, 1], c_obs[:, 0])


def test_sync_and_async_agree():
    np.testing.assert_array_equal(collect("sync", 3)[0], collect("async", 3, envs_per_worker=1)[0])


@pytest.mark.parametrize("mode", MODES)
def test_env_names_follow_the_episode(mode):
    envs = make_parallel_envs(scripted(episode_lengths=(2,), name_by_episode=True), 1, mode=mode, seed=0)
    try:
        envs.reset()
        names = [envs.step(np.zeros(1, dtype=np.int64)).env_names[0] for _ in range(4)]
    finally:
        envs.close()
    assert names == ["scripted-even", "scripted-even", "scripted-odd", "scripted-odd"]


def test_box_actions_rl2_and_plain_env_is_wrapped():
    envs = make_parallel_envs(lambda: ScriptedEnv(box_actions=True), 2, mode="sync", seed=0)
    assert not envs.discrete and envs.action_dim == 2 and envs.rl2_space.shape == (3,)
    envs.reset()
    r = envs.step(np.array([[1.0, -1.0], [3.0, 0.5]], dtype=np.float32))
    np.testing.assert_array_equal(r.final.rl2s[:, 1:], [[1.0, -1.0], [1.0, 0.5]])  # clipped rep
    envs.close()


@pytest.mark.parametrize("mode", MODES)
def test_crashing_env_is_rebuilt_and_dropped(mode, tmp_path, caplog):
    marker = str(tmp_path / "failed_once")
    factories = [
        scripted(episode_lengths=(50,)),
        scripted(episode_lengths=(50,), fail_at_step=4, fail_once_marker=marker),
    ]
    envs = make_parallel_envs(factories, 2, mode=mode, seed=0, envs_per_worker=1)
    try:
        envs.reset()
        acts = np.zeros(2, dtype=np.int64)
        results = [envs.step(acts) for _ in range(8)]
    finally:
        envs.close()
    dropped = np.stack([r.dropped for r in results])
    assert dropped[:, 0].sum() == 0 and dropped[:, 1].tolist() == [False] * 3 + [True] + [False] * 4
    crash = results[3]
    assert crash.done[1] and not crash.terminated[1] and not crash.truncated[1]
    assert crash.next.time_idxs[1] == 0 and crash.next.obs["observation"][1, 1] == 0  # rebuilt + reset
    assert envs.restarts == 1
    assert "raised and was rebuilt" in caplog.text and "ScriptedFailure" in caplog.text
    # collection continued: env 1 counts again from its new episode; env 0 unaffected
    assert results[-1].next.time_idxs.tolist() == [8, 4]


@pytest.mark.parametrize("mode", MODES)
def test_repeated_failure_raises_naming_env(mode):
    factories = [scripted(), scripted(fail_at_step=2)]  # fails 2 steps after every (re)build
    envs = make_parallel_envs(factories, 2, mode=mode, seed=0, envs_per_worker=1, failure_window=100)
    try:
        envs.reset()
        acts = np.zeros(2, dtype=np.int64)
        envs.step(acts)
        envs.step(acts)  # first failure: restart
        assert envs.restarts == 1
        envs.step(acts)
        with pytest.raises(RuntimeError, match=r"env 1 \('scripted'\)") as err:
            envs.step(acts)
        assert "ScriptedFailure" in str(err.value) and "Traceback" in str(err.value)
    finally:
        envs.close()


def test_failures_outside_window_only_restart():
    envs = make_parallel_envs(scripted(fail_at_step=2), 1, mode="sync", seed=0, failure_window=1)
    envs.reset()
    for _ in range(6):
        envs.step(np.zeros(1, dtype=np.int64))
    assert envs.restarts == 3
    envs.close()


@pytest.mark.parametrize("mode", MODES)
def test_non_finite_obs_raises(mode):
    envs = make_parallel_envs([scripted(), scripted(nan_at_step=2)], 2, mode=mode, seed=0)
    try:
        envs.reset()
        envs.step(np.zeros(2, dtype=np.int64))
        with pytest.raises(ValueError, match=r"env 1 \('scripted'\).*'observation'.*step 2"):
            envs.step(np.zeros(2, dtype=np.int64))
    finally:
        envs.close()
    unchecked = make_parallel_envs(scripted(nan_at_step=1), 1, mode="sync", check_finite=False)
    unchecked.reset()
    assert np.isnan(unchecked.step(np.zeros(1, dtype=np.int64)).final.obs["observation"][0, 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        make_parallel_envs(scripted(), 2, mode="threads")
    with pytest.raises(ValueError, match="3 env factories"):
        make_parallel_envs([scripted()] * 3, 2, mode="sync")
    envs = make_parallel_envs(scripted(), 2, mode="sync")
    envs.reset()
    with pytest.raises(ValueError, match="2 envs"):
        envs.step(np.zeros(3, dtype=np.int64))


def test_async_worker_layout():
    envs = make_parallel_envs(scripted(), 5, mode="async", envs_per_worker=2)
    try:
        assert envs.num_workers == 3
    finally:
        envs.close()
    envs = make_parallel_envs(scripted(), 3, mode="async")
    try:
        assert 1 <= envs.num_workers <= 3
    finally:
        envs.close()


@gin.configurable
class GinScriptedEnv(ScriptedEnv):
    def __init__(self, episode_lengths=(3,)):
        super().__init__(episode_lengths=episode_lengths)


@pytest.mark.parametrize("ctx", ["spawn"])
def test_spawned_workers_reparse_gin(ctx):
    gin.clear_config()
    try:
        gin.parse_config("GinScriptedEnv.episode_lengths = (2,)")
        envs = make_parallel_envs(
            lambda: AMAGOEnv(GinScriptedEnv()), 2, mode="async", mp_context=ctx, seed=0, envs_per_worker=2
        )
        try:
            envs.reset()
            envs.step(np.zeros(2, dtype=np.int64))
            r = envs.step(np.zeros(2, dtype=np.int64))
        finally:
            envs.close()
        assert r.terminated.all()  # the bound episode length (2), not the default (3)
    finally:
        gin.clear_config()
