"""``Policy.act`` in a plain gymnasium loop acts exactly as the evaluation callback (the rollout code).

Both run :func:`amago_pl.policy.step.act_step`; this checks the bookkeeping around it (previous
reward/action, time index, per-env memory resets) in both autoreset modes, with episodes longer
than ``max_seq_len`` (the KV cache wraps around), for a Discrete env that terminates and a Box env
that truncates.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from amago_pl import Policy
from amago_pl.callbacks.evaluation import EvalCallback
from tests.integration.policy_support import MAX_SEQ_LEN, recorded_factories, tiny_agent

N_ENVS, STEPS, SEED = 3, 30, 123


def callback_actions(agent, name: str) -> list[list]:
    logs: list[list] = [[] for _ in range(N_ENVS)]
    cb = EvalCallback(
        recorded_factories(name, logs, amago=True),
        parallel_actors=N_ENVS,
        timesteps=STEPS,
        env_mode="sync",
        sample_actions=False,
        seed=SEED,
        verbose=False,
    )
    metrics = cb.evaluate(None, agent)
    cb.close()
    assert metrics["val/episodes"] >= N_ENVS  # every env finished at least one episode
    assert metrics["val/episode_length"] > MAX_SEQ_LEN
    return logs


def plain_loop_actions(agent, name: str, mode: AutoresetMode) -> list[list]:
    logs: list[list] = [[] for _ in range(N_ENVS)]
    envs = SyncVectorEnv(recorded_factories(name, logs, amago=False), autoreset_mode=mode)
    policy = Policy.from_agent(agent)
    policy.reset(env=envs)
    obs, _ = envs.reset(seed=SEED)
    reward = terminated = truncated = None
    while min(len(log) for log in logs) < STEPS:
        actions = policy.act(obs, reward, terminated, truncated, deterministic=True)
        obs, reward, terminated, truncated, _ = envs.step(actions)
    envs.close()
    return logs


@pytest.mark.parametrize(
    ("name", "traj"), [("cartpole", "transformer"), ("pendulum", "transformer"), ("pendulum", "gru")]
)
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_plain_loop_equals_evaluation_callback(name, traj, mode):
    agent = tiny_agent(name, traj)
    expected = callback_actions(agent, name)
    got = plain_loop_actions(agent, name, mode)
    for i in range(N_ENVS):
        want = np.asarray(expected[i][:STEPS])
        have = np.asarray(got[i][:STEPS])
        assert want.shape == have.shape and len(want) == STEPS
        np.testing.assert_array_equal(have, want, err_msg=f"env {i}, {mode}")
    # The check means something: actions vary over time (not one constant action).
    assert len({np.asarray(a).tobytes() for log in expected for a in log}) > 1
