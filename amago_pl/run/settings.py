"""A run's settings under one vocabulary, and the one check of them.

Every setting has one name inside the code: the original ``amago.Experiment`` keyword
(amago/experiment.py:120-184 at 2d85600). The front doors map their own spellings onto it:
``Experiment`` keywords are these names, the ``amago-pl`` YAML keys are mapped by ``CLI_KEYS``
(e.g. ``run.timesteps_per_epoch`` -> ``train_timesteps_per_epoch``), and the original's
command-line flags by ``cli_utils.create_experiment_from_cli``.

``check`` validates a mapping of these names once for all doors; each problem is reported under
the door's own spelling, with the constraint and the fix, all at once.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from amago_pl.callbacks.seeding import draw_seed
from amago_pl.datamodules.sampling import PADDED_SAMPLING_MODES
from amago_pl.envs import MODES, EpsilonGreedy
from amago_pl.envs.watchdog import DEFAULT_HANG_TIMEOUT

TRAJ_FORMATS = ("npz", "npz-compressed")
LOGGERS = ("csv", "tensorboard", "wandb")
MP_CONTEXTS = ("fork", "spawn", "forkserver")
# The original's accelerate names, then every precision Lightning's Trainer takes.
MIXED_PRECISION = {"no": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}
LIGHTNING_PRECISION = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
                       "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16",
                       64, 32, 16)  # fmt: skip


@dataclass(kw_only=True)
class Settings:
    """Everything a run needs besides the dataset and the model classes.

    Field names and defaults are ``Experiment``'s (its docstring describes each); the extra
    fields say how a front door reports problems (``labels``, ``source``) and records the seed.
    ``learning_rate``, ``lr_warmup_steps`` and ``l2_coeff`` left at None keep the Agent's value
    (its default or a gin binding of ``Agent.learning_rate`` ...).
    """

    run_dir: str | Path
    max_seq_len: int
    make_train_env: Callable | Sequence[Callable]
    make_val_env: Callable | Sequence[Callable] | None = None  # None: the train envs' factory
    val_timesteps_per_epoch: int
    # envs
    parallel_actors: int = 12
    env_mode: str = "async"
    async_env_mp_context: str | None = None
    exploration_wrapper_type: Callable | None = EpsilonGreedy
    sample_actions_train: bool = True
    sample_actions_val: bool = True
    force_reset_train_envs_every: int | None = None
    # seconds an env call or a wait for training data may take (None: forever; envs/watchdog.py)
    hang_timeout: float | None = DEFAULT_HANG_TIMEOUT
    # replay
    traj_save_len: int = 10**10
    has_dset_edit_rights: bool = True
    stagger_traj_file_lengths: bool = True
    save_trajs_as: str = "npz"
    padded_sampling: str = "none"
    dloader_workers: int = 6
    # schedule
    epochs: int | None = 1000
    start_learning_at_epoch: int = 0
    start_collecting_at_epoch: int = 0
    train_timesteps_per_epoch: int = 1000
    train_batches_per_epoch: int = 1000
    val_interval: int | None = 20
    ckpt_interval: int | None = 50
    always_save_latest: bool = True
    always_load_latest: bool = False
    # optimization
    batch_size: int = 24
    batches_per_update: int = 1
    learning_rate: float | None = None
    lr_warmup_steps: int | None = None
    l2_coeff: float | None = None
    grad_clip: float | None = 1.0
    mixed_precision: str | int | None = "no"
    # Lightning
    seed: int | None = None  # None: draw one (see amago_pl.callbacks.seeding)
    seed_drawn: bool = False
    accelerator: Any = "auto"
    devices: int | str | list[int] = 1
    strategy: Any = "auto"
    num_nodes: int = 1
    loggers: Sequence[str] = ("csv",)
    log_to_wandb: bool = False
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_group_name: str | None = None
    verbose: bool = True
    log_interval: int | None = 300
    trainer_kwargs: dict[str, Any] | None = None  # passed to the Trainer last: they win
    # how the front door speaks
    labels: Mapping[str, str] = field(default_factory=dict)  # setting -> the door's spelling
    source: str = "Settings"
    seed_record: str = "# seed = {seed}"  # the config.txt line of the run seed
    seed_owner: Any = None  # an object whose ``seed`` follows a seed change (the Experiment)

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed, self.seed_drawn = draw_seed(), True
        if self.make_val_env is None:
            self.make_val_env = self.make_train_env

    @property
    def run_name(self) -> str:
        return Path(self.run_dir).name

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.run_dir) / "ckpts"

    @property
    def val_enabled(self) -> bool:
        return bool(self.val_interval) and self.val_timesteps_per_epoch > 0

    @property
    def progress_bars(self) -> bool:
        """Whether the collection and evaluation bars show: ``verbose``, unless the Trainer's
        ``enable_progress_bar=False`` (e.g. ``--trainer.enable_progress_bar false``) silences
        Lightning's bar too."""
        return self.verbose and (self.trainer_kwargs or {}).get("enable_progress_bar") is not False

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def problems(self) -> list[str]:
        return check(self.values(), self.labels)

    def validate(self) -> None:
        """Raise one ``ValueError`` listing every invalid setting."""
        problems = self.problems()
        if problems:
            raise ValueError(f"Invalid {self.source} settings:\n  - " + "\n  - ".join(problems))


# setting -> (int or float, lowest value, strictly above it, None allowed in Python)
_NUMBERS: dict[str, tuple[type, float, bool, bool]] = {
    "max_seq_len": (int, 1, False, False),
    "parallel_actors": (int, 1, False, False),
    "batch_size": (int, 1, False, False),
    "epochs": (int, 1, False, False),
    "batches_per_update": (int, 1, False, False),
    "train_timesteps_per_epoch": (int, 0, False, False),
    "train_batches_per_epoch": (int, 0, False, False),
    "val_timesteps_per_epoch": (int, 0, False, False),
    "start_learning_at_epoch": (int, 0, False, False),
    "start_collecting_at_epoch": (int, 0, False, False),
    "dloader_workers": (int, 0, False, False),
    "val_interval": (int, 0, False, True),
    "ckpt_interval": (int, 0, False, True),
    "force_reset_train_envs_every": (int, 1, False, True),
    "log_interval": (int, 1, False, True),
    "learning_rate": (float, 0, True, True),
    "lr_warmup_steps": (int, 0, False, True),
    "l2_coeff": (float, 0, False, True),
    "grad_clip": (float, 0, False, True),
    "hang_timeout": (float, 0, True, True),
    # The CLI's replay store (an Experiment receives a built dataset).
    "dset_max_size": (int, 1, False, False),
    "dset_min_size": (int, 0, False, False),
}
_NO_LIMIT = {"epochs": -1}  # Lightning's max_epochs=-1 trains until stopped


def _one_of(options: Sequence[Any]) -> str:
    quoted = [repr(o) for o in options]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def _number_problem(name: str, value: Any, label: str, typed: bool) -> str | None:
    kind, low, strict, none_ok = _NUMBERS[name]
    if value is None and none_ok:
        return None
    if value == _NO_LIMIT.get(name):
        return None
    is_number = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    # inf passes every comparison below but is never a usable rate, clip or coefficient.
    if is_number and math.isfinite(value) and (value > low or (value == low and not strict)):
        return None
    # YAML values were type-checked by the parser, so the CLI states the bound only; Python values
    # may be of any type, so the Experiment's message names the type too.
    if typed:
        need = f"> {low}" if strict else f">= {low}"
    elif kind is int:
        need = "a positive integer" if low == 1 else f"an integer >= {low}"
    else:
        need = f"a number {'>' if strict else '>='} {low}"
    if none_ok and not typed:
        need += " or None"
    if is_number and not math.isfinite(value):
        need += " (and finite)"
    return f"{label}={value!r} must be {need}"


def check(
    values: Mapping[str, Any], labels: Mapping[str, str] | None = None, typed: bool = False
) -> list[str]:
    """Every invalid value among ``values`` ({setting: value}; absent settings are not checked).

    ``labels`` maps a setting to the front door's spelling used in the messages; ``typed`` says
    the values come from a type-checking parser (the CLI), where None means "not given".
    """
    labels = labels or {}
    values = {k: v for k, v in values.items() if not (typed and v is None)}

    def label(name: str) -> str:
        return labels.get(name, name)

    problems = [
        p
        for name, value in values.items()
        if name in _NUMBERS and (p := _number_problem(name, value, label(name), typed)) is not None
    ]
    choices = {
        "env_mode": MODES,
        "padded_sampling": PADDED_SAMPLING_MODES,
        "async_env_mp_context": (None, *MP_CONTEXTS),
    }
    for name, options in choices.items():
        if name in values and values[name] not in options:
            shown = [o for o in options if o is not None]
            problems.append(f"{label(name)}={values[name]!r}: use {_one_of(shown)}")
    if "save_trajs_as" in values and values["save_trajs_as"] not in TRAJ_FORMATS:
        problems.append(
            f"{label('save_trajs_as')}={values['save_trajs_as']!r}: use {_one_of(TRAJ_FORMATS)} "
            "('traj'/'trajectory' pickles are not supported: files load with allow_pickle=False)"
        )
    precision = values.get("mixed_precision")
    if precision is not None and precision not in MIXED_PRECISION and precision not in LIGHTNING_PRECISION:
        problems.append(f"{label('mixed_precision')}={precision!r}: use 'no', 'fp16' or 'bf16'")
    unknown = {str(n).lower() for n in values.get("loggers", ())} - set(LOGGERS)
    if unknown:
        problems.append(f"{label('loggers')}: unknown logger(s) {sorted(unknown)}: use {_one_of(LOGGERS)}")
    seed = values.get("seed")
    if "seed" in values and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        # seed_everything silently swaps an out-of-range seed for a random one.
        problems.append(f"{label('seed')}={seed!r} must be an integer in [0, 2**32) or None (draw one)")
    seq, save_len = values.get("max_seq_len"), values.get("traj_save_len")
    if "traj_save_len" in values and not (isinstance(save_len, int) and not isinstance(save_len, bool)):
        problems.append(f"{label('traj_save_len')}={save_len!r} must be an integer")
    elif isinstance(seq, int) and isinstance(save_len, int) and save_len < seq:
        problems.append(
            f"{label('traj_save_len')}={save_len} < {label('max_seq_len')}={seq}: trajectory files would be "
            f"shorter than a training window; raise {label('traj_save_len')} (or lower {label('max_seq_len')})"
        )
    size, min_size = values.get("dset_max_size"), values.get("dset_min_size")
    if isinstance(size, int) and isinstance(min_size, int) and min_size >= size:
        problems.append(
            f"{label('dset_min_size')}={min_size} >= {label('dset_max_size')}={size}: training waits for more "
            f"files than the FIFO keeps and would never start; lower {label('dset_min_size')} or raise "
            f"{label('dset_max_size')}"
        )
    for name in ("make_train_env", "make_val_env"):
        if name in values:
            problems += _env_factory_problems(label(name), values[name], values)
    return problems


def _env_factory_problems(label: str, value: Any, values: Mapping[str, Any]) -> list[str]:
    fns = value if isinstance(value, (list, tuple)) else [value]
    if not fns or not all(callable(f) for f in fns):
        return [f"{label} must be a callable returning an AMAGOEnv (or a list of them), got {value!r}"]
    actors = values.get("parallel_actors")
    if (
        isinstance(value, (list, tuple))
        and len(value) != actors
        and values.get("env_mode") != "already_vectorized"
    ):
        return [f"{label} has {len(value)} callables but parallel_actors={actors}"]
    return []


# The amago-pl YAML keys (and --section.key flags) of each setting. The trainer section keeps
# Lightning's own names, mapped onto the settings that the builder turns back into them.
CLI_KEYS: dict[str, str] = {
    "max_seq_len": "model.max_seq_len",
    "learning_rate": "model.learning_rate",
    "lr_warmup_steps": "model.lr_warmup_steps",
    "l2_coeff": "model.l2_coeff",
    "batch_size": "data.batch_size",
    "train_batches_per_epoch": "data.batches_per_epoch",
    "padded_sampling": "data.padded_sampling",
    "dloader_workers": "data.dloader_workers",
    "dset_max_size": "data.dset_max_size",
    "dset_min_size": "data.dset_min_size",
    "run_dir": "run.run_dir",
    "parallel_actors": "run.parallel_actors",
    "env_mode": "run.env_mode",
    "async_env_mp_context": "run.async_env_mp_context",
    "train_timesteps_per_epoch": "run.timesteps_per_epoch",
    "val_timesteps_per_epoch": "run.val_timesteps",
    "traj_save_len": "run.traj_save_len",
    "stagger_traj_file_lengths": "run.stagger_traj_file_lengths",
    "save_trajs_as": "run.save_trajs_as",
    "sample_actions_train": "run.sample_actions_train",
    "sample_actions_val": "run.sample_actions_val",
    "force_reset_train_envs_every": "run.force_reset_train_envs_every",
    "hang_timeout": "run.hang_timeout",
    "start_collecting_at_epoch": "run.start_collecting_at_epoch",
    "ckpt_interval": "run.ckpt_interval",
    "always_save_latest": "run.always_save_latest",
    "always_load_latest": "run.always_load_latest",
    "verbose": "run.verbose",
    "seed": "run.seed",
    "epochs": "trainer.max_epochs",
    "batches_per_update": "trainer.accumulate_grad_batches",
    "grad_clip": "trainer.gradient_clip_val",
    "mixed_precision": "trainer.precision",
    "val_interval": "trainer.check_val_every_n_epoch",
    "log_interval": "trainer.log_every_n_steps",
    "accelerator": "trainer.accelerator",
    "devices": "trainer.devices",
    "strategy": "trainer.strategy",
    "num_nodes": "trainer.num_nodes",
}
_NOT_SETTINGS = {"dset_max_size", "dset_min_size"}  # read by amago_dataset, not by the run


def _get(section: Any, key: str, default: Any = None) -> Any:
    try:
        return section[key]
    except (KeyError, TypeError):
        return default


_MISSING = object()


def cli_values(cfg: Any, settings_only: bool = False) -> dict[str, Any]:
    """{setting: value} of the CLI config's sections (keys absent from ``cfg`` are left out)."""
    out: dict[str, Any] = {}
    for name, key in CLI_KEYS.items():
        if settings_only and name in _NOT_SETTINGS:
            continue
        section, _, leaf = key.partition(".")
        value = _get(_get(cfg, section) or {}, leaf, _MISSING)
        if value is not _MISSING:
            out[name] = value
    return out


def validate_cli_settings(cfg: Any) -> list[str]:
    """Every invalid value of the model/data/run/trainer sections, each with the fix."""
    problems = check(cli_values(cfg), CLI_KEYS, typed=True)
    for section, key, lookup in (
        ("model", "agent", "amago_pl.modules.agent:get_agent_cls"),
        ("model", "tstep_encoder", "amago_pl.nets.registry:get_tstep_encoder_cls"),
        ("model", "traj_encoder", "amago_pl.nets.registry:get_traj_encoder_cls"),
        ("run", "exploration", "amago_pl.envs.exploration:get_exploration_cls"),
    ):
        name = _get(_get(cfg, section) or {}, key)
        if name is not None and _lookup(lookup, name)[0] is None:
            problems.append(f"{section}.{key}={name!r}: {_lookup(lookup, name)[1]}")
    return problems


def _lookup(path: str, name: str) -> tuple[Any, str]:
    """(class, "") for a registered name, (None, the registry's error) otherwise."""
    module, fn = path.split(":")
    try:
        return getattr(importlib.import_module(module), fn)(name), ""
    except (KeyError, ValueError) as err:
        return None, str(err).strip("\"'")


def cli_build_roots(cfg: Any) -> list[Any]:
    """The configurable classes a CLI run builds (for the gin.REQUIRED check)."""
    model, run = _get(cfg, "model") or {}, _get(cfg, "run") or {}
    roots = [
        _lookup("amago_pl.modules.agent:get_agent_cls", _get(model, "agent", "agent"))[0],
        _lookup("amago_pl.nets.registry:get_tstep_encoder_cls", _get(model, "tstep_encoder", "ff"))[0],
        _lookup("amago_pl.nets.registry:get_traj_encoder_cls", _get(model, "traj_encoder", "transformer"))[0],
    ]
    if _get(run, "exploration"):
        roots.append(_lookup("amago_pl.envs.exploration:get_exploration_cls", run["exploration"])[0])
    return roots
