"""Envs that raise, and envs that return NaN/inf, misshapen or mistyped values.

Raising in step/reset (sync and async, end to end through a tiny Experiment): the env is rebuilt,
its episode dropped, the restart counted in ``rollout/env_restarts``; an env that keeps failing
stops the run with its own traceback. Bad outputs raise at once, naming the env, key and step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amago_pl.envs import make_parallel_envs
from amago_pl.envs.env_group import EnvOutputError
from tests.faults.support import MakeFaulty, metric_values, store_files, tiny_experiment


@pytest.mark.parametrize(
    ("mode", "fault"), [("sync", "raise_step"), ("async", "raise_step"), ("sync", "raise_reset")]
)
def test_env_crash_is_restarted_dropped_and_counted(tmp_path: Path, mode: str, fault: str) -> None:
    marker = str(tmp_path / "crashed_once")
    # raise_reset fails the 2nd reset: the autoreset after the first episode, inside a step.
    make_env = MakeFaulty(fault, at_step=3 if fault == "raise_step" else 2, marker=marker)
    # No staggered split lengths: every stored file is then one whole 4-step episode.
    exp = tiny_experiment(
        tmp_path, make_env=make_env, env_mode=mode, epochs=1, stagger_traj_file_lengths=False
    )
    exp.start()
    exp.learn()
    assert Path(marker).exists()  # the fault really happened (once)
    assert exp.trainer.global_step == 3  # training went on
    run = tmp_path / "tiny"
    assert metric_values(run, "rollout/env_restarts")[-1] == 1.0
    if fault == "raise_step":
        assert sum(metric_values(run, "rollout/dropped_episodes")) == 1.0
        # The crashed episode (2 steps done) is not stored: every file is a whole episode.
        for f in store_files(run / "buffer"):
            with np.load(f) as data:
                assert len(data["rews"]) == 4


@pytest.mark.parametrize(("mode", "fault"), [("sync", "raise_step"), ("async", "raise_reset")])
def test_env_failing_repeatedly_stops_with_its_traceback(tmp_path: Path, mode: str, fault: str) -> None:
    exp = tiny_experiment(tmp_path, make_env=MakeFaulty(fault, at_step=2), env_mode=mode)
    exp.start()
    with pytest.raises(RuntimeError, match="failed again within its failure window") as err:
        exp.learn()
    assert "FaultyTMaze: simulated crash" in str(err.value) and "Traceback" in str(err.value)
    assert "env 0 ('TMaze')" in str(err.value) or "env 1 ('TMaze')" in str(err.value)
    assert not (tmp_path / "tiny" / "ckpts" / "last.ckpt").exists()


BAD_OUTPUTS = [
    ("nan_obs", r"env 1 \('TMaze'\) returned a non-finite step observation in key 'observation' at step 3"),
    ("inf_reward", r"env 1 \('TMaze'\) returned a non-finite reward .*inf.* at step 3"),
    (
        "bad_shape",
        r"env 1 \('TMaze'\) returned observation key 'observation' with shape \(5,\), but its "
        r"observation space has shape \(3,\) from step \(env step 3",
    ),
    (
        "bad_dtype",
        r"env 1 \('TMaze'\) returned observation key 'observation' with dtype <U1 \(not numeric\) "
        r"from step \(env step 3",
    ),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("fault", "message"), BAD_OUTPUTS, ids=[b[0] for b in BAD_OUTPUTS])
def test_bad_env_outputs_name_env_key_and_step(mode: str, fault: str, message: str) -> None:
    envs = make_parallel_envs(
        [MakeFaulty(), MakeFaulty(fault, at_step=3)], 2, mode=mode, seed=0, envs_per_worker=1
    )
    try:
        envs.reset()
        actions = np.zeros(2, dtype=np.int64)
        envs.step(actions)
        envs.step(actions)
        # Shape/dtype checks run next to the env: in async mode the parent re-raises the worker's
        # EnvOutputError as a RuntimeError carrying its traceback. Finite checks run in the parent.
        with pytest.raises((ValueError, RuntimeError), match=message) as err:
            envs.step(actions)
        if mode == "sync" and fault.startswith("bad_"):
            assert isinstance(err.value, EnvOutputError)
        assert envs.restarts == 0  # a broken contract is reported, never retried
    finally:
        envs.close()


def test_bad_env_output_stops_an_experiment(tmp_path: Path) -> None:
    exp = tiny_experiment(tmp_path, make_env=MakeFaulty("bad_shape", at_step=2))
    exp.start()
    with pytest.raises(EnvOutputError, match=r"observation key 'observation' with shape \(5,\)"):
        exp.learn()


def test_non_finite_check_can_be_disabled() -> None:
    envs = make_parallel_envs(MakeFaulty("nan_obs", at_step=1), 1, mode="sync", check_finite=False)
    envs.reset()
    assert np.isnan(envs.step(np.zeros(1, dtype=np.int64)).final.obs["observation"]).all()
    envs.close()
