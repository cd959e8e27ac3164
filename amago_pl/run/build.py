"""The one builder of a run: callbacks, loggers, Trainer arguments, the configured dataset and the
agent, all from one ``Settings``.

``Experiment.start``, the ``amago-pl`` CLI (``AmagoCLI.instantiate_trainer``) and plain scripts
(``examples/trainer_fit_script.py``) call these functions, so a setting added here reaches every
front door. Functions that take ``run`` accept a ``Settings`` or an object with a ``settings()``
method (the ``Experiment``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from amago_pl.callbacks import (
    ConfigLoggingCallback,
    EvalCallback,
    LatestPolicyCallback,
    RolloutCallback,
    SummaryCallback,
)
from amago_pl.callbacks.checkpoint_io import with_atomic_checkpoints
from amago_pl.callbacks.preemption import PreemptionCheckpoint
from amago_pl.callbacks.run_folder import RunFolderGuard, check_run_name
from amago_pl.callbacks.seeding import RunSeedCallback
from amago_pl.envs import make_parallel_envs
from amago_pl.run.gin_tools import (
    GinRankCheck,
    bound_value,
    check_required_bindings,
    missing_required_bindings,
)
from amago_pl.run.settings import MIXED_PRECISION, Settings

__all__ = [  # missing_required_bindings, check_required_bindings: the former experiment_utils names
    "BuiltRun",
    "as_settings",
    "build_callbacks",
    "build_loggers",
    "build_run",
    "check_required_bindings",
    "configure_dataset",
    "count_parameters",
    "describe_run",
    "load_weights_only",
    "missing_required_bindings",
    "optimizer_keywords",
    "precision_from_mixed",
    "probe_spaces",
    "trainer_arguments",
    "validate_experiment",
]

OPTIMIZER_SETTINGS = ("learning_rate", "lr_warmup_steps", "l2_coeff")  # the Agent's keywords too


def as_settings(run: Any) -> Settings:
    return run if isinstance(run, Settings) else run.settings()


def precision_from_mixed(mixed_precision: Any) -> Any:
    """The original's accelerate names ("no", "fp16", "bf16") or any Lightning precision."""
    if isinstance(mixed_precision, str) and mixed_precision in MIXED_PRECISION:
        return MIXED_PRECISION[mixed_precision]
    return mixed_precision


def validate_experiment(exp: Any) -> None:
    """Fail at construction, naming the constraint and the fix, instead of deep inside training."""
    if hasattr(exp, "run_name") and hasattr(exp, "ckpt_base_dir"):
        check_run_name(exp.run_name, exp.ckpt_base_dir)  # before any path is built from it
    as_settings(exp).validate()


def probe_spaces(
    make_env: Callable | Sequence[Callable], env_mode: str, parallel_actors: int
) -> tuple[gym.spaces.Dict, gym.spaces.Box, gym.Space]:
    """Observation, rl2 and (policy) action spaces, read from one env built in this process."""
    if env_mode == "already_vectorized":
        envs = make_parallel_envs(make_env, parallel_actors, mode="already_vectorized")
    else:
        first = make_env[0] if isinstance(make_env, (list, tuple)) else make_env
        envs = make_parallel_envs(first, 1, mode="sync")
    try:
        return envs.single_observation_space, envs.rl2_space, envs.single_action_space
    finally:
        envs.close()


def build_loggers(run: Any) -> list:
    """CSV by default (no account needed); wandb when ``log_to_wandb`` (offline mode works);
    TensorBoard when "tensorboard" is listed in ``loggers``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from amago_pl.run.csv_logger import SafeCSVLogger

    s = as_settings(run)
    run_dir = str(s.run_dir)
    names = [n.lower() for n in s.loggers]  # checked by Settings.validate
    out: list = []
    if "csv" in names:
        out.append(SafeCSVLogger(save_dir=run_dir, name="logs"))  # names the file on a full disk
    if "tensorboard" in names:
        out.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard"))
    if s.log_to_wandb or "wandb" in names:
        from lightning.pytorch.loggers import WandbLogger

        out.append(
            WandbLogger(
                name=s.run_name,
                project=s.wandb_project or "amago_pl",
                entity=s.wandb_entity,
                group=s.wandb_group_name,
                save_dir=run_dir,
                offline=os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled"),
            )
        )
    return out


def build_callbacks(run: Any, stage: str = "val") -> list[pl.Callback]:
    """The run's callbacks, in the order they must run. ``stage="test"`` makes the evaluation
    callback run in ``Trainer.test`` (``amago-pl test``) instead of validation."""
    s = as_settings(run)
    callbacks: list[pl.Callback] = []
    if s.always_save_latest or s.always_load_latest:
        # Before the rollout callback, so collectors act with the freshest weights.
        callbacks.append(
            LatestPolicyCallback(s.run_dir, save=s.always_save_latest, load=s.always_load_latest)
        )
    callbacks.append(
        RolloutCallback(
            s.make_train_env,
            parallel_actors=s.parallel_actors,
            env_mode=s.env_mode,
            train_timesteps_per_epoch=s.train_timesteps_per_epoch,
            max_seq_len=s.max_seq_len,
            traj_save_len=s.traj_save_len,
            stagger_traj_file_lengths=s.stagger_traj_file_lengths,
            start_collecting_at_epoch=s.start_collecting_at_epoch,
            exploration_wrapper_type=s.exploration_wrapper_type,
            sample_actions=s.sample_actions_train,
            save_trajs_as=s.save_trajs_as,
            force_reset_train_envs_every=s.force_reset_train_envs_every,
            async_env_mp_context=s.async_env_mp_context,
            seed=s.seed,
            verbose=s.progress_bars,  # their only use of verbose
            hang_timeout=s.hang_timeout,
        )
    )
    if s.val_timesteps_per_epoch > 0 and (s.val_enabled or stage == "test"):
        callbacks.append(
            EvalCallback(
                s.make_val_env,
                parallel_actors=s.parallel_actors,
                timesteps=s.val_timesteps_per_epoch,
                env_mode=s.env_mode,
                sample_actions=s.sample_actions_val,
                stage=stage,
                seed=s.seed + 1_000_000,
                async_env_mp_context=s.async_env_mp_context,
                verbose=s.progress_bars,  # their only use of verbose
                hang_timeout=s.hang_timeout,
            )
        )
    # A run that never trains (an async collector) has nothing to checkpoint, and its last.ckpt
    # would overwrite the learner's in the shared run folder.
    if s.train_batches_per_epoch > 0:
        callbacks.append(
            ModelCheckpoint(
                dirpath=s.ckpt_dir,
                filename="epoch={epoch}",
                auto_insert_metric_name=False,
                every_n_epochs=s.ckpt_interval or 1,
                save_top_k=-1 if s.ckpt_interval else 0,
                save_last=True,
                save_on_train_epoch_end=True,
                # A redone epoch (a resume after a crash) overwrites epoch=N.ckpt instead of
                # writing epoch=N-v1.ckpt next to it.
                enable_version_counter=False,
            )
        )
        # SIGTERM (preemption) writes last.ckpt and exits with status 143 instead of 0.
        callbacks.append(PreemptionCheckpoint(s.ckpt_dir))
        # One run per folder (a lock) and one checkpoint lineage in ckpts/ (callbacks/run_folder.py).
        callbacks.insert(0, RunFolderGuard(s.run_dir, s.ckpt_dir))
    callbacks.append(ConfigLoggingCallback(s.run_dir))
    # After ConfigLoggingCallback: it records the seed in the config.txt that one writes.
    callbacks.append(
        RunSeedCallback(s.seed, s.seed_drawn, s.run_dir, config_template=s.seed_record, owner=s.seed_owner)
    )
    callbacks.append(SummaryCallback(s.run_dir, title=s.run_name, verbose=s.verbose))
    callbacks.append(GinRankCheck())  # DDP: every rank must hold rank 0's gin config
    return callbacks


def trainer_arguments(run: Any, stage: str = "val") -> dict[str, Any]:
    """Keyword arguments of ``lightning.pytorch.Trainer``; ``trainer_kwargs`` override them."""
    s = as_settings(run)
    args: dict[str, Any] = dict(
        max_epochs=s.epochs,
        accelerator=s.accelerator,
        devices=s.devices,
        strategy=s.strategy,
        num_nodes=s.num_nodes,
        precision=precision_from_mixed(s.mixed_precision),
        gradient_clip_val=s.grad_clip,
        accumulate_grad_batches=s.batches_per_update,
        # Validation is env rollouts run by EvalCallback: one placeholder batch lets the loop run.
        check_val_every_n_epoch=s.val_interval if s.val_enabled else 1,
        limit_val_batches=1 if s.val_enabled else 0,
        num_sanity_val_steps=0,
        callbacks=build_callbacks(s, stage),
        logger=build_loggers(s),
        default_root_dir=str(s.run_dir),
        log_every_n_steps=s.log_interval,
        enable_progress_bar=s.verbose,
        enable_model_summary=s.verbose,
        use_distributed_sampler=False,  # each rank samples its own batches (see the dataset)
    )
    args.update(s.trainer_kwargs or {})
    # Checkpoints are written atomically, and a full disk names the path and size.
    args["plugins"] = with_atomic_checkpoints(args.get("plugins"))
    return args


def configure_dataset(dataset: Any, run: Any) -> Any:
    """Give the dataset this run's batch shape, loader and schedule settings (in place)."""
    s = as_settings(run)
    dataset.configure(
        batch_size=s.batch_size,
        max_seq_len=s.max_seq_len,
        train_batches_per_epoch=s.train_batches_per_epoch,
        padded_sampling=s.padded_sampling,
        dloader_workers=s.dloader_workers,
        has_edit_rights=s.has_dset_edit_rights,
    )
    if hasattr(dataset, "configure_schedule"):
        dataset.configure_schedule(start_learning_at_epoch=s.start_learning_at_epoch)
    dataset.hang_timeout = s.hang_timeout  # bounds the batch stream's wait for data (data_wait.py)
    return dataset


def optimizer_keywords(
    agent_type: type,
    given: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    source: str = "Settings",
) -> dict[str, Any]:
    """The optimizer keywords a front door passes to the agent: only those it was given.

    One setting, two ways in: a front door's value (the original's ``Experiment.learning_rate``,
    amago/experiment.py:180 at 2d85600) or gin's ``Agent.learning_rate``. Either alone is used;
    both with different values is an error naming the two.
    """
    labels = labels or {}
    out: dict[str, Any] = {}
    for name in OPTIMIZER_SETTINGS:
        value = given.get(name)
        if value is None:
            continue  # the Agent's gin binding or its default applies
        bound = bound_value(agent_type, name)
        if bound is not None and bound[1] != value:
            raise ValueError(
                f"{name} is set twice with different values: {source} {labels.get(name, name)}={value!r} "
                f"and gin {bound[0]} = {bound[1]!r}. Set it in one place."
            )
        out[name] = value
    return out


@dataclass
class BuiltRun:
    """What ``build_run`` returns: ``pl.Trainer(**run.trainer_arguments).fit(run.agent, run.dataset)``."""

    agent: pl.LightningModule
    dataset: Any
    trainer_arguments: dict[str, Any]
    obs_space: gym.spaces.Dict
    rl2_space: gym.spaces.Box
    action_space: gym.Space

    def trainer(self) -> pl.Trainer:
        return pl.Trainer(**self.trainer_arguments)


def build_run(
    settings: Settings, dataset: Any, agent_type: type, tstep_encoder_type: type, traj_encoder_type: type
) -> BuiltRun:
    """Check the settings and gin, seed, then build the agent, configure ``dataset`` and compute the
    Trainer arguments. Problems surface before any env or model is built."""
    settings.validate()
    check_required_bindings(
        [agent_type, tstep_encoder_type, traj_encoder_type, settings.exploration_wrapper_type]
    )
    given = {name: getattr(settings, name) for name in OPTIMIZER_SETTINGS}
    optimizer = optimizer_keywords(agent_type, given, settings.labels, settings.source)
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    spaces = probe_spaces(settings.make_train_env, settings.env_mode, settings.parallel_actors)
    configure_dataset(dataset, settings)
    # Structural arguments from the env and the settings; every other keyword comes from gin.
    agent = agent_type(*spaces, settings.max_seq_len, tstep_encoder_type, traj_encoder_type, **optimizer)
    return BuiltRun(agent, dataset, trainer_arguments(settings), *spaces)


def count_parameters(module: torch.nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def describe_run(exp: Any, obs_space: gym.Space, action_space: gym.Space) -> str:
    """The start-up summary of an Experiment-like object (``agent``, ``dataset``, ``settings()``)."""
    s, agent = as_settings(exp), exp.agent
    lines = [
        "=" * 72,
        f"amago_pl run '{s.run_name}'  ->  {s.run_dir}",
        f"  agent:      {type(agent).__name__}  ({count_parameters(agent):,} trainable parameters)",
    ]
    for name in ("tstep_encoder", "traj_encoder", "actor", "critics"):
        part = getattr(agent, name, None)
        if isinstance(part, torch.nn.Module):
            lines.append(f"    {name:<13} {type(part).__name__:<24} {count_parameters(part):>12,}")
    dataset = exp.dataset
    lines += [
        f"  observations: {obs_space}",
        f"  actions:      {action_space}",
        f"  envs:       {s.parallel_actors} x {s.env_mode}, {s.train_timesteps_per_epoch} steps/actor/epoch",
        f"  dataset:    {dataset.get_description() if hasattr(dataset, 'get_description') else dataset}",
        f"  schedule:   {s.epochs} epochs x {s.train_batches_per_epoch} batches of {s.batch_size} x "
        f"{s.max_seq_len} steps",
        f"  devices:    accelerator={s.accelerator} devices={s.devices} strategy={s.strategy} "
        f"precision={precision_from_mixed(s.mixed_precision)}",
        f"  seed:       {s.seed}"
        + (f" (drawn: pass seed={s.seed} to repeat this run)" if s.seed_drawn else ""),
        "=" * 72,
    ]
    return "\n".join(lines)


def load_weights_only(agent: torch.nn.Module, path: str | os.PathLike) -> None:
    """Copy a checkpoint's weights into ``agent`` (no optimizer or counters): fine-tuning.

    Hyperparameters may differ (a new learning rate is fine); when the weights do not fit, the
    error lists the missing/unexpected/misshapen parameters and the differing hyperparameters
    and model gin bindings, which usually name the cause. Read by ``read_checkpoint_safely``
    (``weights_only=True``, plain hyperparameters, a stored gin config that imports nothing): a
    checkpoint written before checkpoints held plain data is refused with the conversion command.
    """
    from amago_pl.modules.checkpoint import config_differences, describe_mismatch, read_checkpoint_safely

    blob = read_checkpoint_safely(path)
    state = blob.get("state_dict", blob)
    own = agent.state_dict()
    misshapen = sorted(
        f"{k}: checkpoint {tuple(v.shape)}, agent {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)
    )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected or misshapen:
        diffs = config_differences(blob, getattr(agent, "hparams", {})) if "state_dict" in blob else []
        details = (
            describe_mismatch(f"checkpoint {path}", blob, diffs) if diffs else "no recorded config difference"
        )
        raise RuntimeError(
            f"checkpoint {path} does not match this agent: missing {missing[:10]}, unexpected {unexpected[:10]}, "
            f"misshapen {misshapen[:10]}.\n{details}"
        )
    agent.load_state_dict(state, strict=True)
