"""Evaluation metrics along the paths a Lightning user takes.

* ``amago-pl fit`` -> ``validate`` -> ``test`` in fresh processes, on a checkpoint file and on
  ``last``, for the Transformer and the GRU: the metrics table is printed.
* ``ModelCheckpoint`` and ``EarlyStopping(stopping_threshold=...)`` monitoring ``val/return``.
* The run files a user opens afterwards: the offline wandb run (``total_frames`` as the x-axis of
  ``rollout/``, ``val/``, ``test/``; typed gin values; config.txt attached as a file) and the
  TensorBoard events (the ``.../by_env_step`` series against env steps).
* In process: ``Trainer.validate``/``test`` return the metrics for the ff, gru and transformer
  (vanilla and flex attention) models, with ``inference_mode`` on and off.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import lightning.pytorch as pl
import pytest

from tests.integration.cli_support import load_ckpt, rollout_state, run_cli, write_configs

pytestmark = pytest.mark.integration

# Lightning callbacks and loggers a user adds to the CLI's YAML (LightningCLI class_path entries).
USER_TRAINER = """
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{dirpath: {root}/best, filename: best, monitor: val/return, mode: max, save_top_k: 1}}
    - class_path: lightning.pytorch.callbacks.EarlyStopping
      init_args: {{monitor: val/return, mode: max, stopping_threshold: -0.5, patience: 100}}
  logger:
    - class_path: lightning.pytorch.loggers.TensorBoardLogger
      init_args: {{save_dir: {root}, name: tb}}
    - class_path: lightning.pytorch.loggers.WandbLogger
      init_args: {{save_dir: {root}, project: amago_pl_tests, offline: true}}
"""
GRU_GIN = "GRUTrajEncoder.d_hidden = 32\nGRUTrajEncoder.d_output = 32\n"


def _configs(root: Path, arch: str, epochs: int) -> tuple[Path, Path]:
    yaml_path, gin_path = write_configs(root, epochs=epochs, batches=2)
    text = yaml_path.read_text().replace("  max_seq_len: 4\n", f"  max_seq_len: 4\n  traj_encoder: {arch}\n")
    if arch == "transformer":
        text = text.replace("trainer:\n", "trainer:" + USER_TRAINER.format(root=root), 1)
    yaml_path.write_text(text)
    gin_path.write_text(gin_path.read_text() + GRU_GIN)
    return yaml_path, gin_path


def _printed_table(proc, stage: str) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    title = "Validate metric" if stage == "val" else "Test metric"
    assert title in out, out[-2000:]  # Lightning's results table
    return out


@pytest.mark.parametrize("arch", ["transformer", "rnn"])
def test_cli_fit_validate_test_on_file_and_last(tmp_path, arch):
    epochs = 3 if arch == "transformer" else 1
    yaml_path, gin_path = _configs(tmp_path, arch, epochs)
    common = ("--config", str(yaml_path), "--gin", str(gin_path))
    fit = run_cli("fit", *common)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpts = tmp_path / "cli" / "ckpts"
    last = load_ckpt(ckpts / "last.ckpt")
    if arch == "transformer":
        # EarlyStopping(stopping_threshold=-0.5) on val/return (>= 0 on T-Maze) ends the run after
        # the first validation, and ModelCheckpoint(monitor="val/return") kept that epoch.
        assert last["epoch"] == 0, "EarlyStopping on val/return did not stop the run"
        best = load_ckpt(tmp_path / "best" / "best.ckpt")
        state = next(
            v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint") and "val/" in k
        )
        assert state["monitor"] == "val/return" and state["best_model_score"] is not None
        _check_wandb_run(tmp_path, (tmp_path / "cli" / "config.txt").read_text())
        _check_tensorboard(tmp_path / "tb", rollout_state(last)["total_frames"])

    frames = rollout_state(last)["total_frames"]
    runs = [("validate", "last"), ("test", str(ckpts / "epoch=0.ckpt"))]
    if arch == "transformer":
        runs += [("validate", str(ckpts / "epoch=0.ckpt")), ("test", "last")]
    for command, ckpt in runs:
        proc = run_cli(command, *common, "--ckpt_path", ckpt, "--trainer.logger", "false")
        stage = "val" if command == "validate" else "test"
        out = _printed_table(proc, stage)
        assert f"{stage}/return" in out and f"{stage}/episodes" in out, out[-2000:]
        # The row's env-step count is the checkpoint's (restored into RolloutCallback).
        assert f"total_frames │ {float(frames)}" in " ".join(out.split()), out[-2000:]


# ----------------------------------------------------------------------------------- wandb
def _wandb_records(path: Path):
    """Records of a wandb run file (``run-*.wandb``, written offline).

    The file is a 7-byte header then 32 KiB blocks of chunks, each with a 7-byte header (crc32,
    length, type: 1 full, 2 first, 3 middle, 4 last), as in LevelDB's log format
    (github.com/google/leveldb doc/log_format.md); a record is one serialised ``Record`` protobuf.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):
            pending = chunk
        elif kind in (3, 4):
            pending += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def _check_wandb_run(root: Path, config_txt: str) -> None:
    (run_file,) = (root / "wandb").glob("offline-run-*/run-*.wandb")
    metrics, history, files, config = {}, [], set(), {}
    for record in _wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "metric":
            m = record.metric
            metrics[m.name or m.glob_name] = m.step_metric
        elif kind == "history":
            history.append(
                {
                    item.nested_key[0] if item.nested_key else item.key: item.value_json
                    for item in record.history.item
                }
            )
        elif kind == "files":
            files |= {f.path for f in record.files.files}
        elif kind == "config":
            config.update({item.key: item.value_json for item in record.config.update})
    # total_frames is the x-axis of the three families, and of each key by name (a named metric
    # outranks Lightning's own "*" glob).
    for glob in ("rollout/*", "val/*", "test/*"):
        assert metrics.get(glob) == "total_frames", metrics
    assert metrics.get("val/return") == "total_frames" and metrics.get("rollout/return") == "total_frames"
    val_rows = [row for row in history if "val/return" in row]
    assert val_rows and all("total_frames" in row for row in val_rows), history
    assert any("rollout/return" in row and "total_frames" in row for row in history), history
    # config.txt is a file of the run (linked into files/, uploaded by `wandb sync`).
    assert "config.txt" in files
    (attached,) = (root / "wandb").glob("offline-run-*/files/config.txt")
    assert attached.read_text() == config_txt
    # gin values arrive typed: numbers and booleans, not their text.
    values = {k: json.loads(v) for k, v in config.items() if k.startswith("gin/")}
    assert values, sorted(config)
    typed = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in values.items()}
    assert typed["gin/TformerTrajEncoder.n_heads"] == 2
    assert typed["gin/Agent.gamma"] == pytest.approx(0.999)
    assert typed["gin/Agent.use_multigamma"] is True


# ----------------------------------------------------------------------------- TensorBoard
def _check_tensorboard(tb_dir: Path, frames: int) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list] = {}
    for events in tb_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(acc.Scalars(tag))
    # The same series twice: against gradient steps (Lightning's step) and against env steps.
    for tag in ("val/return", "rollout/return"):
        assert tag in scalars, sorted(scalars)
        by_env = scalars.get(f"{tag}/by_env_step")
        assert by_env, sorted(scalars)
        assert [e.step for e in by_env] == [frames], (tag, [e.step for e in by_env])
        assert by_env[-1].value == pytest.approx(scalars[tag][-1].value)


# ------------------------------------------------------------------------- in process, modes
@pytest.mark.parametrize(
    "arch,attention",
    [("ff", None), ("rnn", None), ("transformer", "VanillaAttention"), ("transformer", "FlexAttention")],
)
def test_validate_and_test_return_metrics_in_and_out_of_inference_mode(tmp_path, arch, attention):
    from amago_pl import DiskTrajDataset
    from amago_pl.callbacks import EvalCallback
    from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
    from amago_pl.modules.agent import Agent
    from amago_pl.nets import attention as attention_module
    from amago_pl.run.build import probe_spaces
    from tests.integration.helpers import TINY_GIN, MakeTMaze

    config = dict(TINY_GIN)
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, arch)
    if attention is not None:
        config["TformerTrajEncoder.attention_type"] = getattr(attention_module, attention)
    use_config(config, finalize=False)
    agent = Agent(*probe_spaces(MakeTMaze(), "sync", 1), 4, tstep, traj)
    dataset = DiskTrajDataset(dset_root=str(tmp_path), dset_name="modes", dset_max_size=10)
    for inference_mode in (True, False):
        for stage in ("val", "test"):
            evaluation = EvalCallback(
                MakeTMaze(), parallel_actors=2, timesteps=9, env_mode="sync", stage=stage, verbose=False
            )
            trainer = pl.Trainer(
                callbacks=[evaluation],
                inference_mode=inference_mode,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                limit_val_batches=1,
                limit_test_batches=1,
                accelerator="cpu",
            )
            run = trainer.validate if stage == "val" else trainer.test
            (results,) = run(agent, datamodule=dataset, verbose=False)
            episodes = evaluation.last_episodes
            assert len(episodes) == 4  # two envs, two 4-step episodes each within 9 steps
            mean = sum(e.total_return for e in episodes) / len(episodes)
            assert results[f"{stage}/return"] == pytest.approx(mean)
            assert results[f"{stage}/episodes"] == 4.0
            assert float(trainer.callback_metrics[f"{stage}/return"]) == pytest.approx(mean)
