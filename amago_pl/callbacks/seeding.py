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
import socket
import time
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


def rollout_seed(base_seed: int, rank: int = 0, epoch: int = 0, launch: int = 0) -> int:
    """The seed of one process's rollouts (its env seeds, exploration and action sampling).

    ``rank`` is the global rank; ``launch`` counts the launches of a run (0 for a fresh run, then
    1, 2, ... for each resume: see ``LaunchLedger``), so a resumed run's envs, exploration and
    sampling never replay what an earlier launch already stored (docs/resume.md, "Resumed runs
    collect new data"); ``epoch`` is kept for callers that mix an epoch in. Rank 0 of a fresh run
    keeps ``base_seed`` itself, so single-process fresh runs are unchanged by this function; every
    other (rank, epoch, launch) mixes the numbers through numpy's ``SeedSequence`` hash, which
    makes their seeds unrelated (env ``i`` then uses ``seed + i``; a hashed seed lands within
    ``parallel_actors`` of another one with probability ~N / 2**31). Launch 0 hashes the same
    three numbers as before launches were counted, so fresh DDP runs keep their seeds too.
    """
    if rank == 0 and epoch == 0 and launch == 0:
        return int(base_seed)
    entropy = [int(base_seed), int(rank), int(epoch)] + ([int(launch)] if launch else [])
    mixed = np.random.SeedSequence(entropy).generate_state(1)[0]
    return int(mixed) % SEED_BOUND


LEDGER_NAME = "launches.txt"  # in the trajectory store's folder: one line per resumed launch


class LaunchLedger:
    """The launch numbers a trajectory store has seen, one line per resumed launch.

    The checkpoint alone cannot number launches: two resumes from the same checkpoint (the second
    after the first was killed) would read the same number and replay the same seeds, writing
    byte-identical copies of the first one's trajectories (issue 21, item 1). The store's folder
    is where those copies would land, and every launch that writes there can write this file, so
    the number comes from ``max(checkpoint's launch, ledger's largest) + 1``.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LEDGER_NAME

    def launches(self) -> list[int]:
        """Every recorded launch number, in file order (empty when there is no ledger yet)."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [int(line.split()[0]) for line in lines if line.split() and line.split()[0].isdigit()]

    def largest(self) -> int:
        return max(self.launches(), default=0)

    def record(self, launch: int, note: str = "") -> None:
        """Append ``launch`` (one short ``O_APPEND`` write: lines of concurrent writers do not mix)."""
        line = f"{int(launch)} pid={os.getpid()} host={socket.gethostname()} time={time.time():.0f} {note}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (line.strip() + "\n").encode())
        finally:
            os.close(fd)


def next_launch(checkpoint_launch: int, ledger_folder: str | os.PathLike | None) -> tuple[int, int]:
    """The number of a resumed launch and any extra seed entropy: ``(launch, 0)`` normally;
    ``(launch, fresh)`` when the ledger cannot be read or written (then the launch cannot be
    repeated exactly, but it still does not replay an earlier launch's seeds)."""
    launch = int(checkpoint_launch) + 1
    if ledger_folder is None:
        log.warning(
            "resumed run: no trajectory-store folder to number launches in; mixing fresh entropy "
            "into this launch's rollout seeds so it does not replay an earlier launch"
        )
        return launch, draw_seed()
    ledger = LaunchLedger(ledger_folder)
    try:
        launch = max(launch, ledger.largest() + 1)
        ledger.record(launch, note=f"resumed from a checkpoint of launch {int(checkpoint_launch)}")
    except OSError as err:
        log.warning(
            "could not read or write the launch ledger %s (%s); mixing fresh entropy into this "
            "launch's rollout seeds so it does not replay an earlier launch",
            ledger.path,
            err,
        )
        return launch, draw_seed()
    return launch, 0


def fresh_launch(ledger_folder: str | os.PathLike | None) -> tuple[int, int]:
    """The number of a fresh (not resumed) run's launch and any extra seed entropy.

    0, the seed itself, when the store has seen no launch; a fresh run started again under the same
    name with the same seed reuses the store (the original's behaviour), so it gets the next number
    and does not write copies of the earlier run's episodes. The launch is recorded either way.
    """
    if ledger_folder is None:
        return 0, 0
    ledger = LaunchLedger(ledger_folder)
    try:
        seen = ledger.launches()
        launch = max(seen) + 1 if seen else 0
        ledger.record(launch, note="fresh run")
    except OSError as err:
        log.warning(
            "could not read or write the launch ledger %s (%s); a fresh run under an earlier run's "
            "name with the same seed may store copies of its episodes",
            ledger.path,
            err,
        )
        return 0, 0
    return launch, 0


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
