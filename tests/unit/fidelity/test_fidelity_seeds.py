"""Seeding fidelity (rows 6 and 9).

Row 9: the original never seeds (amago/experiment.py at 2d85600 has no seed), so the examples'
``for trial in range(args.trials)`` loop gives independent runs. An Experiment (or CLI run) without
a seed must therefore draw a fresh one, record it in config.txt and the checkpoint, and a resume
must continue with the recorded seed; an explicit seed keeps working as before.

Row 6 (unit part): ``rollout_seed`` gives every (rank, epoch) its own seed and keeps the run seed
for rank 0 of a fresh run. The two-process DDP check is tests/integration/test_fidelity_ddp_seeds.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.modules.agent import Agent
from tests.integration.cli_support import TINY_GIN as CLI_TINY_GIN
from tests.integration.cli_support import TINY_YAML
from tests.integration.helpers import TINY_GIN, MakeTMaze

HORIZON = 4


def tiny(tmp_path: Path, **overrides: Any) -> Experiment:
    """The integration tests' tiny T-Maze run, cut to one epoch of one batch."""
    config = dict(TINY_GIN)
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, "transformer")
    use_config(config, finalize=False)
    kwargs: dict[str, Any] = dict(
        run_name="tiny",
        ckpt_base_dir=str(tmp_path),
        max_seq_len=HORIZON,
        dataset=DiskTrajDataset(dset_root=str(tmp_path), dset_name="tiny", dset_max_size=100),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        make_train_env=MakeTMaze(),
        make_val_env=MakeTMaze(),
        val_timesteps_per_epoch=0,
        parallel_actors=2,
        env_mode="sync",
        epochs=1,
        train_timesteps_per_epoch=6,
        train_batches_per_epoch=1,
        batch_size=4,
        val_interval=None,
        ckpt_interval=1,
        dloader_workers=0,
        log_interval=1,
        verbose=False,
        traj_save_len=HORIZON + 1,
    )
    kwargs.update(overrides)
    return Experiment(**kwargs)


def recorded_seed(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["amago_pl_seed"]


def rollout_callback(exp: Experiment):
    from amago_pl.callbacks import RolloutCallback

    return next(cb for cb in exp.trainer.callbacks if isinstance(cb, RolloutCallback))


def test_unseeded_runs_draw_different_seeds_even_after_global_seeding():
    # A trials loop: every run seeds the global RNGs, so a seed drawn from them would repeat.
    seeds = []
    for _ in range(3):
        pl.seed_everything(0, verbose=False)
        seeds.append(tiny(Path("/nonexistent")).seed)
    assert len(set(seeds)) == 3, seeds
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    assert tiny(Path("/nonexistent")).seed_drawn


def test_explicit_seed_is_kept():
    exp = tiny(Path("/nonexistent"), seed=7)
    assert exp.seed == 7 and not exp.seed_drawn
    with pytest.raises(ValueError, match="seed"):
        tiny(Path("/nonexistent"), seed=-1)


def test_drawn_seed_recorded_in_config_and_checkpoint_and_reused_on_resume(tmp_path):
    first = tiny(tmp_path)
    first.start()
    first.learn()
    seed = first.seed
    run = tmp_path / "tiny"
    config = (run / "config.txt").read_text()
    assert f"Experiment.seed = {seed}" in config and "Experiment.seed = None" not in config
    assert recorded_seed(run / "ckpts" / "last.ckpt") == seed
    assert rollout_callback(first).env_seed == seed  # rank 0 of a fresh run: the run seed itself

    resumed = tiny(tmp_path, epochs=2)
    assert resumed.seed != seed  # drawn afresh at construction ...
    resumed.start()
    resumed.load_checkpoint("last")
    resumed.learn()
    assert resumed.seed == seed  # ... and replaced by the checkpoint's on resume
    assert rollout_callback(resumed).seed == seed
    assert recorded_seed(run / "ckpts" / "last.ckpt") == seed
    assert f"Experiment.seed = {seed}" in (run / "config.txt").read_text()


def test_explicit_seed_wins_over_the_recorded_one(tmp_path):
    first = tiny(tmp_path)
    first.start()
    first.learn()
    resumed = tiny(tmp_path, epochs=2, seed=first.seed + 1)
    resumed.start()
    resumed.load_checkpoint("last")
    resumed.learn()
    assert resumed.seed == first.seed + 1
    assert recorded_seed(tmp_path / "tiny" / "ckpts" / "last.ckpt") == first.seed + 1


def test_rollout_seed_per_rank_and_epoch():
    from amago_pl.callbacks.seeding import rollout_seed

    assert rollout_seed(123) == rollout_seed(123, 0, 0) == 123
    seeds = [rollout_seed(123, r, e) for r in range(8) for e in range(4)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**31 for s in seeds)
    # Env i of a rank uses seed + i: no two ranks' actor windows overlap for 64 actors.
    starts = sorted(rollout_seed(123, r, 0) for r in range(8))
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 64
    assert rollout_seed(124, 1, 0) != rollout_seed(123, 1, 0)


def test_cli_without_seed_draws_records_and_resumes(tmp_path, monkeypatch):
    from amago_pl import cli

    # Lightning leaves PL_GLOBAL_SEED behind and its own random pick reuses it: restore it after.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    gin_path = tmp_path / "tiny.gin"
    gin_path.write_text(CLI_TINY_GIN)

    def fit(root: Path, epochs: int, *extra: str) -> int:
        yaml_path = root / "run.yaml"
        text = TINY_YAML.format(epochs=epochs, root=root, batches=1).replace("seed_everything: 0\n", "")
        yaml_path.write_text(text)
        done = cli.run(["fit", "--config", str(yaml_path), "--gin", str(gin_path), *extra])
        return done.trainer

    seeds = []
    for i in range(2):
        root = tmp_path / f"trial{i}"
        root.mkdir()
        trainer = fit(root, 1)
        seed = recorded_seed(root / "cli" / "ckpts" / "last.ckpt")
        assert f"run.seed = {seed}" in (root / "cli" / "config.txt").read_text()
        assert rollout_callback_of(trainer).seed == seed
        seeds.append(seed)
    assert seeds[0] != seeds[1]

    trainer = fit(tmp_path / "trial0", 2, "--ckpt_path", "last")
    assert rollout_callback_of(trainer).seed == seeds[0]
    assert recorded_seed(tmp_path / "trial0" / "cli" / "ckpts" / "last.ckpt") == seeds[0]


def rollout_callback_of(trainer: pl.Trainer):
    from amago_pl.callbacks import RolloutCallback

    return next(cb for cb in trainer.callbacks if isinstance(cb, RolloutCallback))
