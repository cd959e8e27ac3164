"""Collection speed: env steps/s of the rollout loop with a policy vs raw env stepping (random actions).

For T-Maze (corridor 10, context 11) and Meta-Frozen-Lake (5x5, 10 attempts, context 250), with 8
and 32 actors, ``sync`` and ``async`` envs, it measures

* ``raw``: ``ParallelEnvs.step`` with uniformly random actions, nothing else;
* ``ff`` / ``gru`` / ``transformer``: the training collection loop (``callbacks.interact.interact``
  with epsilon-greedy exploration and a ``TrajectoryWriter`` saving every finished trajectory to a
  temporary store), acting with an Agent whose timestep encoder is the FF encoder of the T-Maze
  example (128 -> 64) and whose trajectory encoder is an FF net, a 2-layer GRU (128) or the
  reference Transformer (d_model 128, d_ff 512, 2 layers, 4 heads, KV cache).

    python benchmarks/rollout.py
    python benchmarks/rollout.py --envs tmaze --actors 8 --modes sync async --rounds 3

The variants of one (env, actors, mode) row (each with its own envs) alternate in blocks of
``--block`` steps (raw, ff, gru, transformer, raw, ...), so they see the same machine load. Steps/s
is the best block's rate (timeit's rule on a shared machine); ``policy cost`` is the policy variant's
time per step divided by raw stepping's (1.0 = free policy; the difference is inference, exploration,
bookkeeping and trajectory writing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

ENVS = ("tmaze", "frozenlake")
POLICIES = ("ff", "gru", "transformer")
CONTEXT = {"tmaze": 11, "frozenlake": 250}
REFERENCE = {  # the original AMAGO on this machine kind (env steps/s while collecting)
    ("tmaze", 8, "async", "transformer"): 511,
    ("tmaze", 8, "sync", "transformer"): 789,
    ("frozenlake", 32, "async", "transformer"): 1450,
}


def make_env_fn(name: str):
    from amago_pl.envs import AMAGOEnv
    from amago_pl.envs.builtin.tmaze import TMazeAltPassive
    from amago_pl.envs.builtin.toy_gym import MetaFrozenLake

    if name == "tmaze":
        return lambda: AMAGOEnv(TMazeAltPassive(corridor_length=10, penalty=-0.1), env_name="TMaze10")
    return lambda: AMAGOEnv(MetaFrozenLake(size=5, k_episodes=10), env_name="MetaFrozenLake")


def build_agent(envs, policy: str, context: int):
    import gin
    import torch

    from amago_pl.modules.agent import Agent
    from amago_pl.nets.traj_encoders import FFTrajEncoder, GRUTrajEncoder, TformerTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder

    gin.clear_config()
    bindings = {
        "FFTstepEncoder.d_hidden": 128,
        "FFTstepEncoder.d_output": 64,
        "TformerTrajEncoder.d_model": 128,
        "TformerTrajEncoder.d_ff": 512,
        "TformerTrajEncoder.n_layers": 2,
        "TformerTrajEncoder.n_heads": 4,
        "GRUTrajEncoder.d_hidden": 128,
        "GRUTrajEncoder.d_output": 128,
        "FFTrajEncoder.d_model": 128,
    }
    for k, v in bindings.items():
        gin.bind_parameter(k, v)
    traj = {"ff": FFTrajEncoder, "gru": GRUTrajEncoder, "transformer": TformerTrajEncoder}[policy]
    torch.manual_seed(0)
    return Agent(
        envs.single_observation_space, envs.rl2_space, envs.single_action_space, context, FFTstepEncoder, traj
    )


def bench_row(env: str, actors: int, mode: str, policies, block: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per batched step of every variant, one entry per block. Each variant has its own
    envs, so every policy's episodes (and written trajectories) are continuous."""
    from amago_pl.callbacks.interact import fresh_state, interact
    from amago_pl.datamodules import TrajectoryStore, TrajectoryWriter
    from amago_pl.envs import EpsilonGreedy, make_parallel_envs

    variants = ["raw", *policies]
    # "async:K" = async envs with K envs per worker process (default: the library's choice).
    kind, _, per = mode.partition(":")
    kw = {"envs_per_worker": int(per)} if per else {}
    envs = {v: make_parallel_envs(make_env_fn(env), actors, mode=kind, seed=0, **kw) for v in variants}
    rng = np.random.default_rng(0)
    n_actions = int(envs["raw"].single_action_space.n)
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            agents, states, writers, explore = {}, {}, {}, {}
            envs["raw"].reset()
            for p in policies:
                ts = envs[p].reset()
                agents[p] = agent = build_agent(envs[p], p, CONTEXT[env])
                states[p] = fresh_state(agent, ts, agent.device)
                writers[p] = TrajectoryWriter(TrajectoryStore(os.path.join(tmp, p)), actors, 10**10)
                writers[p].start(ts)
                explore[p] = EpsilonGreedy(envs[p].single_action_space, actors, steps_anneal=10**6)
            for r in range(rounds + 1):  # round 0 warms up (first allocations, cache fills)
                start = time.perf_counter()
                for _ in range(block):
                    envs["raw"].step(rng.integers(0, n_actions, size=actors))
                if r:
                    times["raw"].append((time.perf_counter() - start) / block)
                for p, agent in agents.items():
                    res = interact(
                        agent, envs[p], states[p], block, exploration=explore[p], writer=writers[p]
                    )
                    if r:
                        times[p].append(res.seconds / block)
        finally:
            for e in envs.values():
                e.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    parser.add_argument("--actors", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["sync", "async"],
        help='"sync", "async" or "async:K" (K envs per worker)',
    )
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--block", type=int, default=30, help="batched steps per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="timed blocks per variant")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(f"threads={args.threads}, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(
        "| env | actors | envs | variant | env steps/s (best) | env steps/s (median) | "
        "policy cost (x raw, median of pairs) | original env steps/s |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|")
    for env in args.envs:
        for actors in args.actors:
            for mode in args.modes:
                times = bench_row(env, actors, mode, args.policies, args.block, args.rounds)
                for variant, ts in times.items():
                    cost = ""
                    if variant != "raw":
                        cost = f"{statistics.median(a / b for a, b in zip(ts, times['raw'])):.2f}"
                    ref = REFERENCE.get((env, actors, mode, variant), "")
                    print(
                        f"| {env} | {actors} | {mode} | {variant} | {actors / min(ts):.0f} | "
                        f"{actors / statistics.median(ts):.0f} | {cost} | {ref} |",
                        flush=True,
                    )
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
