"""Files and helpers for the CLI/resume/DDP integration tests (each run in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

REPO = Path(__file__).resolve().parents[2]

TINY_YAML = """
seed_everything: 0
trainer:
  max_epochs: {epochs}
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
model:
  env: tmaze
  env_kwargs: {{corridor_length: 3}}
  max_seq_len: 4
data:
  dset_root: {root}
  dset_name: cli
  batch_size: 4
  batches_per_epoch: {batches}
run:
  run_dir: {root}/cli
  parallel_actors: 2
  timesteps_per_epoch: 6
  val_timesteps: 5
  traj_save_len: 5
  ckpt_interval: 1
"""

TINY_GIN = """
FFTstepEncoder.d_hidden = 32
FFTstepEncoder.d_output = 16
TformerTrajEncoder.d_model = 32
TformerTrajEncoder.d_ff = 64
TformerTrajEncoder.n_layers = 1
TformerTrajEncoder.n_heads = 2
Actor.d_hidden = 32
NCritics.d_hidden = 32
EpsilonGreedy.steps_anneal = 1000
"""


def write_configs(root: Path, epochs: int = 2, batches: int = 3) -> tuple[Path, Path]:
    yaml_path, gin_path = root / "run.yaml", root / "tiny.gin"
    yaml_path.write_text(TINY_YAML.format(epochs=epochs, root=root, batches=batches))
    gin_path.write_text(TINY_GIN)
    return yaml_path, gin_path


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["WANDB_MODE"] = "offline"
    # An in-process wandb run of an earlier test leaves WANDB_SERVICE in os.environ; a child that
    # inherits it attaches to that test process's wandb-core, which writes the child's run file
    # after the child has exited, so the file read back was still empty.
    env.pop("WANDB_SERVICE", None)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "amago_pl.cli", *args]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args), capture_output=True, text=True, timeout=timeout, env=subprocess_env(), cwd=REPO
    )


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # checkpoints are plain data


def rollout_state(ckpt: dict) -> dict:
    for key, value in ckpt["callbacks"].items():
        if key.startswith("RolloutCallback"):
            return value
    raise KeyError(f"no RolloutCallback state in {list(ckpt['callbacks'])}")


class ResumeProbe(pl.Callback):
    """Imported by class path from the CLI: records, when training starts, whether the restored
    state equals a checkpoint's (weights, LR schedule, optimizer step count, global step)."""

    def __init__(self, ckpt: str, out: str):
        self.ckpt, self.out = ckpt, out

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ref = load_ckpt(Path(self.ckpt))
        state = pl_module.state_dict()
        same = all(torch.equal(state[k].cpu(), v) for k, v in ref["state_dict"].items())
        sched = trainer.lr_scheduler_configs[0].scheduler.last_epoch
        ref_sched = ref["lr_schedulers"][0]["last_epoch"]
        opt_steps = max((int(s["step"]) for s in trainer.optimizers[0].state.values()), default=0)
        Path(self.out).write_text(f"{same} {sched == ref_sched} {opt_steps} {trainer.global_step}")
