"""Helpers of the Experiment facade: input checks, space probing, loggers, the start-up summary."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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
from amago_pl.callbacks.seeding import RunSeedCallback
from amago_pl.envs import make_parallel_envs

_PRECISIONS = {"no": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}


def precision_from_mixed(mixed_precision: str) -> str:
    """The original's accelerate names ("no", "fp16", "bf16") or any Lightning precision string."""
    if mixed_precision in _PRECISIONS:
        return _PRECISIONS[mixed_precision]
    return mixed_precision


def validate_experiment(exp: Any) -> None:
    """Fail at construction, naming the constraint and the fix, instead of deep inside training."""
    problems = []
    for name in ("max_seq_len", "parallel_actors", "batch_size", "epochs", "batches_per_update"):
        value = getattr(exp, name)
        if not isinstance(value, int) or value <= 0:
            problems.append(f"{name}={value!r} must be a positive integer")
    for name in ("train_timesteps_per_epoch", "train_batches_per_epoch", "val_timesteps_per_epoch"):
        value = getattr(exp, name)
        if not isinstance(value, int) or value < 0:
            problems.append(f"{name}={value!r} must be an integer >= 0")
    if isinstance(exp.traj_save_len, float):
        if not exp.traj_save_len.is_integer():
            problems.append(f"traj_save_len={exp.traj_save_len!r} must be an integer")
        exp.traj_save_len = int(exp.traj_save_len)
    if isinstance(exp.max_seq_len, int) and exp.traj_save_len < exp.max_seq_len:
        problems.append(
            f"traj_save_len={exp.traj_save_len} < max_seq_len={exp.max_seq_len}: files would be shorter than "
            "a training window; raise traj_save_len (or lower max_seq_len)"
        )
    if isinstance(exp.seed, bool) or not isinstance(exp.seed, int) or not 0 <= exp.seed < 2**32:
        # seed_everything silently swaps an out-of-range seed for a random one.
        problems.append(f"seed={exp.seed!r} must be an integer in [0, 2**32) or None (draw one)")
    if exp.env_mode not in ("async", "sync", "already_vectorized"):
        problems.append(f"env_mode={exp.env_mode!r}: use 'async', 'sync' or 'already_vectorized'")
    if exp.save_trajs_as not in ("npz", "npz-compressed"):
        hint = " ('traj'/'trajectory' pickles are not supported: files load with allow_pickle=False)"
        problems.append(f"save_trajs_as={exp.save_trajs_as!r}: use 'npz' or 'npz-compressed'" + hint)
    if exp.padded_sampling not in ("none", "left", "right", "both"):
        problems.append(f"padded_sampling={exp.padded_sampling!r}: use 'none', 'left', 'right' or 'both'")
    if exp.mixed_precision not in _PRECISIONS and exp.mixed_precision not in (
        "32-true",
        "16-mixed",
        "bf16-mixed",
        "32",
        "16",
        "bf16",
    ):
        problems.append(f"mixed_precision={exp.mixed_precision!r}: use 'no', 'fp16' or 'bf16'")
    for name in ("make_train_env", "make_val_env"):
        value = getattr(exp, name)
        fns = value if isinstance(value, (list, tuple)) else [value]
        if not fns or not all(callable(f) for f in fns):
            problems.append(
                f"{name} must be a callable returning an AMAGOEnv (or a list of them), got {value!r}"
            )
        elif (
            isinstance(value, (list, tuple))
            and len(value) != exp.parallel_actors
            and exp.env_mode != "already_vectorized"
        ):
            problems.append(f"{name} has {len(value)} callables but parallel_actors={exp.parallel_actors}")
    if problems:
        raise ValueError("Invalid Experiment settings:\n  - " + "\n  - ".join(problems))


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


def build_loggers(exp: Any) -> list:
    """CSV by default (no account needed); wandb when ``log_to_wandb`` (offline mode works);
    TensorBoard when "tensorboard" is listed in ``loggers``."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    run_dir = str(exp.run_dir)
    names = [n.lower() for n in exp.loggers]
    unknown = set(names) - {"csv", "tensorboard", "wandb"}
    if unknown:
        raise ValueError(f"unknown logger(s) {sorted(unknown)}: use 'csv', 'tensorboard' or 'wandb'")
    out: list = []
    if "csv" in names:
        out.append(CSVLogger(save_dir=run_dir, name="logs"))
    if "tensorboard" in names:
        out.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard"))
    if exp.log_to_wandb or "wandb" in names:
        from lightning.pytorch.loggers import WandbLogger

        out.append(
            WandbLogger(
                name=exp.run_name,
                project=exp.wandb_project or "amago_pl",
                entity=exp.wandb_entity,
                group=exp.wandb_group_name,
                save_dir=run_dir,
                offline=os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled"),
            )
        )
    return out


def count_parameters(module: torch.nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def describe_run(exp: Any, obs_space: gym.Space, action_space: gym.Space) -> str:
    agent = exp.agent
    lines = [
        "=" * 72,
        f"amago_pl run '{exp.run_name}'  ->  {exp.run_dir}",
        f"  agent:      {type(agent).__name__}  ({count_parameters(agent):,} trainable parameters)",
    ]
    for name in ("tstep_encoder", "traj_encoder", "actor", "critics"):
        part = getattr(agent, name, None)
        if isinstance(part, torch.nn.Module):
            lines.append(f"    {name:<13} {type(part).__name__:<24} {count_parameters(part):>12,}")
    lines += [
        f"  observations: {obs_space}",
        f"  actions:      {action_space}",
        f"  envs:       {exp.parallel_actors} x {exp.env_mode}, {exp.train_timesteps_per_epoch} steps/actor/epoch",
        f"  dataset:    {exp.dataset.get_description() if hasattr(exp.dataset, 'get_description') else exp.dataset}",
        f"  schedule:   {exp.epochs} epochs x {exp.train_batches_per_epoch} batches of {exp.batch_size} x "
        f"{exp.max_seq_len} steps",
        f"  devices:    accelerator={exp.accelerator} devices={exp.devices} strategy={exp.strategy} "
        f"precision={precision_from_mixed(exp.mixed_precision)}",
        f"  seed:       {exp.seed}"
        + (f" (drawn: pass seed={exp.seed} to repeat this run)" if getattr(exp, "seed_drawn", False) else ""),
        "=" * 72,
    ]
    return "\n".join(lines)


def load_weights_only(agent: torch.nn.Module, path: str | os.PathLike) -> None:
    """Copy a checkpoint's weights into ``agent`` (no optimizer or counters): fine-tuning.

    Hyperparameters may differ (a new learning rate is fine); when the weights do not fit, the
    error lists the missing/unexpected/misshapen parameters and the differing hyperparameters
    and model gin bindings, which usually name the cause.
    """
    from amago_pl.modules.checkpoint import config_differences, describe_mismatch

    blob = torch.load(path, map_location="cpu", weights_only=False)
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


# A string-valued setting that makes a class build another configurable (invisible to the walk).
_IMPLIED_BY_VALUE = {("TformerTrajEncoder", "pos_emb", "learnable"): "LearnablePosEmb"}


def _bound_params() -> dict[str, dict[str, Any]]:
    """``{full selector: {param: value}}`` of every gin binding (scopes merged)."""
    import gin

    out: dict[str, dict[str, Any]] = {}
    for (_scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001 - no public listing API
        match = gin.config._REGISTRY.get_match(selector)  # noqa: SLF001
        if match is not None:
            out.setdefault(match.selector, {}).update(params)
    return out


def _configurable_of(obj: Any) -> Any:
    import gin

    for _selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001
        if configurable.wrapped is obj:
            return configurable
    return None


def missing_required_bindings(roots: Sequence[Any]) -> list[str]:
    """``Class.param`` for every ``gin.REQUIRED`` keyword that the run would need but nobody bound.

    Walks the classes the run builds (``roots``), the configurable classes they take as defaults
    (e.g. ``Agent.actor_type = Actor``) and the ``@references`` bound to their keywords.
    """
    import inspect

    import gin

    bound = _bound_params()
    missing: list[str] = []
    seen: set[int] = set()
    todo = [r for r in roots if r is not None]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        configurable = _configurable_of(obj)
        if configurable is None:
            continue
        try:
            params = inspect.signature(configurable.wrapped).parameters
        except (TypeError, ValueError):
            continue
        values = bound.get(configurable.selector, {})
        for name, param in params.items():
            value = values.get(name, param.default)
            if value is gin.REQUIRED:
                missing.append(f"{configurable.name}.{name}")
            elif isinstance(value, gin.config.ConfigurableReference):
                todo.append(value.configurable.wrapped)
            elif inspect.isclass(value) or inspect.isfunction(value):
                todo.append(value)
            implied = _IMPLIED_BY_VALUE.get(
                (configurable.name, name, value if isinstance(value, str) else None)
            )
            if implied is not None:
                match = gin.config._REGISTRY.get_match(implied)  # noqa: SLF001
                if match is not None:
                    todo.append(match.wrapped)
    return sorted(set(missing))


def check_required_bindings(roots: Sequence[Any]) -> None:
    """Fail before any env or model is built when a needed ``gin.REQUIRED`` keyword is unbound."""
    missing = missing_required_bindings(roots)
    if missing:
        lines = "\n  - ".join(f"{m} (add e.g. `{m} = ...` to a .gin file or --gin)" for m in missing)
        raise ValueError(f"gin.REQUIRED settings without a value:\n  - {lines}")


def build_callbacks(exp: Any) -> list[pl.Callback]:
    """The callbacks an Experiment trains with, in the order they must run."""
    run_dir = exp.run_dir
    callbacks: list[pl.Callback] = []
    if exp.always_save_latest or exp.always_load_latest:
        # Before the rollout callback, so collectors act with the freshest weights.
        callbacks.append(
            LatestPolicyCallback(run_dir, save=exp.always_save_latest, load=exp.always_load_latest)
        )
    callbacks.append(
        RolloutCallback(
            exp.make_train_env,
            parallel_actors=exp.parallel_actors,
            env_mode=exp.env_mode,
            timesteps_per_epoch=exp.train_timesteps_per_epoch,
            max_seq_len=exp.max_seq_len,
            traj_save_len=exp.traj_save_len,
            stagger_traj_file_lengths=exp.stagger_traj_file_lengths,
            start_collecting_at_epoch=exp.start_collecting_at_epoch,
            exploration_wrapper_type=exp.exploration_wrapper_type,
            sample_actions=exp.sample_actions_train,
            save_trajs_as=exp.save_trajs_as,
            force_reset_train_envs_every=exp.force_reset_train_envs_every,
            async_env_mp_context=exp.async_env_mp_context,
            seed=exp.seed,
            verbose=exp.verbose,
        )
    )
    if exp.val_enabled:
        callbacks.append(
            EvalCallback(
                exp.make_val_env,
                parallel_actors=exp.parallel_actors,
                timesteps=exp.val_timesteps_per_epoch,
                env_mode=exp.env_mode,
                sample_actions=exp.sample_actions_val,
                stage="val",
                seed=exp.seed + 1_000_000,
                async_env_mp_context=exp.async_env_mp_context,
                verbose=exp.verbose,
            )
        )
    # A run that never trains (an async collector) has nothing to checkpoint, and its last.ckpt
    # would overwrite the learner's in the shared run folder.
    if exp.train_batches_per_epoch > 0:
        callbacks.append(
            ModelCheckpoint(
                dirpath=exp.ckpt_dir,
                filename="epoch={epoch}",
                auto_insert_metric_name=False,
                every_n_epochs=exp.ckpt_interval or 1,
                save_top_k=-1 if exp.ckpt_interval else 0,
                save_last=True,
                save_on_train_epoch_end=True,
            )
        )
    callbacks.append(ConfigLoggingCallback(run_dir))
    # After ConfigLoggingCallback: it records the seed in the config.txt that one writes.
    callbacks.append(RunSeedCallback(exp.seed, getattr(exp, "seed_drawn", False), run_dir, owner=exp))
    callbacks.append(SummaryCallback(run_dir, title=exp.run_name, verbose=exp.verbose))
    return callbacks
