"""Soak test: a long CPU run of the ``amago-pl`` CLI, SIGKILLed at random moments and resumed.

The run trains on CartPole (continuous observations, so two identical stored files can only be a
duplicated write) with a small FIFO buffer, so eviction happens throughout. Each cycle waits until
the current process has written a new checkpoint, sleeps a random time, SIGKILLs it and resumes
with ``--ckpt_path last`` and the same seed (resumed launches must not replay: issue 21 item 1).
A fraction of the stops (``--sigterm``) are SIGTERM instead, which must save ``last.ckpt`` and
exit with status 143. After every stop it checks:

- ``last.ckpt`` loads, and epoch, global_step and total_frames never go back;
- every visible store file loads completely, no two have the same bytes, no temp file is listed;
- no two files ever stored (evicted ones included) hold the same observation/reward sequence:
  the count of distinct sequences equals the count of files;
- the FIFO bound holds: at most ``dset_max_size`` files plus one epoch of new files (eviction runs
  once per epoch), and only the oldest files ever disappear (eviction, never loss);

and at the end resumes once more to a clean finish, then checks that returns improved (mean
``rollout/return`` of the last third of the logged collections vs the first third).

    python benchmarks/soak.py               # 30 minutes
    python benchmarks/soak.py --minutes 3   # a quick pass
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

YAML = """
seed_everything: 0
trainer:
  max_epochs: {epochs}
  log_every_n_steps: 10
  enable_progress_bar: false
  enable_model_summary: false
model:
  env: gym:CartPole-v1
  max_seq_len: 16
  traj_encoder: ff
  learning_rate: 0.0003
  lr_warmup_steps: 100
data:
  dset_root: {root}
  dset_name: soak
  dset_max_size: {max_size}
  batch_size: 24
  batches_per_epoch: {batches}
run:
  run_dir: {root}/soak
  parallel_actors: {actors}
  timesteps_per_epoch: {steps}
  val_timesteps: 0
  traj_save_len: 128
  ckpt_interval: 5
"""

# The learning benchmark's CartPole settings (benchmarks/learning.py, "cartpole_ff").
GIN = """
Agent.reward_multiplier = 1.0
Agent.gamma = 0.99
Discrete.clip_prob_low = 1e-6
Discrete.clip_prob_high = 1.0
FFTstepEncoder.d_hidden = 128
FFTstepEncoder.d_output = 64
FFTrajEncoder.d_model = 128
FFTrajEncoder.n_layers = 1
Actor.d_hidden = 128
NCritics.d_hidden = 128
EpsilonGreedy.steps_anneal = 1000
"""


def sequence_digest(data: np.lib.npyio.NpzFile) -> str:
    """A digest of a stored file's observations and rewards (not its name, actions or bytes)."""
    digest = hashlib.sha256()
    for key in sorted(k for k in data.files if k.startswith("obs") or k == "rews"):
        digest.update(key.encode() + np.ascontiguousarray(data[key]).tobytes())
    return digest.hexdigest()


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = Path(args.out or tempfile.mkdtemp(prefix="amago_soak_"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir = self.root / "soak"
        self.ckpt = self.run_dir / "ckpts" / "last.ckpt"
        self.rng = random.Random(args.seed)
        self.yaml, self.gin = self.root / "soak.yaml", self.root / "soak.gin"
        self.launches = 0
        self.counters: list[tuple[int, int, int]] = []
        self.files: dict[str, str] = {}
        self.sequences: dict[str, str] = {}  # every file ever seen -> digest of its obs and rewards
        self.events: list[str] = []
        self.failures: list[str] = []
        self.checks = 0
        self.sigterms = 0
        self.evicted = 0
        self.max_fifo = 0

    # ------------------------------------------------------------------ processes
    def write_configs(self, epochs: int) -> None:
        a = self.args
        self.yaml.write_text(
            YAML.format(
                root=self.root,
                epochs=epochs,
                max_size=a.max_size,
                batches=a.batches,
                actors=a.actors,
                steps=a.steps,
            )
        )
        self.gin.write_text(GIN)

    def launch(self, resume: bool, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        self.launches += 1
        cmd = [
            sys.executable,
            "-m",
            "amago_pl.cli",
            "fit",
            "--config",
            str(self.yaml),
            "--gin",
            str(self.gin),
        ]
        if resume:
            # The same run seed every launch: the launch number folded into the rollout seeds
            # (callbacks/seeding.py) is what keeps a resumed launch from replaying earlier episodes.
            cmd += ["--ckpt_path", "last"]
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        env.setdefault("OMP_NUM_THREADS", "1")
        log = open(self.root / f"launch{self.launches}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([*cmd, *extra], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_for_progress(self, proc: subprocess.Popen, since: float, deadline: float) -> bool:
        """True once this process wrote a checkpoint (last.ckpt newer than ``since``)."""
        while time.time() < deadline:
            if proc.poll() is not None:
                self.failures.append(f"launch {self.launches} exited on its own with code {proc.returncode}")
                return False
            if self.ckpt.exists() and self.ckpt.stat().st_mtime > since:
                return True
            time.sleep(0.2)
        return False

    # ------------------------------------------------------------------ audits
    def audit(self, label: str) -> None:
        self.checks += 1
        try:
            blob = torch.load(self.ckpt, map_location="cpu", weights_only=True)
        except Exception as err:  # a partial or corrupt checkpoint is exactly what we look for
            self.failures.append(f"{label}: last.ckpt unreadable: {err}")
            return
        roll = next(v for k, v in blob["callbacks"].items() if k.startswith("RolloutCallback"))
        now = (int(blob["epoch"]), int(blob["global_step"]), int(roll["total_frames"]))
        if self.counters and any(n < p for n, p in zip(now, self.counters[-1])):
            self.failures.append(f"{label}: counters went back {self.counters[-1]} -> {now}")
        self.counters.append(now)
        buffer = self.run_dir / "buffer"
        fifo = sorted((buffer / "fifo").glob("*.npz"))
        visible = fifo + sorted((buffer / "protected").glob("*.npz"))
        digests: dict[str, str] = {}
        for f in visible:
            try:
                with np.load(f, allow_pickle=False) as data:
                    for key in data.files:
                        _ = data[key]
                    if f.name not in self.sequences:
                        self.sequences[f.name] = sequence_digest(data)
                digests[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
            except FileNotFoundError:
                continue
            except Exception as err:
                self.failures.append(f"{label}: unreadable store file {f.name}: {err}")
        if len(set(digests.values())) != len(digests):
            self.failures.append(f"{label}: identical bytes stored under two names")
        repeats = len(self.sequences) - len(set(self.sequences.values()))
        if repeats:
            self.failures.append(
                f"{label}: {repeats} of {len(self.sequences)} files repeat an earlier file's observations "
                "and rewards (a resumed launch replayed seeds)"
            )
        gone = set(self.files) - set(digests)
        if gone and fifo:
            newest_gone = max(int(n.split("_")[1]) for n in gone)
            oldest_left = min(int(f.name.split("_")[1]) for f in fifo)
            if newest_gone > oldest_left:
                self.failures.append(
                    f"{label}: a file disappeared while older ones stayed (not FIFO eviction)"
                )
        self.evicted += len(gone)
        slack = self.args.actors * self.args.steps  # at most one epoch of files between evictions
        self.max_fifo = max(self.max_fifo, len(fifo))
        if len(fifo) > self.args.max_size + slack:
            self.failures.append(f"{label}: {len(fifo)} FIFO files > bound {self.args.max_size} + {slack}")
        self.files = digests

    def returns(self) -> tuple[float, float, int]:
        rows = []
        for path in self.run_dir.glob("logs/*/metrics.csv"):
            with open(path) as f:
                for row in csv.DictReader(f):
                    if row.get("rollout/return") and row.get("total_frames"):
                        rows.append((float(row["total_frames"]), float(row["rollout/return"])))
        rows.sort()
        values = [r for _, r in rows]
        third = max(1, len(values) // 3)
        if len(values) < 3:
            return float("nan"), float("nan"), len(values)
        return float(np.mean(values[:third])), float(np.mean(values[-third:])), len(values)

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        a = self.args
        start = time.time()
        deadline = start + 60 * a.minutes
        finish_budget = min(120.0, 0.3 * 60 * a.minutes)  # time kept for the final clean resume
        self.write_configs(epochs=10**6)
        kills = 0
        proc = self.launch(resume=False)
        while kills < a.kills and time.time() < deadline - finish_budget:
            launched = time.time()
            if not self.wait_for_progress(proc, launched, deadline - finish_budget):
                break
            remaining = deadline - finish_budget - time.time()
            delay = self.rng.uniform(0.0, max(0.5, min(a.max_delay, remaining / 2)))
            time.sleep(delay)
            if proc.poll() is not None:
                break
            term = self.rng.random() < a.sigterm
            proc.send_signal(signal.SIGTERM if term else signal.SIGKILL)
            code = proc.wait()
            kills += 1
            if term:
                self.sigterms += 1
                if code != 143:
                    self.failures.append(f"SIGTERM {kills}: exit status {code}, expected 143")
            self.events.append(
                f"{'SIGTERM' if term else 'SIGKILL'} {kills}: {time.time() - start:6.1f}s, "
                f"{time.time() - launched:5.1f}s after launch"
            )
            self.audit(f"after kill {kills}")
            proc = self.launch(resume=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.events.append(f"final kill at {time.time() - start:6.1f}s (time budget)")
            self.audit("after final kill")
        # Clean finish: resume and train two more epochs to completion.
        end_epoch = (self.counters[-1][0] if self.counters else 0) + 3
        self.write_configs(epochs=end_epoch)
        final = self.launch(resume=True)
        code = final.wait(timeout=max(600.0, deadline - time.time() + 600.0))
        if code != 0:
            self.failures.append(
                f"the final resume exited with code {code} (see {self.root}/launch{self.launches}.log)"
            )
        else:
            self.audit("after the final resume")
        self.report(kills, time.time() - start)
        return 1 if self.failures else 0

    def report(self, kills: int, seconds: float) -> None:
        first, last, n = self.returns()
        improved = n >= 3 and last > first
        print(
            f"soak: {seconds / 60:.1f} min, {self.launches} launches, {kills - self.sigterms} random SIGKILLs "
            f"and {self.sigterms} SIGTERMs, run in {self.root}"
        )
        print("tried:")
        for event in self.events:
            print(f"  {event}")
        print("held:")
        steps = " -> ".join(f"{e}/{s}/{f}" for e, s, f in self.counters)
        print(f"  checkpoints readable and counters monotone (epoch/global_step/total_frames): {steps}")
        print(
            f"  store audits: {self.checks}, {len(self.files)} files now, {self.evicted} evicted (oldest first),"
        )
        print(
            f"    max {self.max_fifo} FIFO files seen (dset_max_size {self.args.max_size}), no duplicate bytes"
        )
        distinct = len(set(self.sequences.values()))
        print(
            f"  trajectory files ever stored: {len(self.sequences)}, distinct obs/reward sequences: {distinct}"
        )
        print(
            f"  returns: first third {first:.1f}, last third {last:.1f} over {n} collections -> "
            f"{'improved' if improved else 'NOT improved'}"
        )
        if not improved:
            self.failures.append("returns did not improve (a short budget may be too short to learn)")
        print("failures:" if self.failures else "failures: none")
        for failure in self.failures:
            print(f"  - {failure}")
        summary = {"kills": kills, "sigterms": self.sigterms, "launches": self.launches}
        summary.update(files=len(self.sequences), distinct=distinct, failures=len(self.failures))
        print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="total wall-clock budget")
    parser.add_argument("--kills", type=int, default=1000, help="at most this many random kills")
    parser.add_argument("--max_delay", type=float, default=60.0, help="longest random wait before a kill (s)")
    parser.add_argument("--out", default=None, help="run folder (default: a new temp folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--actors", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50, help="env steps per actor per epoch")
    parser.add_argument("--batches", type=int, default=30, help="training batches per epoch")
    parser.add_argument("--max_size", type=int, default=60, help="dset_max_size (FIFO files kept)")
    parser.add_argument("--sigterm", type=float, default=0.25, help="fraction of stops that are SIGTERM")
    sys.exit(Soak(parser.parse_args()).run())


if __name__ == "__main__":
    main()
