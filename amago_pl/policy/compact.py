"""The compact policy file: the weights plus the plain-data configuration that rebuilds them.

No optimizer, no loop, no replay or rollout state: only what acting needs. Every entry is a tensor
or built-in data, so ``torch.load(weights_only=True)`` reads it (https://pytorch.org/docs/stable/notes/serialization.html).
Keys:

- ``amago_pl_policy_format``: the layout's version (``loading.FORMAT_VERSION``); a newer one is
  refused naming both versions.
- ``amago_pl_version``: the amago_pl version that wrote it.
- ``amago_pl_agent_class``: the agent's class, its ``register_agent`` name or else its import path
  (looked up only among registered classes; files of format 1 written before named the import path
  under ``agent_class``, still read).
- ``hyper_parameters``: the agent's constructor arguments as plain data (``modules/hparams.py``).
- ``amago_pl_gin_config``: the gin configuration the encoders were built with.
- ``state_dict``: the weights; ``version``: the optimizer step they come from (the collectors of an
  async run read it, ``callbacks/latest_policy.py``).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import gin
import torch

from amago_pl.modules import checkpoint as ckpt
from amago_pl.modules.agent_registry import agent_class_name
from amago_pl.policy.loading import AGENT_CLASS_KEY, FORMAT_KEY, FORMAT_VERSION, weights_of


def policy_blob(agent: torch.nn.Module, version: int = 0, gin_config: str | None = None) -> dict[str, Any]:
    """The compact file's contents for ``agent``; ``gin_config`` defaults to the process's current
    configuration (the one a training run built the agent with)."""
    return {
        FORMAT_KEY: FORMAT_VERSION,
        ckpt.VERSION_KEY: ckpt.amago_pl_version(),
        AGENT_CLASS_KEY: agent_class_name(type(agent)),
        "hyper_parameters": dict(agent.hparams),
        ckpt.GIN_KEY: gin.config_str() if gin_config is None else gin_config,
        ckpt.SKIPPED_STEPS_KEY: int(getattr(agent, "skipped_steps", 0)),
        "version": int(version),
        "state_dict": weights_of(agent),
    }


def policy_bytes(agent: torch.nn.Module, version: int = 0, gin_config: str | None = None) -> bytes:
    buffer = io.BytesIO()
    torch.save(policy_blob(agent, version, gin_config), buffer)
    return buffer.getvalue()


def save_policy_file(
    agent: torch.nn.Module, path: str | os.PathLike, version: int = 0, gin_config: str | None = None
) -> Path:
    """Write the compact file through a same-folder temporary name and ``os.replace``, so a reader
    sees the old file or the new one, never half of one. (A training run writes it with
    ``callbacks.checkpoint_io.atomic_write_bytes``, which also reports a full disk.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = policy_bytes(agent, version, gin_config)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
