"""Offline learning on scripted T-Maze datasets (no env steps during training).

Plain BC (``Agent.fake_filter=True``, online_coeff 0, offline_coeff 1) must copy an expert; on a
half-expert, half-random dataset the advantage filter of ``configs/offline.gin`` must beat plain
BC, which imitates the mixture. Evaluation samples the policy (as the original's default does),
so a policy that copies the random half pays for it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import gin
import pytest
import torch

pytestmark = pytest.mark.learning
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "offline_to_online.py"
CORRIDOR = 4  # 5-step episodes; any non-forward step before the junction loses the episode
EVAL_EPISODES = 128


def load_example() -> ModuleType:
    """The dataset generator and the run builder live in the shipped example; test those."""
    spec = importlib.util.spec_from_file_location("offline_to_online_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its env factory must be picklable by reference
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny nets: thread pools only add contention on the 2 shared cores (10x slower in practice).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def offline_return(
    tmp_path: Path, random_frac: float, bc: bool, batches: int, seed: int = 0
) -> tuple[float, dict]:
    """Train offline on a fresh scripted dataset; return the sampled-policy test return."""
    ex = load_example()
    gin.clear_config()
    tstep, traj = ex.configure_gin(bc=bc, finalize=False)
    name = f"data_{random_frac}"
    offline, stats = ex.build_offline_dataset(tmp_path, name, CORRIDOR, 500, random_frac, seed)
    experiment = ex.build_experiment(
        f"run_bc{bc}_{random_frac}",
        tmp_path,
        offline,
        CORRIDOR,
        tstep,
        traj,
        offline_epochs=2,
        online_epochs=0,
        batches_per_epoch=batches // 2,
        seed=seed,
        parallel_actors=1,
        verbose=False,
        sample_actions_val=True,  # see the module doc
    )
    experiment.start()
    experiment.learn()
    assert experiment.trainer.global_step == batches
    assert not list((tmp_path / name / "buffer" / "fifo").glob("*.npz")), "offline: no env steps stored"
    experiment.parallel_actors = 8
    result = experiment.evaluate_test(
        ex.MakeTMaze(CORRIDOR), timesteps=EVAL_EPISODES * (CORRIDOR + 1), episodes=EVAL_EPISODES
    )
    return float(result.metrics["test/return"]), stats


def test_bc_copies_a_scripted_expert(tmp_path: Path) -> None:
    ret, stats = offline_return(tmp_path, random_frac=0.0, bc=True, batches=200)
    assert stats["expert_return"] == pytest.approx(1.0)
    assert ret >= 0.9 * stats["expert_return"], ret


def test_filtered_bc_beats_bc_on_mixed_data(tmp_path: Path) -> None:
    plain, stats = offline_return(tmp_path, random_frac=0.5, bc=True, batches=800)
    filtered, _ = offline_return(tmp_path, random_frac=0.5, bc=False, batches=800)
    print(f"sampled test return: plain BC {plain:.3f}, filtered BC {filtered:.3f}")
    # The same files for both (the dataset is written once per folder).
    assert stats["random_return"] < 0 < stats["expert_return"]
    assert filtered > plain + 0.15, (plain, filtered)
