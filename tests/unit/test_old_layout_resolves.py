"""Code, gin settings and checkpoints written against the previous layout keep working.

The previous layout kept the networks in ``amago_pl.modules.*``, the Experiment helpers in
``amago_pl.experiment_utils``/``amago_pl.cli_checks`` and the test doubles in ``modules``/``envs``.
Every old module path is served by the one alias table in ``amago_pl/compat.py``; these tests use
it the ways users do: import lines, full-path gin keys in .gin files, dicts and ``--gin`` strings,
and a checkpoint file written by the code before the re-layout (commit 78a7c28).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import gin
import pytest

from amago_pl import compat

ROOT = Path(__file__).resolve().parents[2]
OLD_CKPT = ROOT / "tests" / "fixtures" / "pre_relayout_tmaze_transformer.ckpt"


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.mark.parametrize("old, new", sorted(compat.MOVED_MODULES.items()))
def test_every_old_module_path_imports_as_the_new_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_old_import_lines_in_a_fresh_process():
    code = textwrap.dedent(
        """
        import amago_pl.modules.transformer
        from amago_pl.modules.tstep_encoders import FFTstepEncoder
        from amago_pl.modules.traj_encoders import TformerTrajEncoder
        from amago_pl.modules.actor_critic import NCritics, Actor
        from amago_pl.modules.agent import Agent, MultiTaskAgent
        from amago_pl.modules.agent_testing import SyntheticBatches
        from amago_pl.envs.testing import *  # noqa
        from amago_pl.experiment_utils import probe_spaces
        from amago_pl.cli_checks import validate_cli_settings
        import amago_pl.nets.tstep_encoders as new
        assert FFTstepEncoder is new.FFTstepEncoder
        assert MultiTaskAgent.__module__ == "amago_pl.modules.multitask_agent"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_bare_import_reaches_the_subpackages():
    code = "import amago_pl; print(amago_pl.nets.transformer.Transformer.__name__, amago_pl.modules.agent.Agent.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["Transformer", "Agent"], out.stderr


OLD_KEYS = {
    "amago_pl.modules.tstep_encoders.FFTstepEncoder.d_output": 24,
    "amago_pl.modules.traj_encoders.TformerTrajEncoder.d_model": 40,
    "amago_pl.modules.popart.PopArtLayer.beta": 0.002,
    "amago_pl.modules.agent.MultiTaskAgent.gamma": 0.95,
}


def _bound_values() -> dict[str, object]:
    from amago_pl.modules.multitask_agent import MultiTaskAgent
    from amago_pl.nets.popart import PopArtLayer
    from amago_pl.nets.traj_encoders import TformerTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder

    return {
        "d_output": gin.query_parameter(f"{FFTstepEncoder.__module__}.FFTstepEncoder.d_output"),
        "d_model": gin.query_parameter(f"{TformerTrajEncoder.__module__}.TformerTrajEncoder.d_model"),
        "beta": gin.query_parameter(f"{PopArtLayer.__module__}.PopArtLayer.beta"),
        "gamma": gin.query_parameter(f"{MultiTaskAgent.__module__}.MultiTaskAgent.gamma"),
    }


EXPECTED = {"d_output": 24, "d_model": 40, "beta": 0.002, "gamma": 0.95}


def test_old_full_path_keys_in_a_dict():
    from amago_pl.cli_utils import use_config

    use_config(dict(OLD_KEYS), finalize=False)
    assert _bound_values() == EXPECTED


def test_old_full_path_keys_in_gin_strings():
    from amago_pl.cli_utils import parse_gin

    parse_gin(bindings=[f"{k} = {v}" for k, v in OLD_KEYS.items()])
    assert _bound_values() == EXPECTED


def test_old_full_path_keys_in_gin_files_and_their_includes(tmp_path):
    from amago_pl.cli_utils import use_config

    inner = tmp_path / "inner.gin"
    inner.write_text("amago_pl.modules.agent.MultiTaskAgent.gamma = 0.95\n")
    outer = tmp_path / "outer.gin"
    outer.write_text(
        f"include '{inner}'\n"
        "amago_pl.modules.tstep_encoders.FFTstepEncoder.d_output = 24\n"
        "amago_pl.modules.traj_encoders.TformerTrajEncoder.d_model = 40\n"
        "amago_pl.modules.popart.PopArtLayer.beta = 0.002\n"
    )
    use_config({}, gin_configs=[str(outer)], finalize=False)
    assert _bound_values() == EXPECTED


def test_the_cli_accepts_old_keys_in_gin_strings(tmp_path):
    """``amago-pl fit --gin "<old key> = v" --print_config`` in a subprocess."""
    out = subprocess.run(
        [sys.executable, "-m", "amago_pl.cli", "fit", "--print_config",
         "--gin", "amago_pl.modules.traj_encoders.TformerTrajEncoder.d_model = 40"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]


def test_a_checkpoint_written_before_the_relayout_loads(tmp_path):
    """The fixture pickles classes under their old paths (amago_pl.modules.tstep_encoders...) and
    stores gin keys of the old layout. Pickled checkpoints load through the one-time conversion
    (``amago-pl convert-checkpoint``, docs/resume.md); the converted file must rebuild the agent
    with the same weights."""
    new = tmp_path / "converted.ckpt"
    out = subprocess.run(
        [sys.executable, "-m", "amago_pl.cli", "convert-checkpoint", str(OLD_CKPT), str(new)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    code = textwrap.dedent(
        f"""
        import torch
        from amago_pl.modules.agent import Agent
        agent = Agent.load_from_checkpoint({str(new)!r}, map_location="cpu")
        raw = torch.load({str(OLD_CKPT)!r}, map_location="cpu", weights_only=False)["state_dict"]
        mine = agent.state_dict()
        assert set(raw) == set(mine), set(raw) ^ set(mine)
        assert all(torch.equal(raw[k], mine[k]) for k in raw)
        print(type(agent.tstep_encoder).__module__, type(agent.traj_encoder).__name__)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["amago_pl.nets.tstep_encoders", "TformerTrajEncoder"]


def test_rewrite_maps_old_paths_and_leaves_current_ones():
    text = (
        "amago_pl.modules.transformer.Transformer.dropout_emb = 0.1\n"
        "x/amago_pl.modules.actor_critic.PopArtLayer.beta = 1e-3\n"
        "Agent.tstep_encoder_type = @amago_pl.modules.tstep_encoders.FFTstepEncoder\n"
        "amago_pl.nets.transformer.SlidingWindowFlexAttention.window_size = 8\n"
    )
    assert compat.rewrite_gin_text(text) == (
        "amago_pl.nets.transformer.Transformer.dropout_emb = 0.1\n"
        "x/amago_pl.nets.popart.PopArtLayer.beta = 1e-3\n"
        "Agent.tstep_encoder_type = @amago_pl.nets.tstep_encoders.FFTstepEncoder\n"
        "amago_pl.nets.transformer.SlidingWindowFlexAttention.window_size = 8\n"
    )
