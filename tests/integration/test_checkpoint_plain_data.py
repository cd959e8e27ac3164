"""Checkpoints hold plain data only: every file amago_pl writes loads with ``weights_only=True`` in a
fresh process, ``hparams.yaml`` loads with ``yaml.safe_load``, ``--ckpt_path FILE`` resumes, a
checkpoint naming an unregistered class is refused, and a checkpoint of the previous (pickled)
format is refused by the loaders and converted once by ``amago-pl convert-checkpoint``.
Each user path runs in a subprocess (the console script, or ``python -c``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.integration.cli_support import REPO, run_cli, subprocess_env, write_configs

pytestmark = pytest.mark.integration

OLD_CKPT = REPO / "tests" / "fixtures" / "pre_relayout_tmaze_transformer.ckpt"  # written at 78a7c28


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=cwd, env=subprocess_env(), timeout=300,
    )  # fmt: skip


def _console(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("amago-pl")
    assert exe, "the amago-pl console script is not installed"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, cwd=cwd, env=subprocess_env(), timeout=600
    )


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    """One tiny CLI run (1 epoch): ckpts/epoch=0.ckpt, last.ckpt, latest/policy.pt, hparams.yaml."""
    root = tmp_path_factory.mktemp("plain")
    yaml_path, gin_path = write_configs(root, epochs=1, batches=2)
    out = run_cli("fit", "--config", str(yaml_path), "--gin", str(gin_path))
    assert out.returncode == 0, out.stderr[-3000:]
    return root


def test_every_file_loads_without_unpickling_in_a_fresh_process(run_root):
    code = f"""
    from pathlib import Path
    import torch, yaml
    from lightning.pytorch.core.saving import load_hparams_from_yaml
    run = Path({str(run_root / "cli")!r})
    files = sorted(run.glob("ckpts/*.ckpt")) + [run / "ckpts/latest/policy.pt"]
    for f in files:
        torch.load(f, map_location="cpu", weights_only=True)
    blob = torch.load(run / "ckpts/last.ckpt", weights_only=True)
    hp = blob["hyper_parameters"]
    assert hp["action_space"] == {{"__space__": "Discrete", "n": 4, "start": 0}}, hp["action_space"]
    assert hp["traj_encoder_type"] == {{"__import_path__": "amago_pl.nets.traj_encoders.TformerTrajEncoder"}}
    assert isinstance(blob["callbacks"]["RolloutCallback"]["rng"]["numpy"]["state"]["key"], list)
    (hparams_yaml,) = run.glob("logs/*/hparams.yaml")
    safe = yaml.safe_load(hparams_yaml.read_text())
    assert safe["obs_space"]["spaces"][0][1]["shape"] == [3]
    assert load_hparams_from_yaml(hparams_yaml)["rl2_space"] == safe["rl2_space"]
    # Rebuilt from the file alone (no gin bound in this process), and from hparams.yaml.
    from amago_pl.modules.agent import Agent
    agent = Agent.load_from_checkpoint(run / "ckpts/last.ckpt")
    again = Agent.load_from_checkpoint(run / "ckpts/last.ckpt", hparams_file=hparams_yaml)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in agent.state_dict().items())
    print(len(files), type(agent.traj_encoder).__name__, agent.action_space)
    """
    out = _python(code, run_root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["3", "TformerTrajEncoder", "Discrete(4)"]


def _copy_run(run_root: Path, tmp_path: Path) -> tuple[Path, Path, Path, tuple[str, ...]]:
    """A copy of the module's run (so each test may write to it): yaml, gin, epoch=0.ckpt, flags."""
    root = tmp_path / "copy"
    shutil.copytree(run_root, root)
    moved = ("--run.run_dir", str(root / "cli"), "--data.dset_root", str(root))
    return root / "run.yaml", root / "tiny.gin", root / "cli" / "ckpts" / "epoch=0.ckpt", moved


def test_fit_resumes_from_a_checkpoint_file(run_root, tmp_path):
    yaml_path, gin_path, ckpt, moved = _copy_run(run_root, tmp_path)
    out = _console("fit", "--config", str(yaml_path), "--gin", str(gin_path), *moved,
                   "--trainer.max_epochs", "2", "--ckpt_path", str(ckpt), cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Restored all states from the checkpoint at {ckpt}" in out.stdout + out.stderr
    last = torch.load(ckpt.parent / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 4)  # one more epoch of 2 batches


def test_validate_takes_a_checkpoint_file(run_root, tmp_path):
    yaml_path, gin_path, ckpt, moved = _copy_run(run_root, tmp_path)
    out = _console("validate", "--config", str(yaml_path), "--gin", str(gin_path), *moved,
                   "--ckpt_path", str(ckpt), cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Loaded model weights from the checkpoint at {ckpt}" in out.stdout + out.stderr


def _crafted(run_root: Path, tmp_path: Path) -> Path:
    blob = torch.load(run_root / "cli" / "ckpts" / "epoch=0.ckpt", weights_only=True)
    blob["hyper_parameters"]["fbc_filter_func"] = {"__import_path__": "os.system"}
    path = tmp_path / "crafted.ckpt"
    torch.save(blob, path)
    return path


def test_a_checkpoint_naming_an_unregistered_path_is_refused(run_root, tmp_path):
    crafted = _crafted(run_root, tmp_path)
    out = _python(
        f"""
        from amago_pl.modules.agent import Agent
        Agent.load_from_checkpoint({str(crafted)!r})
        """,
        tmp_path,
    )
    assert out.returncode != 0
    assert "UnregisteredPathError" in out.stderr and "'os.system'" in out.stderr, out.stderr[-2000:]
    assert "register_checkpoint_class" in out.stderr
    # Resume (fit --ckpt_path) refuses it before any weight is restored.
    moved = ("--run.run_dir", str(tmp_path / "cli"), "--data.dset_root", str(tmp_path))
    out = _console("fit", "--config", str(run_root / "run.yaml"), "--gin", str(run_root / "tiny.gin"),
                   *moved, "--trainer.max_epochs", "2", "--ckpt_path", str(crafted), cwd=tmp_path)  # fmt: skip
    assert out.returncode != 0
    assert "'os.system'" in out.stderr and "not a registered class" in out.stderr, out.stderr[-2000:]


def test_an_old_pickled_checkpoint_is_refused_then_converted(tmp_path):
    new = tmp_path / "converted.ckpt"
    out = _console("convert-checkpoint", str(OLD_CKPT), str(new), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"wrote {new}" in out.stdout
    code = f"""
    import torch
    from amago_pl.modules.agent import Agent
    blob = torch.load({str(new)!r}, map_location="cpu", weights_only=True)
    agent = Agent.load_from_checkpoint({str(new)!r})
    mine = agent.state_dict()
    assert set(mine) == set(blob["state_dict"])
    assert all(torch.equal(mine[k], v) for k, v in blob["state_dict"].items())
    print(type(agent.traj_encoder).__name__, blob["hyper_parameters"]["tstep_encoder_type"]["__import_path__"])

    # The default loaders refuse the original file, naming it and the conversion.
    from amago_pl.modules.checkpoint import PickledCheckpointError
    from amago_pl.run.build import load_weights_only
    old = {str(OLD_CKPT)!r}
    for load in (lambda: Agent.load_from_checkpoint(old), lambda: load_weights_only(agent, old),
                 lambda: Agent.load_from_checkpoint(old, weights_only=False)):
        try:
            load()
        except PickledCheckpointError as err:
            assert old in str(err) and f"amago-pl convert-checkpoint {{old}} NEW.ckpt" in str(err), err
        else:
            raise AssertionError("loaded a pickled checkpoint")
    print("refused")
    """
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [
        "TformerTrajEncoder",
        "amago_pl.nets.tstep_encoders.FFTstepEncoder",
        "refused",
    ]


def test_resume_refuses_an_old_pickled_checkpoint(run_root, tmp_path):
    moved = ("--run.run_dir", str(tmp_path / "cli"), "--data.dset_root", str(tmp_path))
    out = _console("fit", "--config", str(run_root / "run.yaml"), "--gin", str(run_root / "tiny.gin"),
                   *moved, "--ckpt_path", str(OLD_CKPT), cwd=tmp_path)  # fmt: skip
    assert out.returncode != 0
    assert "PickledCheckpointError" in out.stderr, out.stderr[-2000:]
    assert f"amago-pl convert-checkpoint {OLD_CKPT} NEW.ckpt" in out.stderr


def test_spaces_and_classes_round_trip_as_plain_data():
    """In-process: each supported space and a registered class survive encode -> YAML -> decode."""
    import gymnasium as gym
    import numpy as np
    import yaml

    from amago_pl.modules import hparams
    from amago_pl.nets.critics import NCritics

    s = gym.spaces
    spaces = {
        "box": s.Box(
            np.array([0.0, -1.0], np.float32), np.array([1.0, np.inf], np.float32), dtype=np.float32
        ),
        "image": s.Box(0, 255, (4, 4, 3), np.uint8),
        "discrete": s.Discrete(5, start=-2),
        "multibinary": s.MultiBinary([2, 3]),
        "multidiscrete": s.MultiDiscrete([3, 4], start=[1, 0]),
        "text": s.Text(8, min_length=1, charset="abc"),
        # Insertion order kept (gym sorts plain dict keys; the pairs keep "z" first).
        "dict": s.Dict([("z", s.Discrete(2)), ("a", s.Tuple([s.Discrete(3), s.MultiBinary(2)]))]),
    }
    given = {**spaces, "critic_type": NCritics, "keys": ("a", "b"), "gamma": np.float32(0.5)}
    plain = hparams.encode_hparams(given)
    assert not hparams.not_plain(plain)
    assert plain["image"]["low"] == 0 and plain["critic_type"] == {
        "__import_path__": "amago_pl.nets.critics.NCritics"
    }
    back = hparams.decode_hparams(yaml.safe_load(yaml.safe_dump(plain)))
    for name, space in spaces.items():
        assert back[name] == space, name
    assert list(back["dict"].spaces) == ["z", "a"]
    assert back["critic_type"] is NCritics and back["keys"] == ["a", "b"] and back["gamma"] == 0.5
    # gin's name of a class counts too (NCritics is registered with gin under nets.actor_critic).
    assert hparams.resolve_import_path("amago_pl.nets.actor_critic.NCritics") is NCritics
    with pytest.raises(hparams.UnregisteredPathError, match="'builtins.eval'"):
        hparams.decode_hparams({"critic_type": {"__import_path__": "builtins.eval"}})
