"""A run of a registered custom agent class loads as a Policy of that class, in a fresh process,
without ``agent_cls=``.

As a user would: ``python train.py`` trains a tiny T-Maze run whose agent is ``MyMultiTask``, a
subclass of ``MultiTaskAgent`` registered with ``@register_agent("my_multitask")`` in the user's
module ``my_agents.py``; then ``python deploy.py`` (another process) loads the run's ``last.ckpt`` and
``latest/policy.pt``. Before the class is imported the load fails naming it and the fix; after, both
files rebuild ``MyMultiTask``. The previous loader tried ``Agent`` first, which accepts this run's
hyperparameters and weights, so it silently rebuilt a plain ``Agent`` (checked by hand on this
run's ``last.ckpt`` with the class key removed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from amago_pl.modules.checkpoint import AGENT_CLASS_KEY
from tests.integration.cli_support import subprocess_env

pytestmark = pytest.mark.integration

MY_AGENTS = textwrap.dedent(
    """
    from amago_pl.modules.agent import register_agent
    from amago_pl.modules.multitask_agent import MultiTaskAgent


    @register_agent("my_multitask")
    class MyMultiTask(MultiTaskAgent):
        '''Same weights as MultiTaskAgent: only the recorded class name tells them apart.'''
    """
)

TRAIN = textwrap.dedent(
    """
    import sys

    from amago_pl import DiskTrajDataset, Experiment
    from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
    from my_agents import MyMultiTask
    from tests.integration.helpers import TINY_GIN, MakeTMaze

    root = sys.argv[1]
    config = dict(TINY_GIN)
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, "transformer")
    use_config(config, finalize=False)
    experiment = Experiment(
        run_name="custom", ckpt_base_dir=root, max_seq_len=4, traj_save_len=5,
        dataset=DiskTrajDataset(dset_root=root, dset_name="custom", dset_max_size=100),
        tstep_encoder_type=tstep, traj_encoder_type=traj, agent_type=MyMultiTask,
        make_train_env=MakeTMaze(), make_val_env=MakeTMaze(), parallel_actors=2, env_mode="sync",
        epochs=1, train_timesteps_per_epoch=6, train_batches_per_epoch=2, batch_size=4,
        val_timesteps_per_epoch=5, val_interval=1, ckpt_interval=1, dloader_workers=0,
        verbose=False, seed=0,
    )
    experiment.start()
    experiment.learn()
    """
)

DEPLOY = textwrap.dedent(
    """
    import json, sys

    from amago_pl import Policy
    from amago_pl.policy import PolicyLoadError

    run = sys.argv[1]
    report = {}
    try:
        Policy.from_checkpoint(run + "/ckpts/last.ckpt")  # my_agents not imported yet
    except PolicyLoadError as err:
        report["before_import"] = str(err)
    import my_agents  # noqa: F401  (registers MyMultiTask)

    for name in ("last.ckpt", "latest/policy.pt"):
        policy = Policy.from_checkpoint(run + "/ckpts/" + name)
        report[name] = type(policy.agent).__name__
    print(json.dumps(report))
    """
)


def _run(script, *args, cwd):
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=cwd,
        timeout=300,
    )


def test_registered_custom_agent_run_loads_without_agent_cls(tmp_path):
    (tmp_path / "my_agents.py").write_text(MY_AGENTS)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "deploy.py").write_text(DEPLOY)
    trained = _run(tmp_path / "train.py", tmp_path, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run = tmp_path / "custom"
    for name in ("last.ckpt", "latest/policy.pt"):
        assert torch.load(run / "ckpts" / name, weights_only=True)[AGENT_CLASS_KEY] == "my_multitask"

    deployed = _run(tmp_path / "deploy.py", run, cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    report = json.loads(deployed.stdout.strip().splitlines()[-1])
    assert report["last.ckpt"] == report["latest/policy.pt"] == "MyMultiTask"
    before = report["before_import"]
    assert "'my_multitask'" in before and "@register_agent(" in before and "agent_cls=" in before
