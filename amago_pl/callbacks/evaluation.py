"""Evaluation rollouts (validation and test) as a Lightning Callback.

Validation runs inside Lightning's validation loop (``check_val_every_n_epoch``), so
``Trainer.validate`` and ``amago-pl validate`` run it too. Every evaluation starts from fresh envs
and an empty memory, uses no exploration and saves no data.

The metrics go through ``LightningModule.log`` at the end of the evaluation epoch, so they reach
``trainer.callback_metrics``, the return value of ``Trainer.validate``/``test``, ``ModelCheckpoint``
and ``EarlyStopping`` (``monitor="val/return"``), and every logger. They are the same on every rank:
the overall means are torchmetrics aggregates synchronised over ranks, the per-env breakdown is
computed from all ranks' gathered episodes.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torchmetrics.aggregation import MeanMetric, SumMetric
from tqdm.auto import tqdm

from amago_pl.callbacks.interact import EpisodeStat, fresh_state, interact, summarize_episodes
from amago_pl.callbacks.metric_axes import TOTAL_FRAMES, define_env_step_axis, log_env_step_series
from amago_pl.callbacks.trainer_context import autocast_context, log_to_loggers, total_frames, world_info
from amago_pl.envs import make_parallel_envs
from amago_pl.envs.watchdog import DEFAULT_HANG_TIMEOUT

_QUIETED: set[str] = set()


def _quiet_sync_advice(keys: Sequence[str]) -> None:
    """Silence, for these keys only, Lightning's advice to log epoch values with sync_dist=True
    under DDP: they are equal on every rank already, and averaging equal float32 values over 3+
    ranks could move them by a rounding step (enough to flip an EarlyStopping threshold)."""
    for key in keys:
        if key not in _QUIETED:
            _QUIETED.add(key)
            advice = f"It is recommended to use `self.log({key!r}, ..., sync_dist=True)`"
            warnings.filterwarnings("ignore", message=re.escape(advice), category=PossibleUserWarning)


def gather_episodes(trainer: pl.Trainer | None, episodes: list[EpisodeStat]) -> list[EpisodeStat]:
    """All ranks' episodes on every rank.

    Gathering the episodes (rather than syncing per-key metric states) is exact and cannot hang
    when ranks see different env names, which per-key metric objects would require to match.
    """
    if trainer is None or trainer.world_size <= 1 or not dist.is_available() or not dist.is_initialized():
        return episodes
    gathered: list[list[EpisodeStat]] = [None] * trainer.world_size  # type: ignore[list-item]
    dist.all_gather_object(gathered, episodes)
    return [ep for rank_eps in gathered for ep in rank_eps]


def episode_means(
    episodes: list[EpisodeStat], stage: str, device: torch.device | str, sync: bool
) -> dict[str, torch.Tensor]:
    """``{stage}/return``, ``{stage}/episode_length`` (means) and ``{stage}/episodes`` (count) over
    every rank's episodes: torchmetrics aggregates of this rank's ``episodes``, synchronised over
    the ranks when ``sync`` (every rank must call this then). Scalar float32 tensors."""
    mean_return, mean_length = MeanMetric(sync_on_compute=sync), MeanMetric(sync_on_compute=sync)
    count = SumMetric(sync_on_compute=sync)
    for metric in (mean_return, mean_length, count):
        metric.to(device)
    returns = torch.tensor([e.total_return for e in episodes], dtype=torch.float32, device=device)  # (E,)
    lengths = torch.tensor([float(e.length) for e in episodes], dtype=torch.float32, device=device)  # (E,)
    mean_return.update(returns)
    mean_length.update(lengths)
    count.update(torch.ones_like(returns))
    return {
        f"{stage}/return": mean_return.compute(),
        f"{stage}/episode_length": mean_length.compute(),
        f"{stage}/episodes": count.compute(),
    }


class EvalCallback(pl.Callback):
    """Runs ``timesteps`` steps per actor on fresh eval envs and logs ``{stage}/`` metrics.

    Args:
        make_env: a callable returning an ``AMAGOEnv``, or one callable per actor.
        parallel_actors: eval envs per process.
        timesteps: steps per actor per evaluation (at least one episode should finish).
        env_mode: "sync", "async" or "already_vectorized".
        sample_actions: sample the policy (True) or act greedily.
        stage: "val" runs at the end of each validation epoch, "test" at the end of testing.
        seed: base seed of the eval envs (rank r adds 10_000 * r).
        episodes: stop early once every env has finished ``ceil(episodes / parallel_actors)``
            episodes, and report exactly those (the same number from each env, so short episodes
            are not over-represented). None: every episode that ends within ``timesteps``.
        hang_timeout: seconds an eval env's construction, reset or step may take (None: no limit;
            ``amago_pl.envs.watchdog``).
    """

    follows_run_seed = True  # RunSeedCallback moves ``seed`` when the run seed changes

    def __init__(
        self,
        make_env: Callable | Sequence[Callable],
        parallel_actors: int = 12,
        timesteps: int = 1000,
        env_mode: str = "async",
        sample_actions: bool = True,
        stage: str = "val",
        seed: int = 1_000_000,
        episodes: int | None = None,
        async_env_mp_context: str | None = None,
        verbose: bool = True,
        hang_timeout: float | None = DEFAULT_HANG_TIMEOUT,
    ):
        if stage not in ("val", "test"):
            raise ValueError(f"stage={stage!r}: use 'val' or 'test'")
        self.make_env = make_env
        self.parallel_actors = parallel_actors
        self.timesteps = timesteps
        self.env_mode = env_mode
        self.sample_actions = sample_actions
        self.stage = stage
        self.seed = seed
        self.episodes = episodes
        self.mp_context = async_env_mp_context
        self.verbose = verbose
        self.hang_timeout = hang_timeout
        self.envs = None
        self.history: list[dict[str, float]] = []  # one row of metrics per evaluation
        self.last_episodes: list[EpisodeStat] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        define_env_step_axis(trainer)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stage == "val" and not trainer.sanity_checking:
            self.evaluate(trainer, pl_module)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stage == "test":
            self.evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close()

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
            self.envs = None

    def evaluate(
        self, trainer: pl.Trainer | None, pl_module: pl.LightningModule, writer: Any = None
    ) -> dict[str, float]:
        """Run one evaluation; returns the metrics (also logged when a trainer is given).

        Inside the Trainer's validation or test loop they are logged with ``pl_module.log``;
        otherwise (a hand-made call) directly to the Trainer's loggers.
        """
        rank, world_size = world_info(trainer)
        if self.envs is None:
            self.envs = make_parallel_envs(
                self.make_env,
                self.parallel_actors,
                mode=self.env_mode,
                seed=self.seed + 10_000 * rank,
                mp_context=self.mp_context,
                hang_timeout=self.hang_timeout,
            )
        timestep = self.envs.reset()
        if writer is not None:
            writer.start(timestep)
        autocast = autocast_context(trainer) if trainer is not None else None
        bar = tqdm(
            total=self.timesteps,
            desc=f"{self.stage} rollouts",
            disable=not (self.verbose and rank == 0),
            leave=False,
            dynamic_ncols=True,
        )
        # Outside inference mode (Trainer.validate/test run their hooks inside it): the rollout
        # leaves module-level caches (SigmaReparam's W_hat) that later training rollouts reuse.
        with bar, torch.inference_mode(False):
            result = interact(
                pl_module,
                self.envs,
                fresh_state(pl_module, timestep, pl_module.device),
                self.timesteps,
                sample=self.sample_actions,
                writer=writer,
                episodes=self.episodes,
                autocast=autocast,
                progress=bar.update,
            )
        episodes = gather_episodes(trainer, result.episodes)
        self.last_episodes = episodes
        sync = world_size > 1 and dist.is_available() and dist.is_initialized()
        means = episode_means(result.episodes, self.stage, pl_module.device, sync)
        metrics = summarize_episodes(episodes, self.stage)  # the per-env breakdown
        if episodes:
            metrics.update({k: float(v) for k, v in means.items()})
        metrics[f"{self.stage}/env_fps"] = result.env_steps / max(result.seconds, 1e-9)
        frames = total_frames(trainer)
        if trainer is not None:
            self._log(trainer, pl_module, metrics, frames)
            metrics["gradient_steps"] = float(trainer.global_step)
        if frames is not None:
            metrics[TOTAL_FRAMES] = float(frames)
        self.history.append(metrics)
        return metrics

    def _log(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        metrics: dict[str, float],
        frames: int | None,
    ) -> None:
        in_loop = (trainer.validating or trainer.testing) and trainer.lightning_module is pl_module
        if not in_loop:
            log_to_loggers(trainer, metrics, total_frames=frames)
            return
        logged = dict(metrics)
        if frames is not None:
            logged[TOTAL_FRAMES] = float(frames)  # the env-step x-axis of this row in every logger
        logged["gradient_steps"] = float(trainer.global_step)  # as in every other row's columns
        define_env_step_axis(trainer, logged)
        # The env-rate is a per-rank timing, the one value that may differ between ranks.
        logged.pop(f"{self.stage}/env_fps", None)
        fps = metrics[f"{self.stage}/env_fps"]
        _quiet_sync_advice(list(logged))
        with warnings.catch_warnings():
            # logger=True also without a logger: Trainer.validate/test return (and print) only the
            # values logged with it, and a Trainer(logger=False) user still wants them.
            warnings.filterwarnings("ignore", message=r"You called `self.log\(", category=UserWarning)
            pl_module.log_dict(logged, sync_dist=False, logger=True, on_epoch=True)
            pl_module.log(f"{self.stage}/env_fps", fps, sync_dist=True, logger=True, on_epoch=True)
        log_env_step_series(trainer, metrics, frames)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
