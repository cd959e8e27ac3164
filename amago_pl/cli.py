"""``amago-pl``: the Lightning CLI (fit / validate / test) with gin settings.

    amago-pl fit --config run.yaml --gin my.gin --gin "TformerTrajEncoder.n_heads = 4"

gin owns the agent, encoder and env hyperparameters; the CLI (YAML or flags) owns the Trainer,
loggers, paths and the run's structural choices (env name, sequence length, which encoders).
The gin settings are an argument of the CLI like any other: a ``gin:`` list of ``.gin`` files and
binding strings in the YAML, ``--gin`` items on the command line (appended to the YAML's list),
printed by ``--print_config`` and saved in the run's ``config.yaml``. They are applied in order
(later wins) before any class is built, on every process: DDP ranks started by Lightning's
launcher, torchrun or SLURM parse the same command line, and ``GinRankCheck`` stops a run whose
ranks hold different gin configs. Env worker processes receive the parent's config string.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

from amago_pl.envs.watchdog import DEFAULT_HANG_TIMEOUT
from amago_pl.run.build import check_required_bindings, configure_dataset, trainer_arguments
from amago_pl.run.gin_binding import check_binding_types, parse_gin, register_all_configurables
from amago_pl.run.gin_tools import (  # noqa: F401 - split_gin_args: a public name of this module
    gin_flags_appended,
    resolve_gin_file,
    split_gin_args,
)
from amago_pl.run.settings import CLI_KEYS, Settings, cli_build_roots, cli_values, validate_cli_settings


def amago_agent(
    env: str = "tmaze",
    env_kwargs: dict[str, Any] | None = None,
    max_seq_len: int = 64,
    tstep_encoder: str = "ff",
    traj_encoder: str = "transformer",
    agent: str = "agent",
    learning_rate: float | None = None,
    lr_warmup_steps: int | None = None,
    l2_coeff: float | None = None,
) -> pl.LightningModule:
    """Build the agent for a built-in env by name (its spaces decide the structural arguments).

    Args:
        env: a built-in env name (see ``amago_pl.envs.builtin.list_builtin_envs()``), e.g. "tmaze",
            "frozen_lake", "dark_key_door", "gym:CartPole-v1", "popgym:RepeatPreviousEasy".
        env_kwargs: keyword arguments of that env.
        max_seq_len: context length (training window and rollout cache).
        tstep_encoder: timestep-encoder registry name, "ff" or "cnn"; its keywords come from gin.
        traj_encoder: sequence-model registry name, "transformer", "rnn" (or "gru"), "ff", "mamba"
            or "identity"; its keywords come from gin.
        agent: agent registry name, "agent" or "multitask"; its keywords come from gin.
        learning_rate, lr_warmup_steps, l2_coeff: AdamW learning rate, optimizer steps of linear
            warmup and weight decay; None keeps the agent's value (its default or gin's
            ``Agent.learning_rate`` ...), and a different gin binding is an error.
    """
    from amago_pl.modules.agent import get_agent_cls
    from amago_pl.nets.registry import get_traj_encoder_cls, get_tstep_encoder_cls
    from amago_pl.run.build import optimizer_keywords, probe_spaces

    agent_cls = get_agent_cls(agent)
    given = {"learning_rate": learning_rate, "lr_warmup_steps": lr_warmup_steps, "l2_coeff": l2_coeff}
    optimizer = optimizer_keywords(agent_cls, given, CLI_KEYS, "amago-pl")
    spaces = probe_spaces(_EnvFactory(env, env_kwargs), "sync", 1)
    return agent_cls(
        *spaces,
        max_seq_len,
        get_tstep_encoder_cls(tstep_encoder),
        get_traj_encoder_cls(traj_encoder),
        **optimizer,
    )


def amago_dataset(
    dset_root: str = "runs",
    dset_name: str = "amago_pl",
    dset_max_size: int = 20_000,
    dset_min_size: int = 1,
    batch_size: int = 24,
    batches_per_epoch: int = 100,
    max_seq_len: int = 64,
    padded_sampling: str = "none",
    dloader_workers: int = 0,
) -> pl.LightningDataModule:
    """The on-disk replay store, configured for training (``max_seq_len`` is linked from the model)."""
    from amago_pl.datamodules import DiskTrajDataset

    dataset = DiskTrajDataset(
        dset_root=dset_root, dset_name=dset_name, dset_max_size=dset_max_size, dset_min_size=dset_min_size
    )
    dataset.configure(
        batch_size=batch_size,
        max_seq_len=max_seq_len,
        train_batches_per_epoch=batches_per_epoch,
        padded_sampling=padded_sampling,
        dloader_workers=dloader_workers,
    )
    return dataset


class _EnvFactory:
    """A picklable env constructor (for async workers): a built-in env by name and kwargs."""

    def __init__(self, name: str, kwargs: dict[str, Any] | None):
        self.name = name
        self.kwargs = dict(kwargs or {})

    def __call__(self):
        from amago_pl.envs.builtin import make_builtin_env

        return make_builtin_env(self.name, **self.kwargs)


@dataclass
class RunSettings:
    """Collection, evaluation and run-folder settings (the ``run:`` section of the YAML).

    Each key is the ``Experiment`` keyword of the same name unless ``CLI_KEYS``
    (``amago_pl.run.settings``) maps it: ``timesteps_per_epoch`` is ``train_timesteps_per_epoch``,
    ``val_timesteps`` is ``val_timesteps_per_epoch``.

    Args:
        run_dir: run folder: config.txt, checkpoints, logs, learning_curve.png.
        parallel_actors: envs per process for collection and evaluation.
        timesteps_per_epoch: env steps per actor collected before each epoch.
        val_timesteps: env steps per actor of each evaluation (0 disables evaluation).
        traj_save_len: trajectory file length; stagger_traj_file_lengths randomises it by +-max_seq_len.
        exploration: "egreedy", "bilevel" or None (keywords from gin).
        ckpt_interval: epochs between kept checkpoints (last.ckpt is always written).
        seed: env and rollout seed. None takes ``seed_everything``'s value, which LightningCLI
            draws fresh when it is not given (``seed_everything: true``, the default): repeated
            runs are then independent, the seed is recorded in config.txt and the checkpoints, and
            ``--ckpt_path`` resumes with the recorded one.
        always_save_latest: write ``ckpts/latest/policy.pt`` after every epoch (for collectors).
        hang_timeout: seconds an env's construction, reset or step may take, and training may
            wait for data without a new file, before the run stops naming the cause; null waits
            forever (``Experiment.hang_timeout``).
    """

    run_dir: str = "runs/amago_pl"
    parallel_actors: int = 8
    env_mode: str = "sync"
    timesteps_per_epoch: int = 100
    val_timesteps: int = 100
    traj_save_len: int = 10**10
    stagger_traj_file_lengths: bool = True
    exploration: str | None = "egreedy"
    sample_actions_train: bool = True
    sample_actions_val: bool = True
    start_collecting_at_epoch: int = 0
    ckpt_interval: int | None = 50
    seed: int | None = None
    save_trajs_as: str = "npz"
    force_reset_train_envs_every: int | None = None
    async_env_mp_context: str | None = None
    always_save_latest: bool = True
    always_load_latest: bool = False
    verbose: bool = True
    hang_timeout: float | None = DEFAULT_HANG_TIMEOUT
    extra: dict[str, Any] = field(default_factory=dict)


# config.txt is gin, so the CLI's seed goes in as a comment (config.yaml holds seed_everything).
_SEED_LINE = "# run.seed = {seed}  (amago-pl fit ... --run.seed {seed} --seed_everything {seed})"


GIN_HELP = (
    "gin settings: .gin files and bindings such as 'Agent.gamma = 0.99', applied in order (a later "
    "item wins). Each --gin given after --config adds one item after the YAML's `gin:` list. A "
    "relative file path is read from the working directory, else from the installed package "
    "(amago_pl/configs/...)."
)
_REFUSED_HELP = "not supported: the Agent builds its own AdamW with warmup (see the error for the keys)"
# Why Lightning's automatic optimizer arguments are refused rather than mapped: they replace
# configure_optimizers with an optimizer over model.parameters(), which would also train the
# target critics (Agent.trainable_modules excludes them) and drop the warmup and weight decay.
OPTIMIZER_REFUSAL = (
    "{flag} is not supported by amago-pl: the Agent builds its own optimizer, AdamW with linear "
    "warmup over its trainable modules (amago_pl/modules/agent.py, configure_optimizers). Set "
    "--model.learning_rate, --model.lr_warmup_steps and --model.l2_coeff, or the gin keys "
    "Agent.learning_rate, Agent.lr_warmup_steps and Agent.l2_coeff."
)
_REFUSED = ("optimizer", "lr_scheduler")


def refuse_optimizer_flags(argv: list[str]) -> None:
    for arg in argv:
        for name in _REFUSED:
            if arg == f"--{name}" or arg.startswith((f"--{name}.", f"--{name}=", f"--{name}+")):
                raise SystemExit("amago-pl: " + OPTIMIZER_REFUSAL.format(flag=f"--{name}"))


class AmagoCLI(LightningCLI):
    """LightningCLI whose model and data come from builder functions, plus ``run`` and ``gin``.

    Lightning's automatic ``--optimizer``/``--lr_scheduler`` arguments are refused (see
    ``OPTIMIZER_REFUSAL``); ``predict`` is not offered (the agent acts in envs, it has no
    prediction dataloader: evaluation episodes come from ``validate``/``test``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["auto_configure_optimizers"] = False  # our own refusing arguments replace them
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        commands = dict(LightningCLI.subcommands())
        commands.pop("predict", None)
        return commands

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 - jsonargparse parser
        parser.add_argument("--gin", type=list[str], default=[], help=GIN_HELP)
        for name in _REFUSED:
            parser.add_argument(f"--{name}", type=Any, default=None, help=_REFUSED_HELP)
        parser.add_class_arguments(RunSettings, "run")
        parser.link_arguments("model.max_seq_len", "data.max_seq_len")

    def parse_arguments(self, parser, args: Any) -> None:  # noqa: ANN001 - jsonargparse parser
        """Command lines (``args`` None: ``sys.argv``) get ``--gin X`` as an appended item."""
        if isinstance(args, dict) or hasattr(args, "as_dict"):
            return super().parse_arguments(parser, args)
        argv = list(sys.argv[1:] if args is None else args)
        refuse_optimizer_flags(argv)
        # Not LightningCLI.parse_arguments: it warns whenever args and sys.argv are both given.
        self.config = parser.parse_args(gin_flags_appended(argv))

    def _set_seed(self) -> None:
        """LightningCLI's seeding, with a fresh seed when it would pick one at random.

        Its own pick reuses ``PL_GLOBAL_SEED`` left in the environment by an earlier run in this
        process (or the global RNG that run seeded), so a loop of ``run(...)`` trials would repeat
        one run; ``draw_seed`` reads the OS instead. Whether the seed was drawn decides whether a
        resume takes the checkpoint's seed (see ``RunSeedCallback``).
        """
        from amago_pl.callbacks.seeding import draw_seed

        cfg = self.config[self.subcommand] if self.subcommand else self.config
        self._seed_drawn = self._get(self.config, "seed_everything") is True
        if self._seed_drawn:
            cfg["seed_everything"] = draw_seed()
        super()._set_seed()

    def run_seed(self) -> tuple[int, bool]:
        """The run's seed and whether it was drawn (nobody gave ``run.seed`` or ``seed_everything``)."""
        from amago_pl.callbacks.seeding import draw_seed

        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if cfg["run"]["seed"] is not None:
            return int(cfg["run"]["seed"]), False
        everything = self._get(self.config, "seed_everything")
        if isinstance(everything, int) and not isinstance(everything, bool):
            return everything, getattr(self, "_seed_drawn", False)
        return draw_seed(), True  # seed_everything: false

    def _cfg(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        """Check every setting (and gin) before any env or model is built."""
        from amago_pl.run.build import optimizer_keywords

        cfg = self._cfg()
        for name in _REFUSED:
            if cfg.get(name) is not None:
                raise SystemExit("amago-pl: " + OPTIMIZER_REFUSAL.format(flag=name))
        try:
            apply_gin_items(cfg.get("gin") or [])
        except ValueError as err:
            raise SystemExit(f"amago-pl: {err}") from err
        problems = validate_cli_settings(cfg)
        if problems:
            raise SystemExit("amago-pl: invalid settings:\n  - " + "\n  - ".join(problems))
        roots = cli_build_roots(cfg)
        try:
            check_required_bindings(roots)
            optimizer_keywords(roots[0], cli_values(cfg), CLI_KEYS, "amago-pl")
        except ValueError as err:
            raise SystemExit(f"amago-pl: {err}") from err

    def settings(self) -> Settings:
        """The run ``Settings`` of this command line: the YAML keys mapped by ``CLI_KEYS``."""
        from amago_pl.envs.exploration import get_exploration_cls

        cfg = self._cfg()
        values = cli_values(cfg, settings_only=True)
        trainer = self._get(self.config_init, "trainer", default={})
        for name, key in CLI_KEYS.items():
            if key.startswith("trainer.") and name in values:
                values[name] = trainer[key.partition(".")[2]]  # instantiated (e.g. a Strategy object)
        values["seed"], values["seed_drawn"] = self.run_seed()
        make_env = _EnvFactory(cfg["model"]["env"], cfg["model"]["env_kwargs"])
        exploration = cfg["run"]["exploration"]
        return Settings(
            **values,
            make_train_env=make_env,
            make_val_env=make_env,
            exploration_wrapper_type=get_exploration_cls(exploration) if exploration else None,
            trainer_kwargs=self._trainer_overrides(),
            labels=CLI_KEYS,
            source="amago-pl",
            seed_record=_SEED_LINE,
        )

    def _trainer_overrides(self) -> dict[str, Any]:
        """``trainer:`` values the YAML or flags set that no setting maps: passed to the Trainer last."""
        mapped = {key.partition(".")[2] for key in CLI_KEYS.values() if key.startswith("trainer.")}
        given = self._cfg()["trainer"]
        defaults = self._parser(self.subcommand).get_defaults()["trainer"]
        trainer = self._get(self.config_init, "trainer", default={})
        out = {}
        for key, value in trainer.items():
            if key in mapped or key == "callbacks" or given[key] == defaults.get(key):
                continue
            if key == "logger" and value in (None, True):
                continue  # the run's CSV logger
            out[key] = value
        return out

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        settings = self.settings()
        settings.trainer_kwargs = {**settings.trainer_kwargs, **kwargs}
        configure_dataset(self.datamodule, settings)
        args = trainer_arguments(settings, stage="test" if self.subcommand == "test" else "val")
        # The YAML's own callbacks first, as LightningCLI orders them; LightningCLI adds its
        # SaveConfigCallback.
        extra = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
        user = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        args["callbacks"] = [*(user if isinstance(user, list) else [user]), *extra, *args["callbacks"]]
        return self._instantiate_trainer(args, [])

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        # Checkpoints are plain data (amago_pl/modules/hparams.py): read them without unpickling.
        if "weights_only" in kwargs and kwargs["weights_only"] is None:
            kwargs["weights_only"] = True
        return kwargs

    def _parse_ckpt_path(self) -> None:
        """Not LightningCLI's: it would read the checkpoint's hyperparameters (the Agent's
        arguments) as ``model:`` settings, which here are the builder's (env, encoders ...). The
        model comes from the YAML/flags; ``Agent.on_load_checkpoint`` compares it with the file."""


def apply_gin_items(items: list[str]) -> None:
    """Files and binding strings, in the order given (a later item overrides an earlier one), on top
    of the process's gin config (``cli_utils.reset_config()`` starts a fresh one)."""
    register_all_configurables()
    for item in items:
        if item.endswith(".gin") or (os.path.exists(item) and "=" not in item):
            path = resolve_gin_file(item)
            if path is None:
                raise SystemExit(f"--gin file not found: {item}")
            parse_gin(files=[path])
        else:
            parse_gin(bindings=[item])
    check_binding_types()


TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 20,
    "num_sanity_val_steps": 0,
    "limit_val_batches": 1,
    "use_distributed_sampler": False,
    "accelerator": "auto",
    "devices": 1,
}


def main() -> None:
    """Console-script entry point (``amago-pl``; ``amago-pl convert-checkpoint OLD NEW``)."""
    if sys.argv[1:2] == ["convert-checkpoint"]:
        from amago_pl.run.convert import main as convert_main

        raise SystemExit(convert_main(sys.argv[2:]))
    run()


def run(argv: list[str] | None = None) -> AmagoCLI:
    """Run the CLI on ``argv`` (default: the process's command line); returns the finished CLI.

    The gin items apply on top of this process's gin config: in a notebook, call
    ``amago_pl.cli_utils.reset_config()`` first to start from a fresh one.
    """
    return AmagoCLI(
        model_class=amago_agent,
        datamodule_class=amago_dataset,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        args=None if argv is None else list(argv),
    )


if __name__ == "__main__":
    main()
