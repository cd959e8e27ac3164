"""Classes moved out of files that grew past ~400 lines keep the names users' code, gin files and
stored checkpoints use: the old import path, the old gin selector, and the gin index that decides
which bindings of a stored config are amago_pl's own."""

import gin
import pytest

from amago_pl.modules import agent, checkpoint, gammas, stored_gin
from amago_pl.modules.gin_index import amago_pl_configurables
from amago_pl.nets import positions, transformer


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_position_embeddings_keep_their_transformer_paths():
    for name in ("FixedPosEmb", "LearnablePosEmb", "RotaryEmb"):
        assert getattr(transformer, name) is getattr(positions, name)
    assert "amago_pl.nets.transformer.LearnablePosEmb" in amago_pl_configurables()
    with gin.unlock_config():
        gin.parse_config("amago_pl.nets.transformer.LearnablePosEmb.max_time_idx = 7")
    emb = transformer.LearnablePosEmb(4)
    assert emb.max_time_idx == 7 and tuple(emb.emb.weight.shape) == (7, 4)


def test_multigammas_keeps_its_agent_path():
    assert agent.Multigammas is gammas.Multigammas
    assert "amago_pl.modules.agent.Multigammas" in amago_pl_configurables()
    with gin.unlock_config():
        gin.parse_config("amago_pl.modules.agent.Multigammas.discrete = [0.5, 0.8]")
    assert gammas.trained_gammas(0.99, discrete=True, use_multigamma=True) == [0.5, 0.8, 0.99]
    assert gammas.trained_gammas(0.99, discrete=False, use_multigamma=True)[-1] == 0.99
    assert len(gammas.trained_gammas(0.99, discrete=False, use_multigamma=True)) == 7
    assert gammas.trained_gammas(0.99, discrete=True, use_multigamma=False) == [0.99]


def test_stored_gin_check_is_served_from_checkpoint():
    assert checkpoint.checked_gin_text is stored_gin.checked_gin_text
    assert checkpoint.UnsafeGinConfigError is stored_gin.UnsafeGinConfigError
    with pytest.raises(checkpoint.UnsafeGinConfigError, match=r"line 1: .*imports os_not_imported"):
        checkpoint.checked_gin_text("import os_not_imported\n", "ckpt.ckpt")


def test_trainer_helpers_keep_their_rollout_paths():
    from amago_pl.callbacks import rollout, trainer_context

    for name in ("autocast_context", "log_to_loggers", "total_frames", "world_info"):
        assert getattr(rollout, name) is getattr(trainer_context, name)
    assert trainer_context.world_info(None) == (0, 1)
    assert trainer_context.total_frames(None) is None


def test_binding_helpers_keep_their_cli_utils_paths():
    from amago_pl import cli_utils
    from amago_pl.run import gin_binding

    for name in (
        "bind",
        "check_binding_types",
        "parse_gin",
        "port_binding_name",
        "register_all_configurables",
    ):
        assert getattr(cli_utils, name) is getattr(gin_binding, name)
    name = "amago.nets.traj_encoders.TformerTrajEncoder.d_model"
    assert cli_utils.port_binding_name(name) == "amago_pl.nets.traj_encoders.TformerTrajEncoder.d_model"
