"""A trained run's files as policies: ``ckpts/last.ckpt`` and the compact ``ckpts/latest/policy.pt``
(written at every checkpoint and at the end of the run) rebuild the same policy, with the caller's
gin configuration untouched, and ``evaluate_policy`` runs it without a Trainer."""

from __future__ import annotations

import gin
import numpy as np
import pytest
import torch

from amago_pl import Policy, evaluate_policy
from amago_pl.policy.loading import FORMAT_KEY
from tests.integration.helpers import MakeTMaze
from tests.integration.test_experiment_run import tiny_experiment

pytestmark = pytest.mark.integration


def test_run_checkpoints_load_as_the_same_policy(tmp_path):
    exp = tiny_experiment(tmp_path, epochs=1)
    exp.start()
    exp.learn()
    ckpts = tmp_path / "tiny" / "ckpts"
    compact = torch.load(ckpts / "latest" / "policy.pt", weights_only=True)
    assert compact[FORMAT_KEY] == 1 and compact["version"] == exp.trainer.global_step > 0
    assert "optimizer_states" not in compact and "callbacks" not in compact
    assert (ckpts / "latest" / "policy.pt").stat().st_size < (ckpts / "last.ckpt").stat().st_size

    before = gin.config_str()
    from_ckpt = Policy.from_checkpoint(ckpts / "last.ckpt")
    from_compact = Policy.from_checkpoint(ckpts / "latest" / "policy.pt")
    assert gin.config_str() == before
    assert from_compact.agent.traj_encoder.transformer.n_heads == 4  # the run's gin, not the default

    env = MakeTMaze()()
    obs = {"observation": np.stack([env.reset(seed=s)[0]["observation"] for s in range(3)])}
    for policy in (from_ckpt, from_compact):
        policy.reset(3)
    a, da = from_ckpt.act(obs, deterministic=True, return_details=True)
    b, db = from_compact.act(obs, deterministic=True, return_details=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(da.values, db.values, atol=1e-6)

    result = evaluate_policy(from_compact, MakeTMaze(), n_episodes=4, num_envs=2, seed=0)
    assert len(result.returns) == 4 and all(n > 0 for n in result.lengths)
