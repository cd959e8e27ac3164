"""One step of an agent acting with memory: the code every rollout and every ``Policy`` runs.

The rollout loop (``callbacks/interact.py``, used by collection, validation and test) and the
deployment ``Policy`` (``policy/policy.py``) both call :func:`act_step` and :func:`forget`, so
training-time and deployment-time behaviour cannot drift apart. Memory is per env: a KV cache or
RNN state with a batch row per env, reset only for the envs whose episode ended (docs/architecture.md,
"Rollout memory").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from amago_pl.types import Timestep


def new_memory(agent: Any, num_envs: int, device: torch.device | str) -> Any:
    """An empty memory for ``num_envs`` envs, usable in and out of inference mode.

    Lightning runs ``Trainer.validate``/``test`` under ``torch.inference_mode``; memory allocated
    there would be made of inference tensors, which a sequence model that updates its memory in
    place (a KV cache) may not write once inference mode is off, so it is always allocated as
    normal tensors (https://pytorch.org/docs/stable/notes/autograd.html#inference-mode).
    """
    with torch.inference_mode(False):
        return agent.init_hidden_state(num_envs, device)


def forget(agent: Any, memory: Any, done: np.ndarray) -> Any:
    """Reset the memory of the envs where ``done`` (N,) bool is True; the others keep theirs."""
    if not done.any():
        return memory
    return agent.reset_hidden_state(memory, torch.as_tensor(done, device=agent.device))


@dataclass
class Captured:
    """What the networks produced during one step (filled only when asked for: analysis)."""

    state: torch.Tensor | None = None  # (N, 1, D) trajectory-encoder output
    dist: Any = None  # the actor's distribution, batch shape (N, 1, G)


@contextlib.contextmanager
def _capture(agent: Any, into: Captured):
    """Forward hooks on the trajectory encoder and the actor, so an overridden ``get_actions``
    still runs unchanged while its intermediate outputs are recorded."""
    handles = []

    def keep_state(module: Any, args: Any, output: Any) -> None:
        into.state = output[0] if isinstance(output, tuple) else output

    def keep_dist(module: Any, args: Any, output: Any) -> None:
        into.dist = output

    for name, hook in (("traj_encoder", keep_state), ("actor", keep_dist)):
        module = getattr(agent, name, None)
        if isinstance(module, torch.nn.Module):
            handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def act_step(
    agent: Any,
    timestep: Timestep,
    memory: Any,
    *,
    sample: bool = True,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    capture: Captured | None = None,
) -> tuple[np.ndarray, Any]:
    """Actions of ``agent`` for ``timestep`` (N envs) and the updated memory.

    Returns the policy's actions as numpy: (N,) int64 indices for Discrete, (N, A) float32
    otherwise (Box in [-1, 1], MultiBinary 0/1), i.e. what ``ParallelEnvs.step`` takes.
    """
    obs, rl2s, time_idxs = timestep.as_tensors(agent.device)  # (N, 1, ...), (N, 1, 1+A), (N, 1)
    ctx = autocast or contextlib.nullcontext
    hooks = _capture(agent, capture) if capture is not None else contextlib.nullcontext()
    with torch.no_grad(), ctx(), hooks:
        actions, memory = agent.get_actions(obs, rl2s, time_idxs, memory, sample=sample)
    actions = actions.detach().to("cpu", torch.float32 if actions.is_floating_point() else torch.int64)
    return actions.numpy(), memory
