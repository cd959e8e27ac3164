"""Preemption: SIGTERM writes a checkpoint and ends the run with a non-zero exit status.

Lightning turns SIGTERM into a flag that its loops check after each training batch, then raise
``SIGTERMException`` (lightning/pytorch/trainer/connectors/signal_connector.py and
loops/training_epoch_loop.py, Lightning 2.6; under DDP rank 0's flag is broadcast so every rank
stops at the same batch). That exception is a ``SystemExit`` without a code, so the process exits
with status 0 and a preempted run looks like a finished one to a scheduler or a shell loop
(issue 21, item 14), and nothing is saved since the last epoch checkpoint.

``PreemptionCheckpoint`` handles it: it writes ``{ckpt_dir}/last.ckpt`` at the batch where the run
stopped (a mid-epoch checkpoint: Lightning resumes it mid-epoch, so global step, epoch and env-step
counters continue exactly as in an uninterrupted run) and sets the exit status to 143 (128 +
SIGTERM, the shell's convention for a process ended by SIGTERM).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

EXIT_STATUS = 128 + int(signal.SIGTERM)  # 143


class PreemptionCheckpoint(pl.Callback):
    """On SIGTERM during ``fit``: save ``{ckpt_dir}/last.ckpt``, exit with status 143.

    Args:
        ckpt_dir: the folder of the run's checkpoints (resume with ``ckpt_path="last"``,
            ``Experiment.load_checkpoint("last")`` or ``amago-pl fit ... --ckpt_path last``).
    """

    def __init__(self, ckpt_dir: str | os.PathLike):
        self.ckpt_dir = Path(ckpt_dir)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        # Every rank gets here at the same batch (Lightning broadcasts the flag), so the
        # collective inside save_checkpoint (a barrier) is reached by all of them.
        path = self.ckpt_dir / "last.ckpt"
        try:
            # weights_only=False: the full training state, said explicitly, else Lightning logs
            # "`weights_only` was not set, defaulting to `False`" (checkpoint_connector.py, 2.6), which
            # reads like an unsafe load in the preemption message's place.
            trainer.save_checkpoint(path, weights_only=False)
        except Exception as err:  # the exit status below must still say "preempted"
            log.error("SIGTERM: could not write %s (%s); resume from the previous checkpoint", path, err)
        else:
            if trainer.global_rank == 0:
                log.warning(
                    "SIGTERM received: saved %s at epoch %d, global step %d; exiting with status %d. "
                    "Resume with ckpt_path='last' (Experiment.load_checkpoint('last'), or "
                    "`amago-pl fit ... --ckpt_path last`).",
                    path,
                    trainer.current_epoch,
                    trainer.global_step,
                    EXIT_STATUS,
                )
        exception.code = EXIT_STATUS  # SystemExit's status; Lightning re-raises this exception
