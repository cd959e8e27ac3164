"""Every shipped .gin file parses, binds real parameters with the right types, and builds an agent."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

from amago_pl.cli_utils import check_binding_types, parse_gin

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "amago_pl" / "configs").glob("*.gin"))


def test_configs_exist():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_parses_and_builds(path):
    parse_gin(files=[str(path)])
    check_binding_types()
    from amago_pl.modules.agent import Agent, MultiTaskAgent
    from amago_pl.nets.traj_encoders import GRUTrajEncoder, TformerTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder

    agent_cls = MultiTaskAgent if "multitask" in path.name else Agent
    traj_cls = GRUTrajEncoder if "rnn" in path.name else TformerTrajEncoder
    obs = gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (3,))})
    agent = agent_cls(
        obs, gym.spaces.Box(-1e9, 1e9, (5,)), gym.spaces.Discrete(4), 8, FFTstepEncoder, traj_cls
    )
    assert agent.traj_encoder.emb_dim > 0
