"""Clear errors: wrong envs name both spaces, files of another version or without a configuration
say so, pickled files are refused before anything is unpickled."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import SyncVectorEnv

from amago_pl import Policy
from amago_pl.modules.checkpoint import VERSION_KEY, PickledCheckpointError
from amago_pl.policy import PolicyLoadError, SpaceMismatchError
from amago_pl.policy.loading import FORMAT_KEY
from tests.integration.policy_support import tiny_agent


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "policy.pt"
    Policy.from_agent(tiny_agent("cartpole")).save(path)
    return path


def test_wrong_observation_space_names_both(saved):
    policy = Policy.from_checkpoint(saved)
    envs = SyncVectorEnv([lambda: gym.make("MountainCar-v0")] * 2)
    with pytest.raises(SpaceMismatchError) as err:
        policy.reset(env=envs)
    message = str(err.value)
    assert "Box(" in message and "(2,)" in message  # MountainCar's observation space
    assert "(4,)" in message  # the checkpoint's (CartPole's) observation space
    envs.close()


def test_wrong_action_space_names_both(saved):
    policy = Policy.from_checkpoint(saved)
    with pytest.raises(SpaceMismatchError, match=r"Discrete\(3\).*Discrete\(2\)"):
        policy.reset(2, action_space=gym.spaces.Discrete(3))
    with pytest.raises(SpaceMismatchError, match=r"Box.*Discrete\(2\)"):
        policy.reset(2, action_space=gym.spaces.Box(-1, 1, (2,)))


def test_wrong_observation_shape_at_act(saved):
    policy = Policy.from_checkpoint(saved)
    policy.reset(3)
    with pytest.raises(SpaceMismatchError, match=r"shape \(2, 4\); expected \(3, 4\)"):
        policy.act(np.zeros((2, 4), np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        Policy.from_checkpoint(saved).act(np.zeros((3, 4), np.float32))


def test_newer_format_names_both_versions(saved, tmp_path):
    blob = torch.load(saved, weights_only=True)
    blob[FORMAT_KEY] = 99
    blob[VERSION_KEY] = "9.9.9"
    torch.save(blob, tmp_path / "future.pt")
    with pytest.raises(
        PolicyLoadError, match=r"format 99, written by amago_pl 9\.9\.9.*reads formats up to 1"
    ):
        Policy.from_checkpoint(tmp_path / "future.pt")


def test_other_weights_name_versions_and_keys(saved, tmp_path):
    blob = torch.load(saved, weights_only=True)
    blob[VERSION_KEY] = "0.0.1"
    blob["state_dict"] = {k.replace("actor.", "policy_head."): v for k, v in blob["state_dict"].items()}
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(PolicyLoadError) as err:
        Policy.from_checkpoint(tmp_path / "old.pt")
    assert "amago_pl 0.0.1" in str(err.value) and "policy_head." in str(err.value)


def test_weights_without_configuration(tmp_path):
    """The layout ckpts/latest/policy.pt had before it held the configuration."""
    torch.save({"version": 3, "state_dict": {"w": torch.zeros(1)}}, tmp_path / "policy.pt")
    with pytest.raises(PolicyLoadError, match="not the configuration needed to rebuild"):
        Policy.from_checkpoint(tmp_path / "policy.pt")


def test_pickled_file_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, path)
    with pytest.raises(PickledCheckpointError, match="convert-checkpoint"):
        Policy.from_checkpoint(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        Policy.from_checkpoint("/nonexistent/policy.pt")


def test_lightning_to_torchscript_points_to_the_policy_export():
    """Lightning's ``to_torchscript`` scripts the training forward (no memory inputs) and failed with
    TorchScript's compile error from inside InputNorm; the agent names the export to use instead."""
    with pytest.raises(NotImplementedError, match=r"export_torchscript\(Policy.from_agent\(agent\)"):
        tiny_agent("cartpole").to_torchscript()
