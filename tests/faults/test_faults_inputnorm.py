"""A finite but huge observation (1e20) must not saturate the input normaliser for good (issue 21
item 2): before the fix ``nu`` became inf in that batch and stayed inf in every later checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive
from amago_pl.nets.utils import InputNorm
from tests.faults.support import tiny_experiment


def _reference_update(mu: torch.Tensor, nu: torch.Tensor, t: int, x: torch.Tensor, beta: float) -> None:
    """The documented update (InputNorm docstring; amago/nets/utils.py:145-152 at 2d85600)."""
    flat = x.reshape(-1, x.shape[-1]).float()  # (N, D)
    rate = beta / (1.0 - (1.0 - beta) ** (t + 1))
    mu.mul_(1.0 - rate).add_(rate * flat.mean(0))
    nu.mul_(1.0 - rate).add_(rate * flat.square().mean(0))


def test_ordinary_inputs_update_bit_identically() -> None:
    torch.manual_seed(0)
    norm = InputNorm(6, beta=0.01)
    mu, nu = norm.mu.clone(), norm.nu.clone()
    for t in range(1, 301):
        x = torch.randn(4, 7, 6) * 50 + 2  # (B, L, D)
        norm.update_stats(x)
        _reference_update(mu, nu, t, x, 0.01)
    assert torch.equal(norm.mu, mu) and torch.equal(norm.nu, nu)


@pytest.mark.parametrize("bad", [1e20, float("nan")])
def test_huge_or_nan_feature_keeps_its_statistics_others_update(bad: float) -> None:
    norm = InputNorm(4, beta=0.1)
    norm.update_stats(torch.ones(8, 4))
    before_mu, before_nu = norm.mu.clone(), norm.nu.clone()
    x = torch.ones(8, 4) * 2
    x[3, 1] = bad
    with pytest.warns(RuntimeWarning, match=r"feature\(s\) \[1\].*FFTstepEncoder.normalize_inputs"):
        norm.update_stats(x)
    assert norm.mu[1] == before_mu[1] and norm.nu[1] == before_nu[1]  # kept
    assert (norm.mu[[0, 2, 3]] != before_mu[[0, 2, 3]]).all()  # the others still learn
    assert torch.isfinite(norm.mu).all() and torch.isfinite(norm.nu).all()
    out = norm.normalize(x)  # (8, 4)
    ordinary = torch.tensor([0, 1, 2, 4, 5, 6, 7])  # rows without the bad value
    expected = (2.0 - before_mu[1]) / norm.sigma[1]  # feature 1 still normalised by its kept stats
    assert torch.isfinite(out[ordinary]).all() and torch.allclose(out[ordinary, 1], expected)


class _HugeOnce(gym.Wrapper):
    """T-Maze whose 3rd step returns a finite observation of 1e20 (then behaves)."""

    def __init__(self) -> None:
        super().__init__(TMazeAltPassive(corridor_length=3))
        self.steps = 0

    def step(self, action: Any):
        obs, rew, term, trunc, info = self.env.step(action)
        self.steps += 1
        if self.steps == 3:
            obs = np.full_like(obs, 1e20)
        return obs, rew, term, trunc, info


def _make_huge() -> AMAGOEnv:
    return AMAGOEnv(_HugeOnce(), env_name="TMaze")


def test_run_with_a_1e20_observation_keeps_finite_statistics_in_every_checkpoint(tmp_path: Path) -> None:
    exp = tiny_experiment(tmp_path, make_env=_make_huge, epochs=3, train_batches_per_epoch=4, batch_size=8)
    exp.start()
    with pytest.warns(RuntimeWarning, match="InputNorm: kept the running statistics"):
        exp.learn()
    ckpts = sorted((tmp_path / "tiny" / "ckpts").glob("*.ckpt"))
    assert len(ckpts) >= 3
    for ckpt in ckpts:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        stats = {k: v for k, v in state.items() if k.endswith((".mu", ".nu"))}
        assert stats and all(torch.isfinite(v).all() for v in stats.values()), ckpt.name
        nu = next(v for k, v in stats.items() if k.endswith(".nu"))
        assert nu.max() < 1e6, ckpt.name  # not saturated: sigma still follows ordinary inputs
