"""Export a policy's step function to TorchScript, with its memory as explicit inputs and outputs.

The exported file runs with PyTorch alone (no amago_pl, no gin, no gymnasium):
``torch.jit.load(path)``. One call is one ``Policy.act(..., deterministic=True)`` step for N envs::

    outputs = step(*obs, reward, new_episode, prev_action_rep, time_idx, *memory)
    env_action, prev_action_rep, time_idx, *memory = outputs

- ``obs``: one (N, ...) tensor per observation key, in the order of ``meta["obs_keys"]``;
- ``reward`` (N,) float32: the envs' last reward (any value where ``new_episode``);
- ``new_episode`` (N,) bool: this input starts an episode (True on the first call; with gymnasium's
  NEXT_STEP autoreset, True on the call after an env reported terminated or truncated; with
  SAME_STEP, True on the call that reports it);
- ``prev_action_rep`` (N, A) float32, ``time_idx`` (N,) int64 and ``memory`` (the KV cache as
  keys, values and token counts, or the RNN state): start from zeros of the shapes in
  ``meta["state"]`` and feed back what the previous call returned.

``meta`` is the JSON file ``amago_pl_policy.json`` stored inside the export (read it with
``torch.jit.load(path, _extra_files={"amago_pl_policy.json": ""})``); ``meta["state"][i]["batch_dim"]``
is the env axis of each state tensor.

Batch size: the trace is recorded with at least 2 envs (traced with 1, the Transformer's graph
keeps the size-1 batch as a constant) and then checked at two other batch sizes against the eager
step; when they match to 1e-5, ``meta["dynamic_batch"]`` is true and the file serves any number of
envs (size the zero state by ``batch_dim``). Otherwise the file is traced for ``num_envs`` exactly,
``meta["dynamic_batch"]`` is false and a warning says so: export once per batch size then.

Sequence models that export (tests/integration/test_policy_export.py matches each to ``Policy.act``):
the Transformer with its KV cache (``FlashAttention`` via its CPU path, ``VanillaAttention``,
``SlidingWindowFlexAttention``), the GRU, and the memory-free FF and identity encoders. Mamba
(``mamba_ssm``, CUDA kernels) does not.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from lightning.pytorch.core.module import _jit_is_scripting
from torch import nn

from amago_pl.envs.action_spaces import ActionAdapter
from amago_pl.modules import checkpoint as ckpt
from amago_pl.nets.transformer import KVCache
from amago_pl.policy.policy import Policy

META_FILE = "amago_pl_policy.json"
# The Agent's modules that ``get_actions`` never calls (critics and the target copies).
_NOT_ACTING = ("critics", "target_critics", "target_actor", "maximized_critics", "popart")


class ExportError(RuntimeError):
    """A policy whose step cannot be exported (named model part and the reason)."""


def _flatten(memory: Any, encoder: nn.Module) -> list[torch.Tensor]:
    if memory is None:
        return []
    if isinstance(memory, KVCache):
        return [memory.k, memory.v, memory.count]
    if isinstance(memory, torch.Tensor):
        return [memory]
    raise ExportError(
        f"{type(encoder).__name__} keeps its memory as {type(memory).__name__}; the export supports a "
        "Transformer KV cache, a single tensor (RNN state) or no memory (docs/policy.md, 'Export')."
    )


def _unflatten(tensors: list[torch.Tensor], like: Any) -> Any:
    if like is None:
        return None
    if isinstance(like, KVCache):
        return KVCache(k=tensors[0], v=tensors[1], count=tensors[2])
    return tensors[0]


class ExportedStep(nn.Module):
    """One deterministic policy step with explicit state (see the module doc). Traced, not scripted."""

    def __init__(self, agent: nn.Module, adapter: ActionAdapter, obs_keys: list[str], memory_like: Any):
        super().__init__()
        self.agent = agent
        self.obs_keys = obs_keys
        self.kind = adapter.kind
        self.action_dim = adapter.action_dim
        self.start = int(getattr(adapter, "_start", 0))
        space = adapter.env_space
        self.env_shape = tuple(space.shape or ())
        self.env_dtype = space.dtype
        if adapter.kind == "continuous":
            self.register_buffer("low", torch.as_tensor(adapter._low, dtype=torch.float64))  # noqa: SLF001
            self.register_buffer("high", torch.as_tensor(adapter._high, dtype=torch.float64))  # noqa: SLF001
        self.memory_like = memory_like

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = len(self.obs_keys)
        obs = {key: x.unsqueeze(1) for key, x in zip(self.obs_keys, inputs[:k])}  # each (N, 1, ...)
        reward, new_episode, prev_rep, time_idx = inputs[k : k + 4]
        keep = (~new_episode).to(torch.float32)[:, None]  # (N, 1)
        time_idx = torch.where(new_episode, torch.zeros_like(time_idx), time_idx + 1)  # (N,)
        rl2 = torch.cat([reward.to(torch.float32)[:, None], prev_rep], dim=1) * keep  # (N, 1 + A)
        memory = _unflatten([m.clone() for m in inputs[k + 4 :]], self.memory_like)
        memory = self.agent.reset_hidden_state(memory, new_episode)
        actions, memory = self.agent.get_actions(
            obs, rl2.unsqueeze(1), time_idx.unsqueeze(1), memory, sample=False
        )
        n = actions.shape[0]
        if self.kind == "discrete":
            rep = nn.functional.one_hot(actions, self.action_dim).to(torch.float32)  # (N, A)
            env_action = actions + self.start  # (N,)
        elif self.kind == "multibinary":
            rep = (actions > 0.5).to(torch.float32)  # (N, A)
            env_action = rep.reshape(n, *self.env_shape)
        else:
            a = actions.to(torch.float64).clamp(-1.0, 1.0)  # (N, A)
            rep = a.to(torch.float32)
            # The same affine map as ActionAdapter._to_env_batch (envs/action_spaces.py).
            env_a = ((1.0 - a) * self.low + (1.0 + a) * self.high) / 2.0
            env_a = torch.minimum(torch.maximum(env_a, self.low), self.high)
            env_action = env_a.to(torch.float32).reshape(n, *self.env_shape)
        return (env_action, rep, time_idx, *_flatten(memory, self.agent.traj_encoder))


def _example_obs(space: spaces.Dict, n: int) -> list[torch.Tensor]:
    out = []
    for key in space.spaces:
        sub = space[key]
        sample = torch.as_tensor(sub.sample())
        out.append(sample.unsqueeze(0).expand(n, *sample.shape).clone())
    return out


def export_torchscript(
    policy: Policy,
    path: str | os.PathLike,
    num_envs: int = 1,
    action_space: spaces.Space | None = None,
) -> Path:
    """Trace ``policy``'s deterministic step for ``num_envs`` envs and save it with its metadata.

    ``action_space``: the env's own action space (its format is what the export returns; default:
    the one given to ``policy.reset``, else the policy's own space).
    """
    # A frozen CPU copy: the saved graph then needs no autograd, and the policy's own agent (maybe
    # still training, maybe on a GPU) is left as it is.
    agent = copy.deepcopy(policy.agent).cpu().eval().requires_grad_(False)
    for name in _NOT_ACTING:  # a traced module keeps every submodule's weights: drop what acting never runs
        if isinstance(getattr(agent, name, None), nn.Module):
            delattr(agent, name)
    adapter = ActionAdapter(action_space) if action_space is not None else policy._format.adapter  # noqa: SLF001
    if action_space is not None:
        policy._check_spaces(policy.observation_space, action_space, what="the given action space")  # noqa: SLF001
    obs_keys = list(policy.observation_space.spaces)
    memory_like = agent.init_hidden_state(num_envs, "cpu")
    module = ExportedStep(agent, adapter, obs_keys, memory_like).eval()
    batch_dims = _batch_dims(agent)
    trace_n = max(2, num_envs)
    traced = _trace(module, _example_inputs(policy, agent, adapter, trace_n))
    dynamic = _same_at_other_sizes(traced, module, policy, agent, adapter, trace_n)
    if not dynamic:
        warnings.warn(
            f"the exported step of {type(agent.traj_encoder).__name__} does not generalise across batch "
            f"sizes; {path} serves exactly num_envs={num_envs} envs (export once per batch size).",
            stacklevel=2,
        )
        if trace_n != num_envs:
            traced = _trace(module, _example_inputs(policy, agent, adapter, num_envs))
    state = _flatten(memory_like, agent.traj_encoder)
    meta = {
        "amago_pl_version": ckpt.amago_pl_version(),
        "num_envs": num_envs,
        "dynamic_batch": dynamic,
        "obs_keys": obs_keys,
        "obs_shapes": [list(policy.observation_space[k].shape) for k in obs_keys],
        "action": {
            "kind": adapter.kind,
            "action_dim": adapter.action_dim,
            "env_space": str(adapter.env_space),
        },
        "state": [
            {
                "name": "prev_action_rep",
                "shape": [num_envs, adapter.action_dim],
                "dtype": "float32",
                "batch_dim": 0,
            },
            {"name": "time_idx", "shape": [num_envs], "dtype": "int64", "batch_dim": 0},
        ]
        + [
            {
                "name": f"memory_{i}",
                "shape": list(t.shape),
                "dtype": str(t.dtype).replace("torch.", ""),
                "batch_dim": dim,
            }
            for i, (t, dim) in enumerate(zip(state, batch_dims))
        ],
        "gammas": list(policy.gammas),
        "traj_encoder": type(agent.traj_encoder).__name__,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(path), _extra_files={META_FILE: json.dumps(meta)})
    return path


def _example_inputs(
    policy: Policy, agent: nn.Module, adapter: ActionAdapter, n: int
) -> tuple[torch.Tensor, ...]:
    """Inputs of a first step for ``n`` envs (every env starts an episode, zero state)."""
    state = _flatten(agent.init_hidden_state(n, "cpu"), agent.traj_encoder)
    return (
        *_example_obs(policy.observation_space, n),
        torch.zeros(n, dtype=torch.float32),  # reward (n,)
        torch.ones(n, dtype=torch.bool),  # new_episode (n,)
        torch.zeros(n, adapter.action_dim, dtype=torch.float32),  # prev_action_rep (n, A)
        torch.zeros(n, dtype=torch.int64),  # time_idx (n,)
        *[torch.zeros_like(t) for t in state],
    )


def _batch_dims(agent: nn.Module) -> list[int]:
    """The env axis of each memory tensor: the one axis whose size follows the number of envs."""
    two = _flatten(agent.init_hidden_state(2, "cpu"), agent.traj_encoder)
    three = _flatten(agent.init_hidden_state(3, "cpu"), agent.traj_encoder)
    dims = []
    for a, b in zip(two, three):
        differ = [i for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]
        if len(differ) != 1:
            raise ExportError(
                f"{type(agent.traj_encoder).__name__}'s memory tensor of shape {tuple(a.shape)} has no single "
                "env axis; the export cannot size its state for other batch sizes."
            )
        dims.append(differ[0])
    return dims


def _trace(module: ExportedStep, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    try:
        # Lightning's own switch for its TorchScript paths: without it the tracer's attribute scan
        # reads LightningModule.trainer, which raises outside a Trainer (lightning/pytorch/core/module.py).
        with torch.no_grad(), warnings.catch_warnings(), _jit_is_scripting():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            return torch.jit.trace(module, example, check_trace=False)
    except Exception as err:
        encoder = type(module.agent.traj_encoder).__name__
        raise ExportError(f"tracing the step of {encoder} failed: {type(err).__name__}: {err}") from err


def _same_at_other_sizes(
    traced: torch.jit.ScriptModule,
    module: ExportedStep,
    policy: Policy,
    agent: nn.Module,
    adapter: ActionAdapter,
    trace_n: int,
    steps: int = 3,
) -> bool:
    """True when the trace equals the eager step (1e-5) for 1 and ``trace_n + 1`` envs over a few
    steps with one env starting a new episode midway (a trace can keep a traced size as a constant)."""
    k = len(policy.observation_space.spaces)
    for n in (1, trace_n + 1):
        generator = torch.Generator().manual_seed(n)
        inputs = list(_example_inputs(policy, agent, adapter, n))
        eager_state = traced_state = inputs[k + 2 :]
        for t in range(steps):
            obs = [x + 0.1 * torch.randn(x.shape, generator=generator).to(x.dtype) for x in inputs[:k]]
            reward = torch.randn(n, generator=generator)
            new_episode = torch.ones(n, dtype=torch.bool) if t == 0 else torch.arange(n) == (t % n)
            try:
                with torch.no_grad():
                    want = module(*obs, reward, new_episode, *eager_state)
                    got = traced(*obs, reward, new_episode, *traced_state)
            except RuntimeError:
                return False
            same = len(want) == len(got) and all(
                w.shape == g.shape and torch.allclose(w.double(), g.double(), atol=1e-5, rtol=0)
                for w, g in zip(want, got)
            )
            if not same:
                return False
            eager_state, traced_state = list(want[1:]), list(got[1:])
    return True
