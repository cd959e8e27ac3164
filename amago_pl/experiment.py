"""Experiment: the original library's facade, rebuilt as wiring around a Lightning ``Trainer``.

It holds no RL logic: its fields are run ``Settings`` (``amago_pl.run.settings``), and ``start()``
hands them to the one builder (``amago_pl.run.build``) that also serves the ``amago-pl`` CLI and
plain scripts; ``learn()`` calls ``Trainer.fit``. The same run as a plain script:
``examples/trainer_fit_script.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import gin
import lightning.pytorch as pl

from amago_pl.callbacks import EvalCallback
from amago_pl.callbacks.interact import EpisodeStat
from amago_pl.callbacks.seeding import draw_seed
from amago_pl.callbacks.trainer_context import log_to_loggers, total_frames
from amago_pl.datamodules.data_wait import readiness_problem
from amago_pl.envs import EpsilonGreedy
from amago_pl.envs.watchdog import DEFAULT_HANG_TIMEOUT
from amago_pl.run.build import (
    build_callbacks,
    build_run,
    describe_run,
    load_weights_only,
    trainer_arguments,
    validate_experiment,
)
from amago_pl.run.settings import Settings


@dataclass
class EvaluationResult:
    metrics: dict[str, float]
    episodes: list[EpisodeStat]


@gin.configurable
@dataclass
class Experiment:
    """The training run: envs, replay data, agent and schedule, wired into a Lightning ``Trainer``.

    Keyword names and defaults follow the original ``amago.Experiment`` (amago/experiment.py:120-184
    at 2d85600); the fields after ``mixed_precision`` are amago_pl additions (devices, seed, loggers,
    extra Trainer arguments). Every field is also a ``Settings`` field of the same name
    (``amago_pl.run.settings``), which the builder in ``amago_pl.run.build`` turns into the agent,
    callbacks and Trainer. Invalid settings raise a ``ValueError`` at construction. Typical use:
    ``exp = Experiment(...)``, ``exp.start()``, ``exp.learn()``, ``exp.evaluate_test(make_env, timesteps)``.

    Required:

    Args:
        run_name: its files go to ``{ckpt_base_dir}/{run_name}/`` (checkpoints in ``ckpts/``, CSV
            logs in ``logs/``); it also names the wandb run.
        ckpt_base_dir: folder that holds the run folders.
        max_seq_len: context length in timesteps: the length of training sequences and the number
            of past steps the policy remembers during rollouts.
        dataset: the replay data, an ``RLDataset`` (``DiskTrajDataset``, ``MixtureOfDatasets``, ...).
            ``start()`` configures it in place with this run's batch size, sequence length and
            loader settings; it is also the Lightning datamodule.
        tstep_encoder_type, traj_encoder_type, agent_type: classes that ``start()`` builds from the
            env spaces (their keywords come from gin).
        val_timesteps_per_epoch: env steps per parallel env in each validation run; 0 disables
            validation. Only episodes that finish within this budget are counted.
        make_train_env: a callable returning an ``AMAGOEnv``, or a list of ``parallel_actors``
            such callables (one per env), used for data collection.
        make_val_env: like ``make_train_env``, for validation (no exploration, no data saved).

    Envs:

    Args:
        parallel_actors: envs stepped together in each process (also the batch size of the
            rollout memory).
        env_mode: "async" (each env in a worker process), "sync" (all envs in this process) or
            "already_vectorized" (the factory returns one env that is already batched).
        async_env_mp_context: start method of the "async" workers ("fork", "spawn",
            "forkserver"); None picks "fork" on Linux and "spawn" elsewhere.
        exploration_wrapper_type: exploration class applied to the training actions, built as
            ``cls(action_space, num_envs)``; None disables exploration (evaluation never explores).
        sample_actions_train, sample_actions_val: sample from the policy (False takes the most
            likely / mean action) during collection, and during validation and test.
        force_reset_train_envs_every: every this many epochs, reset all training envs and clear
            the policy's memory (for vectorised envs that never reset themselves).

    Logging:

    Args:
        log_to_wandb: also log to Weights & Biases (offline when ``WANDB_MODE`` is "offline" or
            "disabled").
        wandb_project, wandb_entity: default to the ``AMAGO_WANDB_PROJECT`` / ``AMAGO_WANDB_ENTITY``
            environment variables, read when the Experiment is created ("amago_pl" without either).
        verbose: progress bars, the model summary and the start-up description.
        log_interval: training steps between logged training metrics (``log_every_n_steps``).

    Replay:

    Args:
        traj_save_len: a trajectory is written to a file when its episode ends or after this many
            steps (long episodes become several files). At least ``max_seq_len``.
        has_dset_edit_rights: whether this process may delete old FIFO files; False for
            collector-only processes that share a buffer.
        stagger_traj_file_lengths: draw each file's split length in
            ``[traj_save_len - max_seq_len, traj_save_len + max_seq_len]`` so that file boundaries
            do not line up across envs (only when ``max_seq_len < traj_save_len``).
        save_trajs_as: "npz" or "npz-compressed".
        padded_sampling: where training windows may start in a trajectory longer than
            ``max_seq_len``: "none" (always full length), "left" (may start before step 0), "right"
            (may run past the end) or "both". Shorter trajectories are always used whole.
        dloader_workers: DataLoader worker processes; 0 loads in the training process.

    Schedule:

    Args:
        epochs: each epoch collects, then trains, then validates and checkpoints when due.
        start_learning_at_epoch: epochs before this one only collect.
        start_collecting_at_epoch: epochs before this one do not collect (offline pretraining).
        train_timesteps_per_epoch: env steps per parallel env collected each epoch (0: none).
        train_batches_per_epoch: training batches per epoch in each process; 0 makes the run a
            pure collector (no training, no checkpoints).
        val_interval: validate every this many epochs; None (or 0) disables validation.
        ckpt_interval: keep ``ckpts/epoch={e}.ckpt`` every this many epochs; ``ckpts/last.ckpt``
            is always kept. None keeps only ``last.ckpt``.
        always_save_latest: write ``ckpts/latest/policy.pt`` after every epoch (for collectors).
        always_load_latest: load ``ckpts/latest/policy.pt`` at the start of every epoch (for
            collector processes that follow a separate learner).

    Optimization:

    Args:
        batch_size: sequences per batch in each process (per device).
        batches_per_update: batches whose gradients are accumulated per optimizer step.
        learning_rate, lr_warmup_steps, l2_coeff: AdamW learning rate, optimizer steps of linear
            warmup, and weight decay. The Agent's keywords of the same names: None (the default)
            keeps the Agent's value (1e-4, 500, 1e-3 unless gin binds ``Agent.learning_rate`` ...);
            a value here and a different gin binding is an error.
        grad_clip: gradients are clipped to this global norm.
        mixed_precision: "no" (fp32), "fp16" or "bf16"; Lightning precision strings such as
            "bf16-mixed" are accepted too.

    amago_pl additions:

    Args:
        seed: global seed (``seed_everything``) and base of the env seeds (per rank: see
            ``amago_pl.callbacks.seeding``). None draws a fresh one, so repeated runs are
            independent as in the original; it is written to config.txt and the checkpoints, and
            a resume (``load_checkpoint``) continues with it.
        accelerator, devices, strategy, num_nodes: Lightning's Trainer arguments.
        loggers: any of "csv", "tensorboard" and "wandb".
        trainer_kwargs: extra ``lightning.pytorch.Trainer`` arguments; they override the computed ones.
        hang_timeout: seconds (default 600) that an env's construction, ``reset`` or ``step`` may
            take, and that training may wait for data without a new trajectory file, before the
            run stops with an error naming the env or the dataset and the fix; None waits
            forever. The same name in amago-pl (``--run.hang_timeout``) and gin
            (``Experiment.hang_timeout``). See docs/reliability.md, "Hangs".
    """

    # required
    run_name: str
    ckpt_base_dir: str
    max_seq_len: int
    dataset: Any
    tstep_encoder_type: Callable
    traj_encoder_type: Callable
    agent_type: Callable
    val_timesteps_per_epoch: int
    make_train_env: Callable | Sequence[Callable]
    make_val_env: Callable | Sequence[Callable]
    # envs
    parallel_actors: int = 12
    env_mode: str = "async"
    async_env_mp_context: str | None = None
    exploration_wrapper_type: Callable | None = EpsilonGreedy
    sample_actions_train: bool = True
    sample_actions_val: bool = True
    force_reset_train_envs_every: int | None = None
    # logging
    log_to_wandb: bool = False
    wandb_project: str | None = field(default_factory=lambda: os.environ.get("AMAGO_WANDB_PROJECT"))
    wandb_entity: str | None = field(default_factory=lambda: os.environ.get("AMAGO_WANDB_ENTITY"))
    wandb_group_name: str | None = None
    verbose: bool = True
    log_interval: int = 300
    # replay
    traj_save_len: int = 10**10  # an int: the original's float 1e10 broke random.randint
    has_dset_edit_rights: bool = True
    stagger_traj_file_lengths: bool = True
    save_trajs_as: str = "npz"
    padded_sampling: str = "none"
    dloader_workers: int = 6
    # schedule
    epochs: int = 1000
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
    learning_rate: float | None = None  # None: the Agent's (gin) value
    lr_warmup_steps: int | None = None
    grad_clip: float = 1.0
    l2_coeff: float | None = None
    mixed_precision: str = "no"
    # amago_pl additions
    seed: int | None = None
    accelerator: str = "auto"
    devices: int | str | list[int] = 1
    strategy: str = "auto"
    num_nodes: int = 1
    loggers: Sequence[str] = ("csv",)
    trainer_kwargs: dict[str, Any] | None = None
    hang_timeout: float | None = DEFAULT_HANG_TIMEOUT

    def __post_init__(self) -> None:
        # Drawn here, once, so that start(), the callbacks and evaluate_test all see one seed.
        self.seed_drawn = self.seed is None
        if self.seed is None:
            self.seed = draw_seed()
        if isinstance(self.traj_save_len, float) and self.traj_save_len.is_integer():
            self.traj_save_len = int(self.traj_save_len)  # the original's default is the float 1e10
        validate_experiment(self)
        if self.train_batches_per_epoch > 0 and (problem := readiness_problem(self.dataset)):
            # Checked here because the Experiment receives a built dataset (the CLI checks its
            # data.dset_* keys in run/settings.py): such a run would wait for data forever.
            raise ValueError(f"Invalid Experiment settings:\n  - {problem}")
        self.agent = None
        self.trainer: pl.Trainer | None = None
        self._ckpt_path: str | None = None

    # ------------------------------------------------------------------ paths
    @property
    def run_dir(self) -> Path:
        return Path(self.ckpt_base_dir) / self.run_name

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "ckpts"

    @property
    def val_enabled(self) -> bool:
        return bool(self.val_interval) and self.val_timesteps_per_epoch > 0

    @property
    def DEVICE(self) -> Any:  # noqa: N802 - the original's attribute name (amago/experiment.py at 2d85600)
        """The torch device the agent trains on: the Trainer's once ``start()`` built it, else CPU."""
        import torch

        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    # ------------------------------------------------------------------ lifecycle
    def settings(self) -> Settings:
        """This Experiment's fields as run ``Settings`` (the same names; read when called, so
        changes made after construction, e.g. by ``switch_async_mode``, count)."""
        own = {f.name for f in fields(self)}
        mine = {f.name: getattr(self, f.name) for f in fields(Settings) if f.name in own}
        return Settings(
            **mine,
            run_dir=self.run_dir,
            seed_drawn=self.seed_drawn,
            source="Experiment",
            seed_record="Experiment.seed = {seed}",
            seed_owner=self,
        )

    def start(self) -> None:
        """Build the agent, callbacks, loggers and Trainer. Call after gin is configured."""
        built = build_run(
            self.settings(), self.dataset, self.agent_type, self.tstep_encoder_type, self.traj_encoder_type
        )
        self.agent = built.agent
        self.trainer = built.trainer()
        if self.verbose:
            print(describe_run(self, built.obs_space, built.action_space))

    def build_callbacks(self) -> list[pl.Callback]:
        """Collection, evaluation, checkpoints, config logging and the summary (``run.build``)."""
        return build_callbacks(self)

    def trainer_arguments(self) -> dict[str, Any]:
        return trainer_arguments(self)

    def learn(self) -> None:
        """Train for ``epochs`` epochs (collect -> train -> validate -> checkpoint)."""
        if self.trainer is None:
            raise RuntimeError("call Experiment.start() before learn()")
        # Checkpoints hold plain data only (amago_pl/modules/hparams.py): nothing is unpickled.
        self.trainer.fit(self.agent, datamodule=self.dataset, ckpt_path=self._ckpt_path, weights_only=True)
        self._ckpt_path = None

    # ------------------------------------------------------------------ evaluation
    def evaluate_test(
        self,
        make_test_env: Callable | Sequence[Callable],
        timesteps: int,
        render: bool = False,
        save_trajs_to: str | os.PathLike | None = None,
        episodes: int | None = None,
    ) -> EvaluationResult:
        """Run the policy on fresh test envs (no exploration); log ``test/`` metrics.

        Returns the metrics and the list of finished episodes. ``save_trajs_to`` writes every test
        trajectory into a store folder (e.g. to build an offline dataset). ``render`` is accepted for
        compatibility; render through the env's own ``render_mode``. ``episodes``: stop once every
        env has finished ``ceil(episodes / parallel_actors)`` episodes and report exactly those, so
        the average is not biased towards short episodes; ``timesteps`` still caps the rollout.
        """
        from amago_pl.datamodules import TrajectoryStore, TrajectoryWriter

        if self.agent is None:
            raise RuntimeError("call Experiment.start() before evaluate_test()")
        evaluator = EvalCallback(
            make_test_env,
            parallel_actors=self.parallel_actors,
            timesteps=timesteps,
            env_mode=self.env_mode,
            sample_actions=self.sample_actions_val,
            stage="test",
            seed=self.seed + 2_000_000,
            episodes=episodes,
            async_env_mp_context=self.async_env_mp_context,
            verbose=self.verbose,
            hang_timeout=self.hang_timeout,
        )
        writer = None
        if save_trajs_to is not None:
            writer = TrajectoryWriter(
                TrajectoryStore(save_trajs_to), self.parallel_actors, self.traj_save_len
            )
        try:
            metrics = evaluator.evaluate(None, self.agent, writer=writer)
        finally:
            evaluator.close()
        if self.trainer is not None:
            log_to_loggers(self.trainer, metrics, total_frames=total_frames(self.trainer))
            for logger in self.trainer.loggers:
                logger.save()
        if self.verbose:
            print(f"Test average return: {metrics.get('test/return', float('nan')):.4g}")
        return EvaluationResult(metrics, evaluator.last_episodes)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, epoch: int | str) -> Path:
        if epoch == "last":
            return self.ckpt_dir / "last.ckpt"
        return self.ckpt_dir / f"epoch={int(epoch)}.ckpt"

    def load_checkpoint(self, epoch: int | str = "last", resume_training_state: bool = True) -> None:
        """Resume from the checkpoint saved after ``epoch`` (or "last").

        ``resume_training_state=True`` restores everything at the next ``learn()`` (weights,
        optimizer, LR schedule, counters, exploration, RNG), and an Experiment created without a
        seed takes the seed recorded in the checkpoint. False loads the weights only (fine-tuning
        or evaluation in a new run, which keeps its own seed).
        """
        self.load_checkpoint_from_path(self.checkpoint_path(epoch), resume_training_state)

    def load_checkpoint_from_path(self, path: str | os.PathLike, resume_training_state: bool = True) -> None:
        path = Path(path)
        if not path.exists():
            available = sorted(p.name for p in self.ckpt_dir.glob("*.ckpt")) if self.ckpt_dir.exists() else []
            raise FileNotFoundError(
                f"no checkpoint at {path}. Available in {self.ckpt_dir}: {available or 'none'}"
            )
        if self.agent is None:
            raise RuntimeError("call Experiment.start() before loading a checkpoint")
        if resume_training_state:
            self._ckpt_path = str(path)
        else:
            load_weights_only(self.agent, path)

    def delete_buffer_from_disk(self) -> None:
        """Delete the FIFO part of the replay store (protected data is kept)."""
        if hasattr(self.dataset, "delete"):
            self.dataset.delete()
