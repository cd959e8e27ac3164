"""The ``amago-pl`` paths as a user takes them, each in a fresh process on tiny settings.

- ``--gin`` under DDP started three ways (Lightning's launcher, ``torchrun``, SLURM simulated by two
  processes with SLURM's variables): every rank trains with the same gin config (each rank writes
  its config from ``GinProbe``), and ranks started with different gin stop with an error naming
  the binding.
- ``--print_config`` prints the gin items; the printed YAML given back with ``--config``
  reproduces the run's config.txt.
- The README's CLI command as written (plus tiny overrides); ``enable_progress_bar false`` also
  silences the collection and evaluation bars.
- ``--optimizer`` is refused with the keys to use; ``predict`` is not offered.
- ``use_config`` run twice in one process (a notebook cell re-run) starts a new configuration.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cli_support import REPO, subprocess_env, write_configs
from tests.integration.gin_rank_probe import PROBE_FLAG

pytestmark = pytest.mark.integration

DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
GAMMA = "Agent.gamma = 0.9"  # the Agent's default is 0.999
TIMEOUT = 300


def amago_pl() -> str:
    """The installed console script (a user's ``amago-pl``)."""
    path = shutil.which("amago-pl")
    if path is None:
        pytest.skip("the amago-pl console script is not installed (pip install -e .)")
    return path


def tiny_run(root: Path) -> list[str]:
    """``fit`` on the tiny YAML with a gin file that changes layer sizes and one binding."""
    yaml_path, gin_path = write_configs(root, epochs=1, batches=1)
    return ["fit", "--config", str(yaml_path), "--gin", str(gin_path), "--gin", GAMMA]


def run(cmd: list[str], root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=root, env=env or subprocess_env()
    )


def rank_reports(run_dir: Path) -> list[dict]:
    return [json.loads((run_dir / f"rank{r}.json").read_text()) for r in (0, 1)]


def assert_same_gin(run_dir: Path) -> None:
    reports = rank_reports(run_dir)
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["gamma"] for r in reports] == [0.9, 0.9]
    assert reports[0]["parameters"] == reports[1]["parameters"]
    assert reports[0]["gin"] == reports[1]["gin"]
    assert "TformerTrajEncoder.d_model = 32" in reports[1]["gin"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lightning_launcher_then_print_config_round_trip_under_torchrun(tmp_path: Path) -> None:
    # Lightning's DDP launcher starts rank 1 by re-running this command line.
    args = [*tiny_run(tmp_path), *DDP, PROBE_FLAG]
    proc = run([amago_pl(), *args], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_gin(tmp_path / "cli")
    first = tmp_path / "cli_first"
    (tmp_path / "cli").rename(first)
    saved = next(first.glob("logs/*/config.yaml")).read_text()
    assert "gin:" in saved and GAMMA in saved

    printed = run([amago_pl(), *args, "--print_config"], tmp_path)
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert f"- {GAMMA}" in printed.stdout and "tiny.gin" in printed.stdout
    (tmp_path / "printed.yaml").write_text(printed.stdout)

    # The printed YAML alone, under torchrun (each rank parses it itself).
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = run([*torchrun, "-m", "amago_pl.cli", "fit", "--config", "printed.yaml"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_gin(tmp_path / "cli")
    assert (tmp_path / "cli" / "config.txt").read_text() == (first / "config.txt").read_text()


def slurm_ranks(args: list[str], root: Path, rank1_extra: list[str]) -> list[subprocess.CompletedProcess]:
    """Two processes started as ``srun`` starts them: SLURM's variables, one rank each."""
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = subprocess_env()
        env.update(
            SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="1", SLURM_NODEID="0",
            SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_JOB_ID="4242",
            SLURM_JOB_NAME="amago_pl_test",  # "bash" or "interactive" would turn detection off
            MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
        )  # fmt: skip
        cmd = [amago_pl(), *args, *(rank1_extra if rank == 1 else [])]
        procs.append(
            subprocess.Popen(
                cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out


def test_slurm_ranks_hold_the_same_gin(tmp_path: Path) -> None:
    ranks = slurm_ranks([*tiny_run(tmp_path), *DDP, PROBE_FLAG], tmp_path, [])
    for proc in ranks:
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SLURM" in ranks[0].stderr + ranks[0].stdout  # Lightning took the SLURM environment
    assert_same_gin(tmp_path / "cli")


def test_ranks_with_different_gin_stop_naming_the_binding(tmp_path: Path) -> None:
    ranks = slurm_ranks([*tiny_run(tmp_path), *DDP], tmp_path, ["--gin", "Agent.gamma = 0.5"])
    for proc in ranks:
        assert proc.returncode != 0
        assert "Agent.gamma: rank 0 has 0.9, rank 1 has 0.5" in proc.stderr, proc.stderr[-3000:]
    assert not list((tmp_path / "cli").glob("ckpts/*.ckpt")), "no rank may train"


def readme_command() -> list[str]:
    """The README's ``amago-pl fit --config examples/configs/tmaze_cli.yaml ...`` command."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if (
            line.startswith("amago-pl fit --config examples/configs/tmaze_cli.yaml")
            and "--ckpt_path" not in line
        ):
            return shlex.split(line)[1:]
    raise AssertionError("README.md shows no `amago-pl fit --config examples/configs/tmaze_cli.yaml` command")


def test_readme_cli_example_runs_and_progress_bars_follow_the_trainer(tmp_path: Path) -> None:
    tiny = ["--trainer.max_epochs", "1", "--trainer.check_val_every_n_epoch", "1", "--data.batch_size", "4",
            "--data.batches_per_epoch", "1", "--data.dset_root", str(tmp_path), "--run.parallel_actors", "2",
            "--run.timesteps_per_epoch", "12", "--run.run_dir", str(tmp_path / "readme"),
            "--trainer.enable_progress_bar", "false"]  # fmt: skip
    proc = run([amago_pl(), *readme_command(), *tiny], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (tmp_path / "readme" / "config.txt").read_text()
    assert "TformerTrajEncoder.d_model = 128" in config  # the YAML's gin file (cpu_small_transformer.gin)
    assert "Agent.gamma = 0.999" in config  # the README's --gin binding
    bars = re.findall(r"collect:|rollouts:", proc.stderr + proc.stdout)
    assert not bars, "a progress bar was drawn with --trainer.enable_progress_bar false"


def test_optimizer_flags_refused_and_predict_not_offered(tmp_path: Path) -> None:
    yaml_path, _ = write_configs(tmp_path)
    proc = run([amago_pl(), "fit", "--config", str(yaml_path), "--optimizer", "Adam"], tmp_path)
    assert proc.returncode != 0
    for key in ("Agent.learning_rate", "Agent.lr_warmup_steps", "Agent.l2_coeff", "--model.learning_rate"):
        assert key in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "cli").exists(), "nothing may be built"
    proc = run([amago_pl(), "predict", "--config", str(yaml_path)], tmp_path)
    assert proc.returncode != 0 and "invalid choice: 'predict'" in proc.stderr


NOTEBOOK = """
import gin
from amago_pl.cli_utils import use_config

use_config({"Agent.gamma": 0.9})
use_config({"Agent.gamma": 0.5})  # the cell run again, edited
assert gin.query_parameter("Agent.gamma") == 0.5 and gin.config_is_locked()
use_config({"Agent.tau": 0.01})  # another cell: a new configuration, gamma back to its default
assert gin.query_parameter("Agent.tau") == 0.01
try:
    gin.query_parameter("Agent.gamma")
    raise AssertionError("the previous configuration leaked into the new one")
except ValueError:
    pass
from amago_pl.cli_utils import reset_config

reset_config()  # the explicit way: unlocked and empty
assert not gin.config_is_locked() and "Agent.tau" not in gin.config_str()
print("ok")
"""


def test_use_config_twice_in_one_process(tmp_path: Path) -> None:
    proc = run([sys.executable, "-c", NOTEBOOK], tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
