"""The three front doors (Experiment, the amago-pl CLI, a plain Trainer.fit script) build the same
run from the same settings: the same callbacks with the same settings, the same Trainer arguments,
and the same optimizer from the same gin keywords. The env-step counter is published once, in
``trainer.callback_metrics``, where the evaluation callback reads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from amago_pl import DiskTrajDataset, Experiment, cli
from amago_pl.callbacks import (
    ConfigLoggingCallback,
    EvalCallback,
    LatestPolicyCallback,
    RolloutCallback,
    SummaryCallback,
)
from amago_pl.callbacks.seeding import RunSeedCallback
from amago_pl.cli_utils import bind, use_config
from amago_pl.modules.agent import Agent
from amago_pl.nets.traj_encoders import TformerTrajEncoder
from amago_pl.nets.tstep_encoders import FFTstepEncoder
from tests.integration.helpers import TINY_GIN, MakeTMaze

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CORRIDOR, HORIZON = 3, 4  # the plain script's max_seq_len is corridor + 1

# The plain script's fixed choices (examples/trainer_fit_script.py), spelled for each door.
EXPERIMENT_KWARGS = dict(
    max_seq_len=HORIZON,
    parallel_actors=2,
    env_mode="sync",
    train_timesteps_per_epoch=2 * HORIZON,
    val_timesteps_per_epoch=HORIZON + 1,
    traj_save_len=HORIZON + 1,
    stagger_traj_file_lengths=False,
    sample_actions_train=False,
    sample_actions_val=False,
    epochs=2,
    train_batches_per_epoch=3,
    batch_size=24,
    dloader_workers=0,
    val_interval=2,
    ckpt_interval=None,
    log_interval=50,
)
YAML = f"""
trainer:
  max_epochs: 2
  check_val_every_n_epoch: 2
  gradient_clip_val: 1.0
  log_every_n_steps: 50
model:
  env: tmaze
  env_kwargs: {{corridor_length: {CORRIDOR}}}
  max_seq_len: {HORIZON}
data:
  dset_root: {{root}}
  dset_name: cli
  batch_size: 24
  batches_per_epoch: 3
  dloader_workers: 0
run:
  run_dir: {{root}}/cli
  parallel_actors: 2
  env_mode: sync
  timesteps_per_epoch: {2 * HORIZON}
  val_timesteps: {HORIZON + 1}
  traj_save_len: {HORIZON + 1}
  stagger_traj_file_lengths: false
  sample_actions_train: false
  sample_actions_val: false
  ckpt_interval: null
"""


@pytest.fixture(autouse=True)
def _tiny_nets() -> None:
    use_config(dict(TINY_GIN), finalize=False)


def experiment_door(root: Path, **overrides: Any) -> Experiment:
    kwargs: dict[str, Any] = dict(
        run_name="exp",
        ckpt_base_dir=str(root),
        dataset=DiskTrajDataset(dset_root=str(root), dset_name="exp", dset_max_size=5000),
        tstep_encoder_type=FFTstepEncoder,
        traj_encoder_type=TformerTrajEncoder,
        agent_type=Agent,
        make_train_env=MakeTMaze(CORRIDOR),
        make_val_env=MakeTMaze(CORRIDOR),
        **EXPERIMENT_KWARGS,
    )
    kwargs.update(overrides)
    exp = Experiment(**kwargs)
    exp.start()
    return exp


def cli_door(root: Path, *args: str) -> cli.AmagoCLI:
    path = root / "run.yaml"
    path.write_text(YAML.replace("{root}", str(root)))
    # What `amago-pl fit --config run.yaml` builds, stopped before fit.
    return cli.AmagoCLI(
        model_class=cli.amago_agent,
        datamodule_class=cli.amago_dataset,
        trainer_defaults=cli.TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        args=["--config", str(path), *args],
        run=False,
    )


def script_door(root: Path) -> tuple[pl.LightningModule, pl.Trainer]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import trainer_fit_script
    finally:
        sys.path.remove(str(EXAMPLES))
    agent, _, trainer = trainer_fit_script.build(
        root / "script", corridor=CORRIDOR, epochs=2, batches=3, actors=2, workers=0
    )
    return agent, trainer


def run_dir_of(trainer: pl.Trainer) -> Path:
    return Path(trainer.default_root_dir)


def callback_settings(trainer: pl.Trainer) -> list[tuple[str, dict[str, Any]]]:
    """(type, key settings) of the run's callbacks in order, paths relative to the run folder."""
    run_dir = run_dir_of(trainer)
    out = []
    for cb in trainer.callbacks:
        if isinstance(cb, LatestPolicyCallback):
            out.append(("LatestPolicy", dict(path=cb.path.relative_to(run_dir), save=cb.save, load=cb.load)))
        elif isinstance(cb, RolloutCallback):
            keys = ("parallel_actors", "env_mode", "timesteps_per_epoch", "max_seq_len", "traj_save_len",
                    "stagger", "start_collecting_at_epoch", "exploration_wrapper_type", "sample_actions",
                    "compressed", "force_reset_every", "mp_context", "verbose")  # fmt: skip
            out.append(("Rollout", {k: getattr(cb, k) for k in keys}))
            rollout_seed = cb.seed
        elif isinstance(cb, EvalCallback):
            keys = ("parallel_actors", "timesteps", "env_mode", "sample_actions", "stage", "episodes",
                    "mp_context", "verbose")  # fmt: skip
            settings = {k: getattr(cb, k) for k in keys}
            out.append(("Eval", {**settings, "seed_offset": cb.seed - rollout_seed}))
        elif isinstance(cb, ModelCheckpoint):
            keys = ("filename", "save_top_k", "save_last", "auto_insert_metric_name", "_every_n_epochs",
                    "_save_on_train_epoch_end", "_enable_version_counter")  # fmt: skip
            where = Path(cb.dirpath).relative_to(run_dir.resolve())
            out.append(("ModelCheckpoint", {"dirpath": where, **{k: getattr(cb, k) for k in keys}}))
        elif isinstance(cb, (ConfigLoggingCallback, RunSeedCallback)):
            out.append((type(cb).__name__, dict(run_dir=Path(cb.run_dir) == run_dir)))
        elif isinstance(cb, SummaryCallback):
            out.append(("Summary", dict(run_dir=cb.run_dir == run_dir, verbose=cb.verbose)))
    return out


def trainer_settings(trainer: pl.Trainer) -> dict[str, Any]:
    return dict(
        max_epochs=trainer.max_epochs,
        precision=trainer.precision,
        gradient_clip_val=trainer.gradient_clip_val,
        accumulate_grad_batches=trainer.accumulate_grad_batches,
        check_val_every_n_epoch=trainer.check_val_every_n_epoch,
        limit_val_batches=trainer.limit_val_batches,
        num_sanity_val_steps=trainer.num_sanity_val_steps,
        log_every_n_steps=trainer.log_every_n_steps,
        use_distributed_sampler=trainer._accelerator_connector.use_distributed_sampler,
        loggers=[type(logger).__name__ for logger in trainer.loggers],
        log_dirs=[Path(logger.log_dir).relative_to(run_dir_of(trainer)) for logger in trainer.loggers],
        checkpoint_io=type(trainer.strategy.checkpoint_io).__name__,
        progress_bar=trainer.progress_bar_callback is not None,
        world_size=trainer.world_size,
    )


def test_same_settings_same_callbacks_and_trainer(tmp_path: Path) -> None:
    exp = experiment_door(tmp_path)
    amago_cli = cli_door(tmp_path)
    _, script_trainer = script_door(tmp_path)
    trainers = {"Experiment": exp.trainer, "amago-pl": amago_cli.trainer, "script": script_trainer}

    reference = callback_settings(exp.trainer)
    assert [name for name, _ in reference] == [
        "LatestPolicy", "Rollout", "Eval", "ConfigLoggingCallback", "RunSeedCallback", "Summary",
        "ModelCheckpoint",
    ]  # fmt: skip
    for door, trainer in trainers.items():
        assert callback_settings(trainer) == reference, door
        assert trainer_settings(trainer) == trainer_settings(exp.trainer), door
    checkpoint = dict(reference)["ModelCheckpoint"]
    assert checkpoint["_enable_version_counter"] is False  # a redone epoch overwrites epoch=N.ckpt


GIN_OPTIMIZER = {"Agent.learning_rate": 2e-3, "Agent.lr_warmup_steps": 7, "Agent.l2_coeff": 0.05}


def optimizer_of(agent: pl.LightningModule) -> tuple[float, float, list[float]]:
    """(base learning rate, weight decay, LR factor at optimizer steps 0, 3, 7 and 100)."""
    config = agent.configure_optimizers()
    group = config["optimizer"].param_groups[0]
    schedule = config["lr_scheduler"]["scheduler"].lr_lambdas[0]
    return group["initial_lr"], group["weight_decay"], [schedule(k) for k in (0, 3, 7, 100)]


def test_gin_optimizer_keywords_mean_the_same_behind_every_door(tmp_path: Path) -> None:
    for name, value in GIN_OPTIMIZER.items():
        bind(name, value)
    expected = (2e-3, 0.05, [0.0, 3 / 7, 1.0, 1.0])  # linear warmup over 7 steps, then constant
    assert optimizer_of(experiment_door(tmp_path).agent) == pytest.approx(expected)
    assert optimizer_of(cli_door(tmp_path).model) == pytest.approx(expected)
    assert optimizer_of(script_door(tmp_path)[0]) == pytest.approx(expected)


def test_front_door_learning_rate_is_the_same_setting(tmp_path: Path) -> None:
    # Given only to the front door: used as given.
    assert optimizer_of(experiment_door(tmp_path / "a", learning_rate=5e-4).agent)[0] == pytest.approx(5e-4)
    lr = optimizer_of(cli_door(tmp_path / "a", "--model.learning_rate", "5e-4").model)[0]
    assert lr == pytest.approx(5e-4)
    # Given both ways with one value: fine.
    bind("Agent.learning_rate", 5e-4)
    assert optimizer_of(experiment_door(tmp_path / "b", learning_rate=5e-4).agent)[0] == pytest.approx(5e-4)


def test_two_different_learning_rates_are_an_error_naming_both(tmp_path: Path) -> None:
    from amago_pl.run.build import build_run
    from amago_pl.run.settings import Settings

    bind("Agent.learning_rate", 2e-3)
    with pytest.raises(ValueError) as err:
        experiment_door(tmp_path, learning_rate=3e-4)
    assert "Experiment learning_rate=0.0003" in str(err.value) and "Agent.learning_rate = 0.002" in str(
        err.value
    )

    with pytest.raises(SystemExit) as exit_:
        cli_door(tmp_path, "--model.learning_rate", "3e-4")
    message = str(exit_.value.code)
    assert "model.learning_rate=0.0003" in message and "Agent.learning_rate = 0.002" in message

    settings = Settings(
        run_dir=tmp_path / "plain",
        make_train_env=MakeTMaze(CORRIDOR),
        learning_rate=3e-4,
        **EXPERIMENT_KWARGS,
    )
    dataset = DiskTrajDataset(dset_root=str(tmp_path), dset_name="plain", dset_max_size=100)
    with pytest.raises(ValueError, match=r"learning_rate=0\.0003.*Agent\.learning_rate = 0\.002"):
        build_run(settings, dataset, Agent, FFTstepEncoder, TformerTrajEncoder)


def test_cli_yaml_keys_and_experiment_keywords_map_onto_one_settings(tmp_path: Path) -> None:
    from_cli = cli_door(tmp_path).settings()
    from_experiment = experiment_door(tmp_path).settings()
    for name in EXPERIMENT_KWARGS:
        assert getattr(from_cli, name) == getattr(from_experiment, name), name


def test_env_step_counter_is_published_in_callback_metrics(tmp_path: Path) -> None:
    from amago_pl.callbacks.rollout import total_frames

    exp = experiment_door(tmp_path, val_interval=1, verbose=False)
    exp.learn()
    rollout = next(cb for cb in exp.trainer.callbacks if isinstance(cb, RolloutCallback))
    evaluation = next(cb for cb in exp.trainer.callbacks if isinstance(cb, EvalCallback))
    assert rollout.total_frames == 2 * 2 * 2 * HORIZON  # epochs x actors x steps per actor
    assert total_frames(exp.trainer) == rollout.total_frames
    # Each evaluation runs after that epoch's collection and reads the count published by it.
    assert [row["total_frames"] for row in evaluation.history] == [2 * 2 * HORIZON, 2 * 2 * 2 * HORIZON]


def test_rollout_callback_takes_the_older_keyword() -> None:
    cb = RolloutCallback(MakeTMaze(), timesteps_per_epoch=20, max_seq_len=4, traj_save_len=5)
    assert cb.train_timesteps_per_epoch == cb.timesteps_per_epoch == 20
    assert RolloutCallback(MakeTMaze(), max_seq_len=4).train_timesteps_per_epoch == 1000
    with pytest.raises(ValueError, match="disagree"):
        RolloutCallback(MakeTMaze(), train_timesteps_per_epoch=10, timesteps_per_epoch=20, max_seq_len=4)
