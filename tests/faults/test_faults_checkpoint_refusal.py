"""Checkpoints never run code (issue 21, item 5): crafted files are refused by every load path.

From a real checkpoint, seven crafted files: a pickle payload whose ``__reduce__`` would create a
marker file, a hyperparameter naming ``os.system``, one naming an unregistered class, a stored gin
config with an ``import`` line (of a module that would create a marker when imported), one
binding and referring to ``os.system``, and one calling a registered env factory with an env id
that makes gymnasium import that module, one binding a configurable no module registers. Each goes through every loader of
``tests/faults/checkpoint_loaders.py`` (one list: a new loader is one more entry there) in a fresh
process, and through ``amago-pl fit --ckpt_path``; no marker appears and every error names the
problem.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from amago_pl.modules.checkpoint import GIN_KEY
from tests.integration.cli_support import REPO, cli_command, subprocess_env, write_configs

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent

# A registered env factory (the CLI's process imports it): gymnasium imports the module of an env
# id written 'module:Env', so a stored gin config calling it would import a module the file names.
MINIGRID = "amago_pl.envs.builtin.minigrid_envs.MiniGridAMAGO"
# name of the crafted file -> text every refusal of it must contain
EXPECTED = {
    "pickle_payload": "holds pickled Python objects",
    "hparam_os_system": "'os.system', which is not a registered class",
    "hparam_unregistered": "'evil_pkg.Backdoor', which is not a registered class",
    "gin_import": "imports evil_gin_module, which this process has not imported",
    "gin_os_system": "binds os.system, which is not a registered configurable",
    "gin_call": f"calls @{MINIGRID}(), which is not part of the model",
    "gin_unknown": "binds EvilUnknown, which is not a registered configurable",
}


class Payload:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def craft(good: Path, out: Path, markers: Path) -> None:
    out.mkdir()
    base = torch.load(good, weights_only=True)

    def save(name: str, blob: dict) -> None:
        torch.save(blob, out / f"{name}.ckpt")

    save("pickle_payload", {**base, "extra": Payload(f"touch {markers / 'pickle_payload'}")})
    hp = dict(base["hyper_parameters"])
    save(
        "hparam_os_system",
        {**base, "hyper_parameters": {**hp, "fbc_filter_func": {"__import_path__": "os.system"}}},
    )
    evil = {"__import_path__": "evil_pkg.Backdoor"}
    save("hparam_unregistered", {**base, "hyper_parameters": {**hp, "traj_encoder_type": evil}})
    save("gin_import", {**base, GIN_KEY: "import evil_gin_module\n" + base[GIN_KEY]})
    crafted_gin = (
        base[GIN_KEY] + f"\nos.system.command = 'touch {markers / 'gin'}'\nActor.d_hidden = @os.system\n"
    )
    save("gin_os_system", {**base, GIN_KEY: crafted_gin})
    # Imports evil_gin_module (it would create the 'gin_import' marker) through gym.make's 'module:Env'.
    calling = (
        base[GIN_KEY]
        + f"\n{MINIGRID}.env_id = 'evil_gin_module:Nothing-v0'\nActor.d_hidden = @{MINIGRID}()\n"
    )
    save("gin_call", {**base, GIN_KEY: calling})
    # A short name no module of this process (nor of amago_pl) registers: refused, not dropped.
    save("gin_unknown", {**base, GIN_KEY: base[GIN_KEY] + "\nEvilUnknown.payload = 'rm -rf ~'\n"})


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    root = tmp_path_factory.mktemp("refusal")
    out = subprocess.run(
        [sys.executable, str(HERE / "resume_script.py"), str(root), "experiment", "1"],
        capture_output=True, text=True, timeout=240, env=subprocess_env(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    good = root / "run" / "ckpts" / "last.ckpt"
    markers = root / "markers"
    markers.mkdir()
    # A module that creates a marker when imported, importable by the loader processes.
    (root / "evil_gin_module.py").write_text(f"open({str(markers / 'gin_import')!r}, 'w').close()\n")
    craft(good, root / "crafted", markers)
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(root), env["PYTHONPATH"]])
    result = subprocess.run(
        [sys.executable, str(HERE / "checkpoint_loaders.py"), str(good), str(root / "crafted"), str(root / "r.json")],
        capture_output=True, text=True, timeout=400, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return root, markers, good, json.loads((root / "r.json").read_text())


def test_every_loader_refuses_every_crafted_file(crafted) -> None:
    root, markers, _, report = crafted
    assert not list(markers.iterdir()), f"a payload ran: {list(markers.iterdir())}"
    assert len(report["loaders"]) >= 10 and set(report["results"]) == set(EXPECTED)
    failures = []
    for name, outcomes in report["results"].items():
        for loader, outcome in outcomes.items():
            expected = EXPECTED[name]
            if (name, loader) == ("pickle_payload", "convert-checkpoint"):
                # Conversion reads pickles on purpose, through an allowlist: os.system is not on it.
                expected = "names 'posix.system', which is not a registered class"
            if expected not in outcome:
                failures.append(f"{loader} on {name}: {outcome[:400]}")
    assert not failures, "\n".join(failures)
    # The refusals name the file and say how to proceed.
    payload = report["results"]["pickle_payload"]["Agent.load_from_checkpoint(weights_only=False)"]
    assert "pickle_payload.ckpt" in payload and "amago-pl convert-checkpoint" in payload
    assert "register_checkpoint_class" in report["results"]["hparam_unregistered"]["load_weights_only"]
    assert "import the modules" in report["results"]["gin_import"]["Agent.load_from_checkpoint"]
    assert "import the modules" in report["results"]["gin_unknown"]["Policy.from_checkpoint"]


@pytest.mark.parametrize("name", ["pickle_payload", "gin_import", "gin_call"])
def test_amago_pl_fit_refuses_a_crafted_ckpt_path(crafted, name: str, tmp_path: Path) -> None:
    root, markers, _, _ = crafted
    yaml_path, gin_path = write_configs(tmp_path, epochs=2, batches=2)
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(root), env["PYTHONPATH"]])
    ckpt = root / "crafted" / f"{name}.ckpt"
    out = subprocess.run(
        cli_command("fit", "--config", str(yaml_path), "--gin", str(gin_path), "--ckpt_path", str(ckpt)),
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO,
    )  # fmt: skip
    assert out.returncode != 0
    assert EXPECTED[name] in out.stderr and str(ckpt) in out.stderr, out.stderr[-3000:]
    assert not list(markers.iterdir())
