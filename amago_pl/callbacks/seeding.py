"""Run seeds: a fresh one when none is given, per-rank rollout seeds, and the record that lets a
resumed run keep its seed.

The original AMAGO never seeds (``amago/experiment.py`` at 2d85600 has no seed at all), so each
``for trial in range(args.trials)`` iteration of its examples is an independent run. amago_pl seeds
for repeatability, which keeps that independence only if a run without a seed draws a new one
(``draw_seed``) and writes it down (``RunSeedCallback``) so it can be repeated or resumed.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

log = logging.getLogger(__name__)

SEED_BOUND = 2**31  # drawn and derived seeds lie in [0, SEED_BOUND): valid for every RNG we seed
CKPT_KEY = "amago_pl_seed"  # top-level checkpoint key holding the run seed


def draw_seed() -> int:
    """A fresh seed in ``[0, 2**31)`` from the OS entropy pool.

    Not from the global RNGs: an earlier run in the same process has seeded them, so a trials loop
    would draw the same "random" seed every time (and so would Lightning's ``seed_everything(None)``,
    which reuses ``PL_GLOBAL_SEED`` from the environment).
    """
    return secrets.randbelow(SEED_BOUND)


def rollout_seed(base_seed: int, rank: int = 0, epoch: int = 0) -> int:
    """The seed of one process's rollouts (its env seeds, exploration and, under DDP, its global RNGs).

    ``rank`` is the global rank; ``epoch`` is the epoch the collector was built at (non-zero when a
    run is resumed, so the resumed envs do not replay the first launch's episodes). Rank 0 of a
    fresh run keeps ``base_seed`` itself, so single-process runs are unchanged by this function;
    every other (rank, epoch) mixes the three numbers through numpy's ``SeedSequence`` hash, which
    makes the seeds of different ranks and epochs unrelated (env ``i`` then uses ``seed + i``; a
    hashed seed lands within ``parallel_actors`` of another one with probability ~N / 2**31).
    More components (e.g. a launch counter) can be appended to the entropy list.
    """
    if rank == 0 and epoch == 0:
        return int(base_seed)
    mixed = np.random.SeedSequence([int(base_seed), int(rank), int(epoch)]).generate_state(1)[0]
    return int(mixed) % SEED_BOUND


def seed_global_rngs(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (what action sampling draws from)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _shift_callback_seeds(trainer: pl.Trainer, old: int, new: int) -> None:
    """Move the rollout and evaluation callbacks from seed ``old`` to ``new``, keeping their offsets
    (evaluation envs use ``seed + 1_000_000``)."""
    # Duck-typed (``follows_run_seed``) so this module needs no import of the callbacks it moves.
    for cb in trainer.callbacks:
        if getattr(cb, "follows_run_seed", False):
            cb.seed = cb.seed - old + new


class RunSeedCallback(pl.Callback):
    """Keeps one run seed for the whole run, across ranks and launches.

    * ``setup``: under DDP every rank takes rank 0's seed (ranks that drew their own, e.g. processes
      started by torchrun or Lightning's launcher, would otherwise derive from different seeds).
    * ``on_save_checkpoint``: the seed goes into the checkpoint under ``CKPT_KEY``.
    * ``on_load_checkpoint``: a resumed run whose seed was drawn takes the recorded one instead
      (an explicitly given seed wins, as before).
    * ``on_train_start`` (rank 0): the seed goes into ``{run_dir}/config.txt`` (after
      ``ConfigLoggingCallback`` has written it: list this callback after that one) and to the
      loggers as the ``seed`` hyperparameter.

    Args:
        seed: the run seed.
        drawn: True when nobody chose ``seed`` (it came from ``draw_seed``).
        run_dir: folder of config.txt; None writes nothing.
        config_template: the line written to config.txt, formatted with ``seed``.
        owner: an object whose ``seed`` attribute follows a changed seed (the Experiment).
    """

    def __init__(
        self,
        seed: int,
        drawn: bool,
        run_dir: str | os.PathLike | None = None,
        config_template: str = "Experiment.seed = {seed}",
        owner: Any = None,
    ):
        self.seed = int(seed)
        self.drawn = drawn
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.config_template = config_template
        self.owner = owner

    def _change(self, trainer: pl.Trainer, new: int, why: str) -> None:
        new = int(new)
        if new == self.seed:
            return
        log.info("run seed %d -> %d (%s)", self.seed, new, why)
        _shift_callback_seeds(trainer, self.seed, new)
        self.seed = new
        if self.owner is not None:
            self.owner.seed = new
        # As if the run had been started with this seed (rank 0's RNG states of a resumed run are
        # then restored from the checkpoint by RolloutCallback).
        pl.seed_everything(new, workers=True, verbose=False)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            self._change(trainer, trainer.strategy.broadcast(self.seed, src=0), "rank 0's seed")

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CKPT_KEY] = self.seed

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        recorded = checkpoint.get(CKPT_KEY)
        if recorded is None:
            return
        if self.drawn:
            self._change(trainer, recorded, "the resumed checkpoint's seed")
        elif int(recorded) != self.seed:
            log.info("resuming a run recorded with seed %s under the given seed %d", recorded, self.seed)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        if self.run_dir is not None:
            self._record_in_config(self.run_dir / "config.txt")
        for logger in trainer.loggers:
            logger.log_hyperparams({"seed": self.seed})

    def _record_in_config(self, path: Path) -> None:
        """Put the seed line into config.txt: in place of gin's record of the keyword when there is
        one (gin writes ``Experiment.seed = None`` for a seed it supplied), else at the end."""
        how = "drawn at random because none was given" if self.drawn else "as given"
        new = [
            f"# Run seed ({how}); pass it to repeat this run.",
            self.config_template.format(seed=self.seed),
        ]
        key = self.config_template.split("=")[0].strip() + " ="
        lines = path.read_text().splitlines() if path.exists() else []
        at = next((i for i, line in enumerate(lines) if line.startswith(key)), None)
        if at is not None and not key.startswith("#"):
            lines[at : at + 1] = new
        else:
            lines += ["", *new]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".config.txt.seed.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)
