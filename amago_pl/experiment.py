"""Experiment: the original library's facade, rebuilt as wiring around a Lightning ``Trainer``.

It holds no RL logic. ``start()`` builds the Agent (from the env's spaces and the chosen classes),
the callbacks (collection, evaluation, checkpoints, config logging, summary), the loggers and the
Trainer; ``learn()`` calls ``Trainer.fit``. The same run can be written as a plain script: see
``examples/trainer_fit_script.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gin
import lightning.pytorch as pl

from amago_pl.callbacks import (
    EvalCallback,
)
from amago_pl.callbacks.checkpoint_io import with_atomic_checkpoints
from amago_pl.callbacks.interact import EpisodeStat
from amago_pl.callbacks.rollout import log_to_loggers
from amago_pl.callbacks.seeding import draw_seed
from amago_pl.envs import EpsilonGreedy
from amago_pl.run.build import (
    build_callbacks,
    build_loggers,
    check_required_bindings,
    describe_run,
    precision_from_mixed,
    probe_spaces,
    validate_experiment,
)


@dataclass
class EvaluationResult:
    metrics: dict[str, float]
    episodes: list[EpisodeStat]


@gin.configurable
@dataclass
class Experiment:
    """The training run: envs, replay data, agent and schedule, wired into a Lightning ``Trainer``.

    Keyword names and defaults follow the original ``amago.Experiment`` (inventory table 2.1).
    The fields after ``mixed_precision`` are amago_pl additions for Lightning (devices, seed,
    loggers, extra Trainer arguments). Invalid settings raise a ``ValueError`` at construction.

    This class is gin-configurable: unlike the other configurables you construct it yourself, and
    gin supplies any keyword you do not pass (``Experiment.batch_size = 32``). Typical use:
    ``exp = Experiment(...)``, then ``exp.start()``, ``exp.learn()`` and
    ``exp.evaluate_test(make_env, timesteps)``. The sections below group the fields; they are all
    keyword arguments of the constructor.

    Required (no default):

    Args:
        run_name: name of the run; its files go to ``{ckpt_base_dir}/{run_name}/`` (checkpoints in
            ``ckpts/``, CSV logs in ``logs/``), and it names the wandb run.
        ckpt_base_dir: folder that holds the run folders.
        max_seq_len: context length in timesteps: the length of training sequences and the number
            of past steps the policy remembers during rollouts (the TrajEncoder's
            ``max_seq_len``). A positive integer.
        dataset: the replay data, an ``RLDataset`` instance (``DiskTrajDataset``,
            ``MixtureOfDatasets``, ...). ``start()`` configures it in place with this run's batch
            size, sequence length and loader settings; it also serves as the Lightning datamodule.
        tstep_encoder_type: the TstepEncoder class (e.g. ``FFTstepEncoder``), built by the Agent
            from the env spaces.
        traj_encoder_type: the TrajEncoder class (e.g. ``TformerTrajEncoder``), built by the Agent.
        agent_type: the Agent class (``Agent`` or ``MultiTaskAgent``), built by ``start()``.
        val_timesteps_per_epoch: env steps per parallel env in each validation run; 0 disables
            validation. Only episodes that finish within this budget are counted.
        make_train_env: a callable returning an ``AMAGOEnv``, or a list of ``parallel_actors``
            such callables (one per env), used for data collection.
        make_val_env: like ``make_train_env``, for validation (no exploration, no data saved).

    Envs:

    Args:
        parallel_actors: number of envs stepped together in each process (also the batch size of
            the rollout memory). Defaults to 12.
        env_mode: "async" (each env in a worker process), "sync" (all envs in this process) or
            "already_vectorized" (the factory returns one env that is already batched).
            Defaults to "async".
        async_env_mp_context: multiprocessing start method of the "async" workers ("fork",
            "spawn", "forkserver"); None picks "fork" on Linux and "spawn" elsewhere.
            Defaults to None.
        exploration_wrapper_type: exploration class applied to the training actions, built as
            ``cls(action_space, num_envs)``; None disables exploration. Validation and test never
            explore. Defaults to ``EpsilonGreedy``.
        sample_actions_train: sample actions from the policy during collection (False takes the
            most likely / mean action). Defaults to True.
        sample_actions_val: the same for validation and test. Defaults to True.
        force_reset_train_envs_every: every this many epochs, reset all training envs and clear
            the policy's memory (for vectorised envs that never reset themselves); None never
            forces a reset. Defaults to None.

    Logging:

    Args:
        log_to_wandb: also log to Weights & Biases (offline when ``WANDB_MODE`` is "offline" or
            "disabled"). Defaults to False.
        wandb_project: wandb project; None uses "amago_pl". Defaults to the ``AMAGO_WANDB_PROJECT``
            environment variable, read when the Experiment is created.
        wandb_entity: wandb entity (user or team). Defaults to the ``AMAGO_WANDB_ENTITY``
            environment variable.
        wandb_group_name: wandb group of the run. Defaults to None.
        verbose: show progress bars, the model summary and the start-up description.
            Defaults to True.
        log_interval: log the training metrics (losses, diagnostics, gradient norms) every this
            many training steps (Lightning's ``log_every_n_steps``). Defaults to 300.

    Replay:

    Args:
        traj_save_len: a trajectory is written to a file when its episode ends or after this many
            steps, whichever comes first (long episodes become several files). Must be at least
            ``max_seq_len``. Defaults to 10**10 (whole episodes).
        has_dset_edit_rights: whether this process may delete old FIFO files from the replay
            buffer; False for collector-only processes that share a buffer. Defaults to True.
        stagger_traj_file_lengths: draw each file's split length at random in
            ``[traj_save_len - max_seq_len, traj_save_len + max_seq_len]`` so that file
            boundaries do not line up across envs (only when ``max_seq_len < traj_save_len``).
            Defaults to True.
        save_trajs_as: file format of new trajectories: "npz" or "npz-compressed".
            Defaults to "npz".
        padded_sampling: where training windows may start in a trajectory longer than
            ``max_seq_len``: "none" (windows always full length), "left" (may start before the
            trajectory's first step, giving a shorter window that begins at step 0), "right"
            (may run past its end, giving a shorter window) or "both". Shorter trajectories are
            always used whole. Defaults to "none".
        dloader_workers: DataLoader worker processes that load and cut trajectories; 0 loads in
            the training process. Defaults to 6.

    Schedule:

    Args:
        epochs: number of epochs; each epoch collects data, then trains, then validates and
            checkpoints when due. Defaults to 1000.
        start_learning_at_epoch: epochs before this one only collect (no gradient steps).
            Defaults to 0.
        start_collecting_at_epoch: epochs before this one do not collect (e.g. offline
            pretraining before online fine-tuning). Defaults to 0.
        train_timesteps_per_epoch: env steps per parallel env collected each epoch; 0 disables
            collection. Defaults to 1000.
        train_batches_per_epoch: training batches per epoch in each process; 0 makes the run a
            pure collector (no training, no checkpoints). Defaults to 1000.
        val_interval: validate every this many epochs; None (or 0) disables validation.
            Defaults to 20.
        ckpt_interval: keep a full checkpoint ``ckpts/epoch={e}.ckpt`` every this many epochs;
            ``ckpts/last.ckpt`` is always kept. None keeps only ``last.ckpt``. Defaults to 50.
        always_save_latest: after every epoch, write the current weights to
            ``ckpts/latest/policy.pt`` for collector processes. Defaults to True.
        always_load_latest: load ``ckpts/latest/policy.pt`` at the start of every epoch (for
            collector processes that follow a separate learner). Defaults to False.

    Optimization:

    Args:
        batch_size: sequences per batch in each process (per device). Defaults to 24.
        batches_per_update: batches whose gradients are accumulated per optimizer step.
            Defaults to 1.
        learning_rate: AdamW learning rate, passed to the Agent. Defaults to 1e-4.
        lr_warmup_steps: optimizer steps of linear learning-rate warmup, passed to the Agent.
            Defaults to 500.
        grad_clip: gradients are clipped to this global norm. Defaults to 1.0.
        l2_coeff: AdamW weight decay, passed to the Agent. Defaults to 1e-3.
        mixed_precision: "no" (fp32), "fp16" or "bf16" (mixed precision); Lightning precision
            strings such as "bf16-mixed" are accepted too. Defaults to "no".

    amago_pl additions:

    Args:
        seed: global seed (``seed_everything``) and base of the env seeds (per rank: see
            ``amago_pl.callbacks.seeding``). None draws a fresh one, so repeated runs are
            independent as in the original; it is written to config.txt and the checkpoints, and
            a resume (``load_checkpoint``) continues with it. Defaults to None.
        accelerator: Lightning accelerator ("auto", "cpu", "gpu", ...). Defaults to "auto".
        devices: Lightning ``devices`` (a count, "auto", or a list of device ids). Defaults to 1.
        strategy: Lightning strategy ("auto", "ddp", ...). Defaults to "auto".
        num_nodes: number of machines for multi-node training. Defaults to 1.
        loggers: Lightning loggers to use, any of "csv", "tensorboard" and "wandb".
            Defaults to ("csv",).
        trainer_kwargs: extra keyword arguments for ``lightning.pytorch.Trainer``; they override
            the ones the Experiment computes. Defaults to None.
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
    learning_rate: float = 1e-4
    lr_warmup_steps: int = 500
    grad_clip: float = 1.0
    l2_coeff: float = 1e-3
    mixed_precision: str = "no"
    # amago_pl additions
    seed: int | None = None
    accelerator: str = "auto"
    devices: int | str | list[int] = 1
    strategy: str = "auto"
    num_nodes: int = 1
    loggers: Sequence[str] = ("csv",)
    trainer_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Drawn here, once, so that start(), the callbacks and evaluate_test all see one seed.
        self.seed_drawn = self.seed is None
        if self.seed is None:
            self.seed = draw_seed()
        validate_experiment(self)
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

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Build the agent, callbacks, loggers and Trainer. Call after gin is configured."""
        # Before anything is built: a gin.REQUIRED keyword nobody bound fails here, naming it.
        check_required_bindings(
            [self.agent_type, self.tstep_encoder_type, self.traj_encoder_type, self.exploration_wrapper_type]
        )
        pl.seed_everything(self.seed, workers=True, verbose=False)
        obs_space, rl2_space, action_space = probe_spaces(
            self.make_train_env, self.env_mode, self.parallel_actors
        )
        self.dataset.configure(
            batch_size=self.batch_size,
            max_seq_len=self.max_seq_len,
            train_batches_per_epoch=self.train_batches_per_epoch,
            padded_sampling=self.padded_sampling,
            dloader_workers=self.dloader_workers,
            has_edit_rights=self.has_dset_edit_rights,
        )
        if hasattr(self.dataset, "configure_schedule"):
            self.dataset.configure_schedule(start_learning_at_epoch=self.start_learning_at_epoch)
        # Structural arguments only; the optimizer settings are the Experiment's (as in the original).
        self.agent = self.agent_type(
            obs_space,
            rl2_space,
            action_space,
            self.max_seq_len,
            self.tstep_encoder_type,
            self.traj_encoder_type,
            learning_rate=self.learning_rate,
            lr_warmup_steps=self.lr_warmup_steps,
            l2_coeff=self.l2_coeff,
        )
        self.trainer = pl.Trainer(**self.trainer_arguments())
        if self.verbose:
            print(describe_run(self, obs_space, action_space))

    def build_callbacks(self) -> list[pl.Callback]:
        """Collection, evaluation, checkpoints, config logging and the summary (see experiment_utils)."""
        return build_callbacks(self)

    @property
    def val_enabled(self) -> bool:
        return bool(self.val_interval) and self.val_timesteps_per_epoch > 0

    def trainer_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = dict(
            max_epochs=self.epochs,
            accelerator=self.accelerator,
            devices=self.devices,
            strategy=self.strategy,
            num_nodes=self.num_nodes,
            precision=precision_from_mixed(self.mixed_precision),
            gradient_clip_val=self.grad_clip,
            accumulate_grad_batches=self.batches_per_update,
            check_val_every_n_epoch=self.val_interval if self.val_enabled else 1,
            limit_val_batches=1 if self.val_enabled else 0,
            num_sanity_val_steps=0,
            callbacks=self.build_callbacks(),
            logger=build_loggers(self),
            default_root_dir=str(self.run_dir),
            log_every_n_steps=self.log_interval,
            enable_progress_bar=self.verbose,
            enable_model_summary=self.verbose,
            use_distributed_sampler=False,  # each rank samples its own batches (see the dataset)
        )
        args.update(self.trainer_kwargs or {})
        # Checkpoints are written atomically, and a full disk names the path and size.
        args["plugins"] = with_atomic_checkpoints(args.get("plugins"))
        return args

    def learn(self) -> None:
        """Train for ``epochs`` epochs (collect -> train -> validate -> checkpoint)."""
        if self.trainer is None:
            raise RuntimeError("call Experiment.start() before learn()")
        # Checkpoints hold gym spaces and encoder classes in the hyperparameters, which torch's
        # weights-only unpickler refuses; they are our own files, so load them fully.
        self.trainer.fit(self.agent, datamodule=self.dataset, ckpt_path=self._ckpt_path, weights_only=False)
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
            log_to_loggers(self.trainer, metrics)
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
        from amago_pl.run.build import load_weights_only

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
