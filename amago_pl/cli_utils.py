"""gin helpers and the original's command-line conventions.

``use_config`` binds a dict of gin parameters and applies ``.gin`` files in order (later wins).
The ``switch_*`` helpers pick a built-in class by name, write its keyword overrides into the
config dict under the class's full gin path, and return the class.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import gin

# Binding helpers live in run/gin_binding.py; this module keeps serving them under their
# original names (users' scripts import them from here).
from amago_pl.run.gin_binding import (  # noqa: F401
    bind,
    check_binding_types,
    explain_bad_binding,
    parse_gin,
    port_binding_name,
    register_all_configurables,
)


def reset_config() -> None:
    """Start a new gin configuration in this process: every binding removed, the config unlocked.

    For a notebook (or any process) that configures several runs one after the other.
    """
    gin.clear_config()


def use_config(
    custom_params: dict[str, Any], gin_configs: list[str] | None = None, finalize: bool = True
) -> None:
    """Bind ``custom_params`` (``{"Class.param": value}``), then apply ``gin_configs`` files in order.

    Later settings win. ``finalize`` locks the config so nothing changes it during the run. A
    locked config belongs to the run it was made for: calling ``use_config`` again (re-running a
    notebook cell) starts a new configuration (``reset_config``) instead of failing in
    ``gin.finalize``. With ``finalize=False`` calls add up.
    """
    if gin.config_is_locked():
        reset_config()
    register_all_configurables()
    for name, value in (custom_params or {}).items():
        bind(name, value)
    parse_gin(gin_configs or ())
    check_binding_types()
    if finalize:
        gin.finalize()


def _gin_path(cls: type) -> str:
    """The selector gin registered ``cls`` under (it may name another module than the defining one,
    e.g. ``amago_pl.modules.agent.MultiTaskAgent``)."""
    for selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001 - no public lookup API
        if configurable.wrapped is cls:
            return selector
    return f"{cls.__module__}.{cls.__name__}"


def _write(config: dict[str, Any], cls: type, kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        config[f"{_gin_path(cls)}.{key}"] = value


def switch_tstep_encoder(config: dict[str, Any], arch: str, **kwargs: Any) -> type:
    """Select a timestep encoder by name ("ff", "cnn", ...) and set its keywords."""
    from amago_pl.nets.registry import get_tstep_encoder_cls

    cls = get_tstep_encoder_cls(arch)
    _write(config, cls, kwargs)
    return cls


# The seed document calls it by this name.
switch_step_encoder = switch_tstep_encoder


def switch_traj_encoder(
    config: dict[str, Any],
    arch: str,
    memory_size: int | None = None,
    layers: int | None = None,
    **kwargs: Any,
) -> type:
    """Select a sequence model by name ("transformer", "rnn", "ff", "mamba", "identity").

    ``memory_size``/``layers`` are optional shortcuts (the original required them): the model width
    (d_model, and d_ff = 4 * memory_size for the Transformer; d_hidden and d_output for the GRU) and
    the number of layers.
    """
    from amago_pl.nets.registry import get_traj_encoder_cls

    cls = get_traj_encoder_cls(arch)
    shortcut: dict[str, Any] = {}
    kind = arch.lower()
    if memory_size is not None:
        if kind == "transformer":
            shortcut.update(d_model=memory_size, d_ff=4 * memory_size)
        elif kind in ("rnn", "gru"):
            shortcut.update(d_hidden=memory_size, d_output=memory_size)
        elif kind in ("ff", "mamba"):
            shortcut.update(d_model=memory_size)
        elif kind != "identity":
            shortcut.update(memory_size=memory_size)
    if layers is not None and kind != "identity":
        shortcut.update(n_layers=layers)
    shortcut.update(kwargs)  # explicit keywords win over the shortcuts
    _write(config, cls, shortcut)
    return cls


def switch_agent(config: dict[str, Any], agent: str, **kwargs: Any) -> type:
    """Select "agent" (Agent) or "multitask" (MultiTaskAgent) and set its keywords."""
    from amago_pl.modules.agent import get_agent_cls

    cls = get_agent_cls(agent)
    _write(config, cls, kwargs)
    return cls


def switch_exploration(config: dict[str, Any], strategy: str, **kwargs: Any) -> type:
    """Select "egreedy" (EpsilonGreedy), "bilevel" (BilevelEpsilonGreedy) or "tmaze"
    (TMazeExploration) and set its keywords."""
    from amago_pl.envs.exploration import get_exploration_cls

    cls = get_exploration_cls(strategy)
    _write(config, cls, kwargs)
    return cls


def add_common_cli(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The original's common flags (names and defaults), for example scripts."""
    add = parser.add_argument
    add("--configs", type=str, nargs="*", default=None, help="extra .gin files, applied last and in order")
    add("--trials", type=int, default=1, help="repeat the run (run names get a _trial_{i} suffix)")
    add("--agent_type", type=str, default="agent", choices=["agent", "multitask"])
    add("--env_mode", type=str, default="async", choices=["async", "sync", "already_vectorized"])
    add("--no_log", action="store_true", help="do not log to wandb (CSV logs are always written)")
    add("--ckpt", type=int, default=None, help="resume from the checkpoint saved after this epoch")
    add("--run_name", type=str, required=True)
    add("--epochs", type=int, default=1000)
    add("--buffer_dir", type=str, required=True, help="root of the replay store and the run folders")
    add(
        "--traj_encoder",
        type=str,
        default="transformer",
        choices=["ff", "transformer", "rnn", "mamba", "identity"],
    )
    add("--memory_size", type=int, default=256, help="sequence model width")
    add("--memory_layers", type=int, default=3)
    add("--batches_per_epoch", type=int, default=1000)
    add("--timesteps_per_epoch", type=int, default=1000, help="env steps per actor per epoch")
    add("--val_interval", type=int, default=20)
    add("--ckpt_interval", type=int, default=50)
    add("--parallel_actors", type=int, default=12)
    add("--dset_max_size", type=int, default=20_000, help="trajectory files kept in the FIFO store")
    add("--start_learning_at_epoch", type=int, default=0)
    add("--mixed_precision", type=str, default="no", choices=["no", "bf16", "fp16"])
    add("--dloader_workers", type=int, default=8)
    add("--batch_size", type=int, default=24)
    add(
        "--mode", type=str, default="both", choices=["learn", "collect", "both"], help="async collection mode"
    )
    return parser


def create_experiment_from_cli(
    command_line_args: argparse.Namespace,
    make_train_env: Callable,
    make_val_env: Callable,
    max_seq_len: int,
    group_name: str,
    run_name: str,
    agent_type: type,
    tstep_encoder_type: type,
    traj_encoder_type: type,
    traj_save_len: int | None = None,
    exploration_wrapper_type: type | None = None,
    experiment_type: type | None = None,
    dataset: Any = None,
    **extra_experiment_kwargs: Any,
):
    """An Experiment from ``add_common_cli`` flags (the original's helper, same arguments)."""
    from amago_pl.datamodules import DiskTrajDataset
    from amago_pl.envs import EpsilonGreedy
    from amago_pl.experiment import Experiment

    args = command_line_args
    experiment_type = experiment_type or Experiment
    if dataset is None:
        dataset = DiskTrajDataset(
            dset_root=args.buffer_dir, dset_name=run_name, dset_max_size=args.dset_max_size
        )
    experiment = experiment_type(
        run_name=run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=max_seq_len,
        dataset=dataset,
        tstep_encoder_type=tstep_encoder_type,
        traj_encoder_type=traj_encoder_type,
        agent_type=agent_type,
        make_train_env=make_train_env,
        make_val_env=make_val_env,
        traj_save_len=traj_save_len if traj_save_len is not None else 10**10,
        exploration_wrapper_type=exploration_wrapper_type
        if exploration_wrapper_type is not None
        else EpsilonGreedy,
        parallel_actors=args.parallel_actors,
        env_mode=args.env_mode,
        log_to_wandb=not args.no_log,
        wandb_group_name=group_name,
        epochs=args.epochs,
        train_timesteps_per_epoch=args.timesteps_per_epoch,
        train_batches_per_epoch=args.batches_per_epoch,
        val_interval=args.val_interval,
        ckpt_interval=args.ckpt_interval,
        start_learning_at_epoch=args.start_learning_at_epoch,
        mixed_precision=args.mixed_precision,
        dloader_workers=args.dloader_workers,
        batch_size=args.batch_size,
        **extra_experiment_kwargs,
    )
    return switch_async_mode(experiment, args.mode)


def switch_async_mode(experiment: Any, mode: str) -> Any:
    """ "both" (collect and learn in one process), "collect" (collector only) or "learn" (learner only).

    Collectors and the learner share the trajectory store and the latest-policy file; see
    docs/async.md.
    """
    if mode == "both":
        return experiment
    if mode == "collect":
        experiment.start_collecting_at_epoch = 0
        experiment.start_learning_at_epoch = 10**9
        experiment.train_batches_per_epoch = 0
        experiment.ckpt_interval = None
        experiment.always_save_latest = False
        experiment.always_load_latest = True
        experiment.has_dset_edit_rights = False  # only the learner evicts
        experiment.epochs = max(experiment.epochs, 10**6)
        return experiment
    if mode == "learn":
        experiment.start_collecting_at_epoch = 10**9
        experiment.train_timesteps_per_epoch = 0
        experiment.val_timesteps_per_epoch = 0
        # A learner never steps its train envs: build one, not a full set (as the original does).
        # A list of per-actor callables must keep its length.
        if callable(experiment.make_train_env):
            experiment.parallel_actors = 1
        experiment.always_save_latest = True
        experiment.always_load_latest = False
        return experiment
    raise ValueError(f"mode={mode!r}: use 'both', 'collect' or 'learn'")


def make_experiment_learn_only(experiment: Any) -> Any:
    """The original's name for ``switch_async_mode(experiment, "learn")``."""
    return switch_async_mode(experiment, "learn")


def make_experiment_collect_only(experiment: Any) -> Any:
    """The original's name for ``switch_async_mode(experiment, "collect")``."""
    return switch_async_mode(experiment, "collect")
