"""The compact policy file and the TorchScript export of the step function.

The export is loaded in a subprocess where ``import amago_pl`` fails and replays the observations,
rewards and done flags of 3 episodes per env (with resets) that ``Policy.act(deterministic=True)``
saw, with another number of envs than it was traced for; its actions must match to 1e-5, for the default Transformer (KV cache, episodes longer than
max_seq_len) and for the GRU. The other sequence models that export (FF, identity, the Transformer
with plain and sliding-window attention) are replayed in the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import gin
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from amago_pl import Policy
from amago_pl.policy.export import (
    META_FILE,
    ExportedStep,
    _example_inputs,
    _same_at_other_sizes,
    _trace,
    export_torchscript,
)
from tests.integration.cli_support import subprocess_env
from tests.integration.policy_support import MAX_SEQ_LEN, raw_env, tiny_agent

N_ENVS, EPISODES, SEED = 2, 3, 7

REPLAY = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.modules["amago_pl"] = None  # any import of amago_pl now raises ImportError
    try:
        import amago_pl  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("amago_pl was importable")
    import torch

    export, data, out = sys.argv[1:4]
    extra = {"META_FILE": ""}
    step = torch.jit.load(export, _extra_files=extra)
    meta = json.loads(extra["META_FILE"])
    d = np.load(data)
    assert meta["dynamic_batch"], meta
    n = d["reward"].shape[1]  # replayed with another number of envs than the export was traced for
    assert n != meta["num_envs"]
    state = []
    for s in meta["state"]:
        shape = list(s["shape"])
        shape[s["batch_dim"]] = n
        state.append(torch.zeros(shape, dtype=getattr(torch, s["dtype"])))
    new_episode = torch.ones(n, dtype=torch.bool)
    actions = []
    for t in range(len(d["reward"])):
        obs = [torch.as_tensor(d["obs_" + k][t]) for k in meta["obs_keys"]]
        reward = torch.as_tensor(d["reward"][t], dtype=torch.float32)
        outputs = step(*obs, reward, new_episode, *state)
        actions.append(outputs[0].numpy())
        state = list(outputs[1:])
        # NEXT_STEP: the call after the one that received the episode's end starts a new one
        new_episode = torch.as_tensor(d["ended"][t])
    np.save(out, np.stack(actions))
    print("replayed", len(actions), "steps")
    """
).replace("META_FILE", META_FILE)


def record_episodes(policy: Policy, name: str) -> dict[str, np.ndarray]:
    """Inputs and ``Policy.act`` outputs until every env finished EPISODES episodes (NEXT_STEP)."""
    envs = SyncVectorEnv([lambda: raw_env(name)] * N_ENVS, autoreset_mode=AutoresetMode.NEXT_STEP)
    policy.reset(env=envs)
    obs, _ = envs.reset(seed=SEED)
    reward, ended = np.zeros(N_ENVS, np.float32), np.zeros(N_ENVS, bool)
    rows: dict[str, list] = {"obs_observation": [], "reward": [], "ended": [], "action": []}
    finished = np.zeros(N_ENVS, int)
    while finished.min() < EPISODES:
        action = policy.act(obs, reward, ended, None, deterministic=True)
        rows["obs_observation"].append(np.asarray(obs, np.float32))
        rows["reward"].append(np.asarray(reward, np.float32))
        rows["ended"].append(ended)  # the flags call t received with its observation
        obs, reward, terminated, truncated, _ = envs.step(action)
        rows["action"].append(np.asarray(action))
        ended = terminated | truncated
        finished += ended
    envs.close()
    return {k: np.stack(v) for k, v in rows.items()}


@pytest.mark.parametrize(
    ("name", "traj"), [("cartpole", "transformer"), ("pendulum", "transformer"), ("pendulum", "gru")]
)
def test_export_matches_policy_without_amago_pl(tmp_path, name, traj):
    agent = tiny_agent(name, traj)
    # Through the compact file, loaded back as a user would.
    Policy.from_agent(agent).save(tmp_path / "policy.pt")
    policy = Policy.from_checkpoint(tmp_path / "policy.pt")
    data = record_episodes(policy, name)
    assert len(data["reward"]) > EPISODES * (MAX_SEQ_LEN + 1)  # episodes longer than the context
    np.savez(tmp_path / "data.npz", **data)
    envs_space = raw_env(name).action_space
    # Traced for another batch size than replayed: the file serves any number of envs.
    export = export_torchscript(policy, tmp_path / "step.ts", num_envs=N_ENVS + 1, action_space=envs_space)
    script = tmp_path / "replay.py"
    script.write_text(REPLAY)
    out = tmp_path / "actions.npy"
    proc = subprocess.run(
        [sys.executable, str(script), str(export), str(tmp_path / "data.npz"), str(out)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    replayed = np.load(out)
    assert replayed.shape == data["action"].shape
    np.testing.assert_allclose(replayed, data["action"], atol=1e-5, rtol=0)
    assert len(np.unique(data["action"])) > 1


def test_export_metadata_names_the_state(tmp_path):
    policy = Policy.from_agent(tiny_agent("cartpole", "transformer"))
    extra = {META_FILE: ""}
    torch.jit.load(str(export_torchscript(policy, tmp_path / "s.ts", num_envs=3)), _extra_files=extra)
    meta = json.loads(extra[META_FILE])
    assert meta["obs_keys"] == ["observation"] and meta["num_envs"] == 3
    assert [s["name"] for s in meta["state"]] == [
        "prev_action_rep",
        "time_idx",
        "memory_0",
        "memory_1",
        "memory_2",
    ]
    assert meta["state"][2]["shape"][1] == 3  # KV keys (layers, N, heads, slots, head width)
    assert [s["batch_dim"] for s in meta["state"]] == [0, 0, 1, 1, 0]
    assert meta["traj_encoder"] == "TformerTrajEncoder" and meta["dynamic_batch"] is True


def test_batch_size_check_catches_a_trace_that_keeps_its_size():
    """Traced with 1 env, the Transformer's graph keeps the size-1 batch as a constant: the check
    export_torchscript runs (and the reason it traces with at least 2 envs) must see that."""
    policy = Policy.from_agent(tiny_agent("cartpole", "transformer"))
    agent, adapter = policy.agent, policy._format.adapter  # noqa: SLF001
    module = ExportedStep(agent, adapter, ["observation"], agent.init_hidden_state(1, "cpu")).eval()
    at_one = _trace(module, _example_inputs(policy, agent, adapter, 1))
    assert not _same_at_other_sizes(at_one, module, policy, agent, adapter, trace_n=1)
    at_two = _trace(module, _example_inputs(policy, agent, adapter, 2))
    assert _same_at_other_sizes(at_two, module, policy, agent, adapter, trace_n=2)


def test_gin_untouched_and_two_sizes_in_one_process(tmp_path):
    small, large = tiny_agent("cartpole", d_model=16), None
    Policy.from_agent(small).save(tmp_path / "small.pt")
    gin.clear_config()
    large = tiny_agent("cartpole", d_model=64)
    Policy.from_agent(large).save(tmp_path / "large.pt")
    gin.clear_config()
    gin.bind_parameter("TformerTrajEncoder.d_model", 8)  # the caller's own configuration
    before = gin.config_str(), gin.query_parameter("TformerTrajEncoder.d_model")
    p_small = Policy.from_checkpoint(tmp_path / "small.pt")
    p_large = Policy.from_checkpoint(tmp_path / "large.pt")
    assert (gin.config_str(), gin.query_parameter("TformerTrajEncoder.d_model")) == before
    assert p_small.agent.traj_encoder.d_model == 16 and p_large.agent.traj_encoder.d_model == 64
    obs = np.zeros((2, 4), np.float32)
    for p in (p_small, p_large):
        p.reset(2)
        assert p.act(obs, deterministic=True).shape == (2,)


def replay_in_process(export, data: dict[str, np.ndarray]) -> np.ndarray:
    """REPLAY's loop (above) in this process: the export's actions for the recorded inputs."""
    extra = {META_FILE: ""}
    step = torch.jit.load(str(export), _extra_files=extra)
    meta = json.loads(extra[META_FILE])
    assert meta["dynamic_batch"], meta
    n = data["reward"].shape[1]
    state = []
    for s in meta["state"]:
        shape = list(s["shape"])
        shape[s["batch_dim"]] = n
        state.append(torch.zeros(shape, dtype=getattr(torch, s["dtype"])))
    new_episode, actions = torch.ones(n, dtype=torch.bool), []
    for t in range(len(data["reward"])):
        obs = [torch.as_tensor(data["obs_" + k][t]) for k in meta["obs_keys"]]
        with torch.no_grad():
            outputs = step(*obs, torch.as_tensor(data["reward"][t]), new_episode, *state)
        actions.append(outputs[0].numpy())
        state = list(outputs[1:])
        new_episode = torch.as_tensor(data["ended"][t])
    return np.stack(actions)


@pytest.mark.parametrize(
    ("name", "traj", "attention"),
    [
        ("pendulum", "ff", None),
        ("pendulum", "identity", None),
        ("pendulum", "transformer", "VanillaAttention"),
        ("pendulum", "transformer", "SlidingWindowFlexAttention"),
    ],
)
def test_other_sequence_models_export(tmp_path, name, traj, attention):
    """The sequence models docs/policy.md lists as exporting besides the default Transformer and the
    GRU: the memory-free FF and identity encoders, and the Transformer with plain attention and with
    a sliding window shorter than max_seq_len (its KV cache is a smaller ring). The export, traced for
    another number of envs, matches ``Policy.act(deterministic=True)`` to 1e-5 over 3 episodes per env."""
    from amago_pl.nets import attention as attention_kernels

    kernel = None if attention is None else getattr(attention_kernels, attention)
    if attention == "SlidingWindowFlexAttention":
        gin.bind_parameter("SlidingWindowFlexAttention.window_size", MAX_SEQ_LEN // 2)
    policy = Policy.from_agent(tiny_agent(name, traj, attention=kernel))
    if kernel is not None:
        assert type(policy.agent.traj_encoder.transformer.layers[0].attention) is kernel
    data = record_episodes(policy, name)
    assert len(data["reward"]) > EPISODES * (MAX_SEQ_LEN + 1)
    export = export_torchscript(
        policy, tmp_path / "step.ts", num_envs=N_ENVS + 1, action_space=raw_env(name).action_space
    )
    replayed = replay_in_process(export, data)
    assert replayed.shape == data["action"].shape
    np.testing.assert_allclose(replayed, data["action"], atol=1e-5, rtol=0)
    assert len(np.unique(data["action"])) > 1
