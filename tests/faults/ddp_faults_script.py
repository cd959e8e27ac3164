"""Two-rank CPU DDP runs with a fault on rank 1, launched by test_faults_ddp.py as a script
(Lightning's DDP launcher re-runs this file for rank 1).

    python ddp_faults_script.py OUT crash   # rank 1's env keeps raising from its 8th step on
    python ddp_faults_script.py OUT nan     # rank 1's loss is NaN at global steps 1 and 2
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import gin
import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from amago_pl.callbacks import RolloutCallback  # noqa: E402
from amago_pl.datamodules import DiskTrajDataset  # noqa: E402
from amago_pl.modules.agent import Agent  # noqa: E402
from amago_pl.nets.traj_encoders import GRUTrajEncoder  # noqa: E402
from amago_pl.nets.tstep_encoders import FFTstepEncoder  # noqa: E402
from tests.faults.support import MakeFaulty  # noqa: E402

TINY = """
FFTstepEncoder.d_hidden = 32
FFTstepEncoder.d_output = 16
GRUTrajEncoder.d_hidden = 32
GRUTrajEncoder.d_output = 32
Actor.d_hidden = 32
NCritics.d_hidden = 32
"""


class RankOnePoisoned(Agent):
    def compute_loss(self, batch: Any, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        parts = super().compute_loss(batch, diagnostics)
        if self.global_rank == 1 and self.global_step in (1, 2):
            parts["loss_critic"] = parts["loss_critic"] * float("nan")
        return parts


def main(out_dir: str, mode: str) -> None:
    gin.parse_config(TINY)
    make_env = MakeFaulty("raise_step", at_step=8, rank_only=1) if mode == "crash" else MakeFaulty()
    probe = MakeFaulty()()
    agent_cls = RankOnePoisoned if mode == "nan" else Agent
    agent = agent_cls(
        probe.observation_space, probe.rl2_space, probe.action_space, 4, FFTstepEncoder, GRUTrajEncoder
    )
    dataset = DiskTrajDataset(dset_root=out_dir, dset_name="ddp", dset_max_size=1000)
    dataset.configure(batch_size=4, max_seq_len=4, train_batches_per_epoch=3)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        # A bounded wait in collectives: a rank that is gone cannot stall the others for the
        # default 30 minutes (Lightning's launcher usually ends them sooner, see docs/reliability.md).
        strategy=DDPStrategy(timeout=timedelta(seconds=60)),
        max_epochs=3,
        callbacks=[
            RolloutCallback(
                make_env,
                parallel_actors=2,
                env_mode="sync",
                timesteps_per_epoch=6,
                max_seq_len=4,
                traj_save_len=5,
                verbose=False,
            ),
        ],
        logger=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(agent, datamodule=dataset)
    weights = b"".join(p.detach().numpy().tobytes() for p in agent.parameters())
    report = {
        "global_step": trainer.global_step,
        "skipped_steps": getattr(agent, "skipped_steps", 0),
        "weights": hashlib.sha256(weights).hexdigest(),
        "finite": all(bool(torch.isfinite(p).all()) for p in agent.parameters()),
    }
    (Path(out_dir) / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
