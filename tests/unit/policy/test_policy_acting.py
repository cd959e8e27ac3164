"""Policy.act bookkeeping, analysis details and evaluate_policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from amago_pl import Policy, evaluate_policy
from tests.integration.policy_support import raw_env, tiny_agent


def test_details_discrete():
    policy = Policy.from_agent(tiny_agent("cartpole"))
    policy.reset(3)
    actions, details = policy.act(np.ones((3, 4), np.float32), return_details=True, deterministic=True)
    assert details.probs.shape == (3, 2)
    np.testing.assert_allclose(details.probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(actions, details.probs.argmax(-1))
    assert details.values.shape == (3, len(policy.gammas)) and np.isfinite(details.values).all()
    assert details.gammas[-1] == pytest.approx(0.999)  # the acting gamma is the last
    assert details.mean is None


def test_details_continuous_and_env_format():
    env = raw_env("pendulum")
    policy = Policy.from_agent(tiny_agent("pendulum"))
    policy.reset(2, action_space=env.action_space)
    obs = np.ones((2, 3), np.float32)
    actions, details = policy.act(obs, return_details=True, deterministic=True)
    assert details.mean.shape == (2, 1) and details.std.shape == (2, 1) and (details.std > 0).all()
    np.testing.assert_allclose(actions, 2.0 * details.mean, atol=1e-5)  # [-1, 1] -> Pendulum's [-2, 2]
    assert details.values.shape == (2, len(policy.gammas))


def test_single_env_and_memory_reset():
    """A single (not vectorized) env: unbatched in, unbatched out; a finished episode's memory goes."""
    env = gym.make("CartPole-v1")
    policy = Policy.from_agent(tiny_agent("cartpole", "gru"))
    policy.reset(env=env)
    obs, _ = env.reset(seed=0)
    first = policy.act(obs, deterministic=True, return_details=True)
    assert isinstance(first[0], int)
    second = policy.act(obs, 1.0, False, False, return_details=True)[1]
    assert policy._time.tolist() == [1]
    policy.act(obs, 1.0, True, False)  # NEXT_STEP: this input still belongs to the ended episode
    again = policy.act(obs, deterministic=True, return_details=True)  # starts a new episode
    assert policy._time.tolist() == [0]
    # The values read the GRU state (the clipped probabilities of this sharp head do not show it).
    np.testing.assert_allclose(again[1].values, first[1].values, atol=1e-6)  # same input, fresh memory
    assert not np.allclose(second.values, first[1].values, atol=1e-4)  # with memory, it differs
    env.close()


def test_episode_start_after_the_callers_own_reset():
    """A single env's usual loop stops at ``terminated`` and calls ``env.reset()`` itself, so the
    policy never sees the end: without ``episode_start`` the next episode would continue the old
    memory (its time index keeps counting); with it, the first step equals a fresh policy's."""
    env = gym.make("CartPole-v1", max_episode_steps=10)
    policy = Policy.from_agent(tiny_agent("cartpole", "gru"))
    policy.reset(env=env)
    firsts = []
    for flag in (None, None, True):
        obs, _ = env.reset(seed=0)
        action, details = policy.act(obs, deterministic=True, return_details=True, episode_start=flag)
        firsts.append((policy._time.tolist(), details.values))
        terminated = truncated = False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, _ = env.step(action)
            action = policy.act(obs, reward, deterministic=True)
    assert firsts[0][0] == [0] and firsts[1][0][0] > 5  # no flag: the old episode's memory goes on
    assert not np.allclose(firsts[1][1], firsts[0][1], atol=1e-4)
    assert firsts[2][0] == [0]  # episode_start=True: a new episode, as after policy.reset
    np.testing.assert_allclose(firsts[2][1], firsts[0][1], atol=1e-6)
    # Vector form: only the flagged env starts over.
    policy.reset(2)
    obs = np.ones((2, 4), np.float32)
    for _ in range(3):
        policy.act(obs, np.ones(2), deterministic=True)
    policy.act(obs, np.ones(2), deterministic=True, episode_start=np.array([False, True]))
    assert policy._time.tolist() == [3, 0]
    env.close()


def test_evaluate_policy_counts_episodes():
    policy = Policy.from_agent(tiny_agent("cartpole"))
    result = evaluate_policy(
        policy, lambda: gym.make("CartPole-v1", max_episode_steps=40), 5, num_envs=2, seed=1
    )
    assert len(result.returns) == len(result.lengths) == 5
    assert result.returns == [float(n) for n in result.lengths]  # CartPole pays 1 per step
    assert all(1 <= n <= 40 for n in result.lengths)
    assert result.mean_return == pytest.approx(np.mean(result.returns))
    assert result.std_length == pytest.approx(np.std(result.lengths))
    again = evaluate_policy(
        policy, lambda: gym.make("CartPole-v1", max_episode_steps=40), 5, num_envs=2, seed=1
    )
    assert again.returns == result.returns  # seeded envs + deterministic actions


def test_evaluate_policy_in_every_autoreset_mode():
    """A VectorEnv from ``make_env`` in any autoreset mode gives the same episodes (seeded envs,
    deterministic actions); with DISABLED, gymnasium failed with a bare AssertionError when an ended
    env was stepped, now evaluate_policy resets ended envs itself."""
    policy = Policy.from_agent(tiny_agent("cartpole", "gru"))

    def run(mode: AutoresetMode):
        def make():
            return SyncVectorEnv(
                [lambda: gym.make("CartPole-v1", max_episode_steps=15)] * 2, autoreset_mode=mode
            )

        return evaluate_policy(policy, make, 6, seed=3, max_steps=500)

    results = {mode: run(mode) for mode in AutoresetMode}
    base = results[AutoresetMode.NEXT_STEP]
    assert len(base.returns) == 6 and len(set(base.lengths)) > 1
    for mode, result in results.items():
        assert (sorted(result.returns), sorted(result.lengths)) == (
            sorted(base.returns),
            sorted(base.lengths),
        ), mode
