"""gin helpers and the original's command-line conventions.

``use_config`` binds a dict of gin parameters and applies ``.gin`` files in order (later wins).
The ``switch_*`` helpers pick a built-in class by name, write its keyword overrides into the
config dict under the class's full gin path, and return the class.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
from collections.abc import Callable, Iterable
from typing import Any

import gin

from amago_pl import compat

# The original split these modules' classes over several of ours; their short class names resolve
# uniquely, so the module part is dropped.
_SHORT_NAME_MODULES = ("amago.loading.", "amago.hindsight.", "amago_pl.loading.", "amago_pl.hindsight.")

_CONFIGURABLE_MODULES = (
    "amago_pl.nets.tstep_encoders",
    "amago_pl.nets.traj_encoders",
    "amago_pl.nets.transformer",
    "amago_pl.nets.cnn",
    "amago_pl.nets.ff",
    "amago_pl.nets.utils",
    "amago_pl.nets.actor_critic",
    "amago_pl.nets.critics",
    "amago_pl.nets.attention",
    "amago_pl.nets.attention_extras",
    "amago_pl.nets.goal_embedders",
    "amago_pl.nets.popart",
    "amago_pl.nets.policy_dists",
    "amago_pl.modules.losses",
    "amago_pl.modules.agent",
    "amago_pl.modules.multitask_agent",
    "amago_pl.modules.nonfinite",
    "amago_pl.utils",
    "amago_pl.envs",
    "amago_pl.envs.builtin",
    "amago_pl.datamodules",
    "amago_pl.experiment",
)


def register_all_configurables() -> None:
    """Import every module that declares gin configurables, so any binding can resolve."""
    for name in _CONFIGURABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not err.name or not err.name.startswith("amago_pl"):
                raise


def port_binding_name(name: str) -> str:
    """An original ``amago.*`` or an earlier amago_pl layout's gin path -> its current spelling
    (the alias table of ``amago_pl/compat.py``); current names pass unchanged."""
    for old in _SHORT_NAME_MODULES:
        if name.startswith(old):
            return name[len(old) :]
    if name.startswith("amago."):
        name = "amago_pl." + name[len("amago.") :]
    return compat.rewrite_gin_key(name)


def _known_binding_names() -> list[str]:
    """Every ``Configurable.param`` (short and full) gin knows, for "did you mean" hints."""
    import inspect

    names: list[str] = []
    for selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001 - no public listing API
        short = selector.split(".")[-1]
        try:
            params = list(inspect.signature(configurable.wrapped).parameters)
        except (TypeError, ValueError):
            params = []
        for p in params:
            if p not in ("self", "args", "kwargs"):
                names += [f"{short}.{p}", f"{selector}.{p}"]
    return names


def explain_bad_binding(name: str, err: Exception) -> ValueError:
    close = difflib.get_close_matches(name, _known_binding_names(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"gin binding '{name}' is not valid: {err}.{hint}")


def _simple_type_error(expected: Any, value: Any) -> bool:
    """True when ``value`` clearly contradicts a plain int/float/bool/str annotation."""
    if isinstance(value, gin.config.ConfigurableReference) or value is gin.REQUIRED or value is None:
        return False
    if expected is bool:
        return not isinstance(value, bool)
    if expected is int:
        return isinstance(value, bool) or not isinstance(value, int)
    if expected is float:
        return isinstance(value, bool) or not isinstance(value, (int, float))
    if expected is str:
        return not isinstance(value, str)
    return False


def check_binding_types() -> None:
    """Fail before anything is built when a bound value contradicts a plain type annotation.

    Only unambiguous cases are checked (a parameter annotated exactly ``int``, ``float``, ``bool``
    or ``str``); everything else is left to the class itself.
    """
    import inspect
    import typing

    problems = []
    for (_scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001 - no public listing API
        configurable = gin.config._REGISTRY.get_match(selector)  # noqa: SLF001
        if configurable is None:
            continue
        target = configurable.wrapped
        try:
            hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
        except Exception:  # unresolvable annotations: nothing to check
            continue
        for param, value in params.items():
            expected = hints.get(param)
            if expected in (int, float, bool, str) and _simple_type_error(expected, value):
                problems.append(
                    f"{configurable.name}.{param} = {value!r}: expected {expected.__name__}, got {type(value).__name__}"
                )
    if problems:
        raise ValueError("gin values of the wrong type:\n  - " + "\n  - ".join(problems))


def bind(name: str, value: Any) -> None:
    """``gin.bind_parameter`` with the porting rename and a helpful error."""
    name = port_binding_name(name)
    try:
        with gin.unlock_config():
            gin.bind_parameter(name, value)
    except (ValueError, KeyError) as err:
        raise explain_bad_binding(name, err) from err


def parse_gin(files: Iterable[str] = (), bindings: Iterable[str] = ()) -> None:
    """Apply ``.gin`` files, then binding strings ("Class.param = value"), in order."""
    register_all_configurables()
    for path in files:
        with gin.unlock_config():
            gin.parse_config_file(path)
    for line in bindings:
        text = line
        if "=" in line:
            lhs, rhs = line.split("=", 1)
            # the value may name configurables too (`@amago.agent.exp_filter`)
            text = f"{port_binding_name(lhs.strip())} = {compat.rewrite_gin_text(rhs.strip())}"
        try:
            with gin.unlock_config():
                gin.parse_config(text)
        except (ValueError, KeyError, SyntaxError) as err:
            raise explain_bad_binding(text.split("=")[0].strip(), err) from err


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
