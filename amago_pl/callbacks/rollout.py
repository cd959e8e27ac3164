"""Data collection as a Lightning Callback: the train envs step with the current policy and every
finished trajectory goes into the DataModule's store before the epoch's gradient steps."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from tqdm.auto import tqdm

from amago_pl.callbacks.interact import RolloutState, fresh_state, interact, summarize_episodes
from amago_pl.callbacks.metric_axes import TOTAL_FRAMES, define_env_step_axis
from amago_pl.callbacks.seeding import fresh_launch, next_launch, rollout_seed, seed_global_rngs
from amago_pl.callbacks.trainer_context import (  # noqa: F401  (re-exported: the old import path)
    autocast_context,
    log_to_loggers,
    sum_over_ranks,
    total_frames,
    world_info,
)
from amago_pl.datamodules.data_wait import sleep_and_refresh, trains_in_epoch, wait_for_data
from amago_pl.envs import make_parallel_envs
from amago_pl.envs.watchdog import DEFAULT_HANG_TIMEOUT

log = logging.getLogger(__name__)


class RolloutCallback(pl.Callback):
    """Collects ``train_timesteps_per_epoch`` steps per actor before every training epoch.

    The env-step count is published as ``trainer.callback_metrics["total_frames"]`` (read it with
    ``total_frames(trainer)``), where evaluation and any other callback find it.

    Args:
        make_env: a callable returning an ``AMAGOEnv``, or one callable per actor.
        parallel_actors: envs per process (each DDP rank runs its own).
        env_mode: "sync", "async" or "already_vectorized".
        train_timesteps_per_epoch: env steps per actor per epoch (1000 when neither this nor its
            older name ``timesteps_per_epoch`` is given).
        max_seq_len: the agent's context length (sets the stagger range of file lengths).
        traj_save_len: split trajectories into files of about this many steps.
        stagger_traj_file_lengths: draw file lengths in [traj_save_len +- max_seq_len] so training
            windows see the same offsets as rollouts (the original's default).
        start_collecting_at_epoch: no collection before this epoch (offline -> online).
        exploration_wrapper_type: exploration class built as ``cls(action_space, parallel_actors)``.
        sample_actions: sample the policy (True) or act greedily.
        save_trajs_as: "npz" or "npz-compressed".
        force_reset_train_envs_every: reset every env and the memory every N epochs (None: never).
        seed: base seed; the envs of rank r use ``rollout_seed(seed, r, launch=L)`` (``seed``
            itself for rank 0 of a fresh run) plus the actor index, where L counts the run's
            launches (0 fresh, +1 per resume; kept in the checkpoint and in the store's
            ``launches.txt``). The same number seeds the exploration wrapper and, under DDP or
            after a resume, the global RNGs that action sampling draws from, so neither ranks
            nor launches repeat each other's data.
        timesteps_per_epoch: the earlier name of ``train_timesteps_per_epoch``.
        hang_timeout: seconds an env call, or a wait for training data without a new file, may
            take before the run stops naming the cause (None: forever; ``envs/watchdog.py``,
            ``datamodules/data_wait.py``).
    """

    follows_run_seed = True  # RunSeedCallback moves ``seed`` when the run seed changes

    def __init__(
        self,
        make_env: Callable | Sequence[Callable],
        parallel_actors: int = 12,
        env_mode: str = "async",
        train_timesteps_per_epoch: int | None = None,
        max_seq_len: int = 128,
        traj_save_len: int = 10**10,
        stagger_traj_file_lengths: bool = True,
        start_collecting_at_epoch: int = 0,
        exploration_wrapper_type: Callable | None = None,
        sample_actions: bool = True,
        save_trajs_as: str = "npz",
        force_reset_train_envs_every: int | None = None,
        async_env_mp_context: str | None = None,
        seed: int = 0,
        verbose: bool = True,
        timesteps_per_epoch: int | None = None,
        hang_timeout: float | None = DEFAULT_HANG_TIMEOUT,
    ):
        if None not in (train_timesteps_per_epoch, timesteps_per_epoch) and (
            train_timesteps_per_epoch != timesteps_per_epoch
        ):
            raise ValueError(
                f"train_timesteps_per_epoch={train_timesteps_per_epoch} and its older name "
                f"timesteps_per_epoch={timesteps_per_epoch} disagree: give one"
            )
        if train_timesteps_per_epoch is None:
            train_timesteps_per_epoch = 1000 if timesteps_per_epoch is None else timesteps_per_epoch
        if save_trajs_as not in ("npz", "npz-compressed"):
            raise ValueError(f"save_trajs_as={save_trajs_as!r}: use 'npz' or 'npz-compressed'")
        if int(traj_save_len) < max_seq_len:
            raise ValueError(
                f"traj_save_len={traj_save_len} is shorter than max_seq_len={max_seq_len}: training windows "
                "could never be full. Raise traj_save_len or lower max_seq_len."
            )
        self.make_env = make_env
        self.parallel_actors = parallel_actors
        self.env_mode = env_mode
        self.train_timesteps_per_epoch = train_timesteps_per_epoch
        self.max_seq_len = max_seq_len
        self.traj_save_len = int(traj_save_len)
        self.stagger = stagger_traj_file_lengths
        self.start_collecting_at_epoch = start_collecting_at_epoch
        self.exploration_wrapper_type = exploration_wrapper_type
        self.sample_actions = sample_actions
        self.compressed = save_trajs_as == "npz-compressed"
        self.force_reset_every = force_reset_train_envs_every
        self.mp_context = async_env_mp_context
        self.seed = seed
        self.env_seed: int | None = None  # this process's rollout seed, set when the envs are built
        self.launch = 0  # 0 for a fresh run, +1 per resume (checkpointed; see _number_launch)
        self.verbose = verbose
        self.hang_timeout = hang_timeout
        # Checkpointed state.
        self.local_frames = 0  # env steps taken by this process
        self.total_frames = 0  # env steps summed over ranks (logged x-axis)
        self.collected_epochs: set[int] = set()
        self.exploration = None
        self.history: list[dict[str, float]] = []  # rollout metrics per collection (for the curve)
        self._restored: dict[str, Any] | None = None
        # Live objects (rebuilt on start).
        self.envs = None
        self.writer = None
        self.state: RolloutState | None = None

    @property
    def timesteps_per_epoch(self) -> int:
        return self.train_timesteps_per_epoch

    # ------------------------------------------------------------------ lifecycle
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        define_env_step_axis(trainer)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._build(trainer, pl_module)
        # Lightning creates the epoch-0 data iterator before on_train_epoch_start, so the first
        # collection happens here (see docs/architecture.md).
        self._maybe_collect(trainer, pl_module, trainer.current_epoch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Again after a sanity check, whose end clears trainer.callback_metrics.
        self._publish(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._maybe_collect(trainer, pl_module, trainer.current_epoch)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Trainer.validate/test on a checkpoint: the count restored from it is the metrics' env step.
        self._publish(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._publish(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
            self.envs = None

    def _build(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from amago_pl.datamodules import TrajectoryWriter

        rank, world_size = world_info(trainer)
        # Lightning restores the loops (trainer.current_epoch) only after on_fit_start, so the
        # epoch cannot tell a resume apart here (it read 0 and replayed the first launch's seeds:
        # issue 21 item 1). The restored callback state can: it is loaded before on_fit_start.
        resumed = self._restored is not None
        self.launch, extra = self._number_launch(trainer, resumed)
        rank_seed = rollout_seed(self.seed, rank, 0, self.launch)
        if extra:  # the ledger was unusable: fresh entropy instead of a repeatable launch number
            rank_seed = rollout_seed(rank_seed, 0, extra)
        self.env_seed = rank_seed
        if world_size > 1 or resumed or self.launch > 0:
            # Every rank seeded its global RNGs with the same run seed (and torch starts from one
            # fixed seed when nobody seeds it), so without this all ranks would sample the same
            # actions and store near-identical data; a resumed launch (or a fresh run reusing an
            # earlier run's store) would redraw the actions of the launch before it. A fresh
            # single-process run in a new store keeps its seed_everything state.
            seed_global_rngs(rank_seed)
        self.envs = make_parallel_envs(
            self.make_env,
            self.parallel_actors,
            mode=self.env_mode,
            seed=rank_seed,
            mp_context=self.mp_context,
            hang_timeout=self.hang_timeout,
        )
        if self.exploration is None and self.exploration_wrapper_type is not None:
            self.exploration = self.exploration_wrapper_type(
                self.envs.single_action_space, self.envs.num_envs
            )
            if hasattr(self.exploration, "seed"):
                self.exploration.seed(rank_seed)
        if self._restored is not None:
            self._apply_restored(rank)
            if self.exploration is not None and hasattr(self.exploration, "seed"):
                # The restored exploration RNG would redraw the resumed launch's noise: keep its
                # schedule (steps), draw from this launch's seed.
                self.exploration.seed(rank_seed)
        store = trainer.datamodule.save_new_trajs_to if trainer.datamodule is not None else None
        if store is not None:
            save_range = None
            if self.stagger and self.max_seq_len < self.traj_save_len:
                save_range = (self.traj_save_len - self.max_seq_len, self.traj_save_len + self.max_seq_len)
            self.writer = TrajectoryWriter(
                store,
                self.envs.num_envs,
                self.traj_save_len,
                save_len_range=save_range,
                compressed=self.compressed,
            )
        self._reset_envs(pl_module)

    def _reset_envs(self, pl_module: pl.LightningModule) -> None:
        timestep = self.envs.reset()
        self.state = fresh_state(pl_module, timestep, pl_module.device)
        if self.writer is not None:
            self.writer.start(timestep)

    # ------------------------------------------------------------------ collection
    def _maybe_collect(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        if trainer.datamodule is not None and hasattr(trainer.datamodule, "set_epoch"):
            trainer.datamodule.set_epoch(epoch)  # the sampling seeds follow the Trainer's epoch
        if epoch in self.collected_epochs:
            return
        if epoch < self.start_collecting_at_epoch or self.train_timesteps_per_epoch <= 0:
            # No collection here (offline epochs, an async learner), but the buffer still needs its
            # per-epoch upkeep: new files from collector processes, and eviction, which in async
            # runs only the learner may do (the original runs it every epoch whether or not it
            # collects: amago/experiment.py:927-935 at 2d85600).
            self.collected_epochs.add(epoch)
            self._publish(trainer)
            dataset = trainer.datamodule
            if dataset is not None and trains_in_epoch(dataset, epoch):
                # Wait here, in the main process, rather than only in loader workers, where SIGTERM
                # is not seen and the wait would outlast a preemption notice.
                wait_for_data(dataset, self.hang_timeout, lambda: sleep_and_refresh(dataset))
            if dataset is not None and hasattr(dataset, "on_end_of_collection"):
                log_to_loggers(trainer, dataset.on_end_of_collection(), total_frames=self.total_frames)
            return
        if self.force_reset_every and epoch > 0 and epoch % self.force_reset_every == 0:
            self._reset_envs(pl_module)
        metrics = self.collect(trainer, pl_module, self.train_timesteps_per_epoch, epoch)
        dataset = trainer.datamodule
        # Wait for data rather than spin: keep collecting until the store can feed the learner.
        # (Local work only: ranks may loop a different number of times, so no collectives here.)
        # Bounded (data_wait.py): an error after hang_timeout without a new file, exit on SIGTERM.
        if dataset is not None:
            wait_for_data(
                dataset,
                self.hang_timeout,
                lambda: self.collect(trainer, pl_module, self.train_timesteps_per_epoch, epoch),
                collecting=True,
                max_rounds=1000,
            )
        self.collected_epochs.add(epoch)
        # Every rank reaches this point exactly once per epoch: safe for the frame-count reduction.
        self.total_frames = int(sum_over_ranks(trainer, self.local_frames))
        self._publish(trainer)
        if dataset is not None and hasattr(dataset, "on_end_of_collection"):
            metrics.update(dataset.on_end_of_collection())
        log_to_loggers(trainer, metrics, total_frames=self.total_frames)
        self.history.append({**metrics, "total_frames": float(self.total_frames), "epoch": float(epoch)})

    def _publish(self, trainer: pl.Trainer) -> None:
        trainer.callback_metrics[TOTAL_FRAMES] = torch.tensor(float(self.total_frames))

    def collect(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, timesteps: int, epoch: int
    ) -> dict[str, float]:
        """Step the train envs ``timesteps`` times; returns this process's ``rollout/`` metrics."""
        rank, _ = world_info(trainer)
        bar = tqdm(
            total=timesteps,
            desc=f"Epoch {epoch} collect",
            disable=not (self.verbose and rank == 0),
            leave=False,
            dynamic_ncols=True,
        )
        with bar:
            result = interact(
                pl_module,
                self.envs,
                self.state,
                timesteps,
                sample=self.sample_actions,
                exploration=self.exploration,
                writer=self.writer,
                autocast=autocast_context(trainer),
                progress=bar.update,
            )
        self.local_frames += result.env_steps
        metrics = summarize_episodes(result.episodes, "rollout")
        metrics["rollout/env_fps"] = result.env_steps / max(result.seconds, 1e-9)
        metrics["rollout/env_restarts"] = float(getattr(self.envs, "restarts", 0))
        metrics["rollout/dropped_episodes"] = float(result.dropped_episodes)
        if self.exploration is not None and hasattr(self.exploration, "current_eps"):
            metrics["rollout/epsilon"] = float(np.mean(self.exploration.current_eps()))
        return metrics

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        return {
            "local_frames": self.local_frames,
            "total_frames": self.total_frames,
            "collected_epochs": sorted(self.collected_epochs),
            "history": self.history,
            "launch": self.launch,
            "exploration": self.exploration.state_dict() if self.exploration is not None else None,
            "rng": {
                "python": random.getstate(),
                "numpy": _plain_numpy_rng_state(),
                "torch": torch.get_rng_state(),
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.local_frames = int(state_dict["local_frames"])
        self.total_frames = int(state_dict["total_frames"])
        self.collected_epochs = set(state_dict["collected_epochs"])
        self.history = list(state_dict.get("history", []))
        self.launch = int(state_dict.get("launch", 0))  # the launch that wrote the checkpoint
        self._restored = state_dict  # exploration needs the envs' action space: applied in _build

    def _number_launch(self, trainer: pl.Trainer, resumed: bool) -> tuple[int, int]:
        """This launch's number and extra seed entropy (rank 0 decides, every rank agrees)."""
        pair = (self.launch + 1, 0) if resumed else (0, 0)
        if trainer.global_rank == 0:
            store = trainer.datamodule.save_new_trajs_to if trainer.datamodule is not None else None
            folder = getattr(store, "path", None) if store is not None else None
            if resumed and store is not None:
                pair = next_launch(self.launch, folder)
            elif not resumed:
                pair = fresh_launch(folder)  # 0 unless the store has seen an earlier run
            # resumed without a store: nothing is stored, so nothing can be duplicated
        if trainer.world_size > 1:
            pair = tuple(trainer.strategy.broadcast(list(pair), src=0))
        if resumed or pair[0]:
            log.info(
                "launch %d of this run%s", pair[0], " (resumed)" if resumed else " (fresh, store reused)"
            )
        return int(pair[0]), int(pair[1])

    def _apply_restored(self, rank: int) -> None:
        state = self._restored
        if self.exploration is not None and state.get("exploration") is not None:
            self.exploration.load_state_dict(state["exploration"])
        # The checkpoint's generator states are not put back: they would redraw, action for
        # action, what the launch that wrote the checkpoint sampled after it. _build seeds this
        # launch's generators from rollout_seed(seed, rank, launch) instead.
        self._restored = None


def _plain_numpy_rng_state() -> dict[str, Any]:
    """numpy's global RNG state as built-in types (the MT19937 key as a list of ints), so the
    checkpoint loads with ``torch.load(weights_only=True)``; ``np.random.set_state`` takes it back."""
    state = np.random.get_state(legacy=False)
    state["state"]["key"] = state["state"]["key"].tolist()
    return state
