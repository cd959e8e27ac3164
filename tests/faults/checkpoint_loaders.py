"""Every way amago_pl loads a checkpoint, as one list (``LOADERS``): the refusal tests run each
crafted file through each of them. A new loader (e.g. a policy loader) is one more entry here.

Run as ``python checkpoint_loaders.py GOOD_CKPT CRAFTED_DIR OUT.json``: every loader is tried on
every ``CRAFTED_DIR/*.ckpt`` in this one process, and for each pair the exception (type and
message) or "loaded" is written to OUT.json. The marker files the payloads would create are
checked by the test.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import gin  # noqa: E402

from tests.faults.resume_script import TINY  # noqa: E402
from tests.faults.resume_support import MakeScripted  # noqa: E402


def _experiment(root: Path):
    from amago_pl import DiskTrajDataset, Experiment
    from amago_pl.modules.agent import Agent
    from amago_pl.nets.traj_encoders import GRUTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder

    exp = Experiment(
        run_name="loader", ckpt_base_dir=str(root), max_seq_len=4,
        dataset=DiskTrajDataset(dset_root=str(root), dset_name="store", dset_max_size=100),
        tstep_encoder_type=FFTstepEncoder, traj_encoder_type=GRUTrajEncoder, agent_type=Agent,
        make_train_env=MakeScripted(), make_val_env=MakeScripted(), val_timesteps_per_epoch=0,
        parallel_actors=1, env_mode="sync", epochs=2, train_timesteps_per_epoch=4,
        train_batches_per_epoch=1, batch_size=2, val_interval=None, verbose=False, traj_save_len=6, seed=1,
    )  # fmt: skip
    exp.start()
    return exp


def loaders(good: Path, work: Path) -> dict[str, Callable[[Path], object]]:
    """name -> a function that loads the checkpoint at its argument."""
    import amago_pl.envs.builtin.minigrid_envs  # noqa: F401 - registered, as in the CLI's process
    from amago_pl.modules import checkpoint as ckpt
    from amago_pl.modules.agent import Agent
    from amago_pl.run.build import load_weights_only
    from amago_pl.run.convert import convert_checkpoint

    agent = Agent.load_from_checkpoint(good)  # a real agent to fine-tune

    def resume(path: Path) -> None:
        exp = _experiment(work / f"resume_{path.stem}")
        exp.load_checkpoint_from_path(path)
        exp.learn()

    def fine_tune(path: Path) -> None:
        exp = _experiment(work / f"tune_{path.stem}")
        exp.load_checkpoint_from_path(path, resume_training_state=False)

    def trainer_fit_unsafe_flag(path: Path) -> None:
        exp = _experiment(work / f"fit_{path.stem}")
        exp.trainer.fit(exp.agent, datamodule=exp.dataset, ckpt_path=str(path), weights_only=False)

    out: dict[str, Callable[[Path], object]] = {
        "read_checkpoint_safely": ckpt.read_checkpoint_safely,
        "parse_stored_gin": ckpt.parse_stored_gin,
        "Agent.load_from_checkpoint": Agent.load_from_checkpoint,
        "Agent.load_from_checkpoint(weights_only=True)": lambda p: Agent.load_from_checkpoint(
            p, weights_only=True
        ),
        "Agent.load_from_checkpoint(weights_only=False)": lambda p: Agent.load_from_checkpoint(
            p, weights_only=False
        ),
        "load_weights_only": lambda p: load_weights_only(agent, p),
        "Experiment.load_checkpoint(resume_training_state=False)": fine_tune,
        "Experiment.load_checkpoint + learn (resume)": resume,
        "Trainer.fit(ckpt_path, weights_only=False)": trainer_fit_unsafe_flag,
        "convert-checkpoint": lambda p: convert_checkpoint(p, work / f"converted_{p.stem}.ckpt"),
    }
    try:  # the policy loader (issue 23), once it exists
        from amago_pl.policy import Policy

        if hasattr(Policy, "from_checkpoint"):
            out["Policy.from_checkpoint"] = Policy.from_checkpoint
    except ImportError:
        pass
    return out


def main(good: str, crafted_dir: str, out_json: str) -> None:
    work = Path(out_json).parent / "loader_work"
    results: dict[str, dict[str, str]] = {}
    table = loaders(Path(good), work)  # imports the agent and its encoders
    gin.parse_config(TINY)
    for path in sorted(Path(crafted_dir).glob("*.ckpt")):
        for name, load in table.items():
            try:
                load(path)
                outcome = "loaded"
            except BaseException as err:  # noqa: BLE001 - recorded for the test to judge
                outcome = f"{type(err).__name__}: {err}"
                if not isinstance(err, Exception):
                    outcome += "\n" + traceback.format_exc()
            results.setdefault(path.stem, {})[name] = outcome
    Path(out_json).write_text(json.dumps({"loaders": list(table), "results": results}, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
