"""The original's ``amago.utils`` names (AMAGO 3.3.0 at 2d85600), for ported scripts.

amago_pl's own code does not use this module. Where each name maps to:

- ``AmagoWarning``, ``amago_warning``: a ``Warning`` subclass and ``warnings.warn`` with it.
- ``AdamWRel``: AdamW whose step counts restart every ``reset_interval`` steps (Ellis et al.,
  2024, https://openreview.net/pdf?id=biAqUbAuG7); amago_pl's Agent builds plain AdamW
  (``Agent.configure_optimizers``), so use it in an Agent subclass's ``configure_optimizers``.
- ``stack_list_array_dicts``, ``split_dict``, ``split_batch``: numpy helpers for dicts of arrays.
- ``avg_over_accelerate``, ``sum_over_accelerate``: mean/sum of a metrics dict over all processes
  (``torch.distributed`` when initialised, else this process; accelerate is not used here).
- ``masked_avg``: mean over the True entries of a mask (``modules.losses.masked_mean`` is the
  Agent's own).
- ``get_constant_schedule_with_warmup``: linear warmup then constant LR (the Agent's
  ``lr_warmup_steps`` schedule).
- ``call_async_env``: ``call_async`` + ``call_wait`` on a gymnasium vector env.
- ``count_params``, ``get_grad_norm``: trainable parameter count and global gradient L2 norm.
- ``gin_as_wandb_config``: the operative gin config as a flat dict
  (``callbacks.config_logging.gin_bindings_as_dict``, which keeps value types).
- ``retry_load_checkpoint``: ``torch.load`` retried while another process writes the file.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable
from typing import Any

import gin
import numpy as np
import torch
from torch import nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR


class AmagoWarning(Warning):
    """Warnings about surprising settings (the original's category)."""


def amago_warning(msg: str, category: type[Warning] = AmagoWarning) -> None:
    warnings.warn(msg, category=category, stacklevel=2)


@gin.configurable
class AdamWRel(AdamW):
    """AdamW with "relative" timesteps: every ``reset_interval`` optimizer steps each parameter's
    step count goes back to 0, so bias correction restarts as if a new stationary problem began."""

    def __init__(
        self,
        params: Any,
        reset_interval: int = gin.REQUIRED,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        if reset_interval is gin.REQUIRED:
            raise ValueError("AdamWRel needs reset_interval (gin: AdamWRel.reset_interval = 10000)")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        self.reset_interval = int(reset_interval)
        self.global_step = 0

    def step(self, closure: Any = None) -> Any:
        loss = super().step(closure)
        self.global_step += 1
        if self.global_step % self.reset_interval == 0:
            for state in self.state.values():
                if "step" in state:
                    state["step"].zero_() if torch.is_tensor(state["step"]) else state.update(step=0)
        return loss


def stack_list_array_dicts(
    list_: list[dict[str, np.ndarray]], axis: int = 0, cat: bool = False
) -> dict[str, np.ndarray]:
    """[{k: a}, ...] -> {k: stack (or concatenate with ``cat``) of the a's along ``axis``}."""
    combine = np.concatenate if cat else np.stack
    keys = list(dict.fromkeys(k for d in list_ for k in d))
    return {k: combine([d[k] for d in list_ if k in d], axis=axis) for k in keys}


def split_batch(arr: np.ndarray, axis: int) -> list[np.ndarray]:
    """Slices of size 1 along ``axis`` (the axis is kept)."""
    return np.split(np.ascontiguousarray(arr), arr.shape[axis], axis=axis)


def split_dict(dict_: dict[str, np.ndarray], axis: int = 0) -> list[dict[str, np.ndarray]]:
    """{k: (N, ...)} -> N dicts {k: (1, ...)}: the inverse of ``stack_list_array_dicts(cat=True)``."""
    pieces = {k: split_batch(v, axis) for k, v in dict_.items()}
    n = len(next(iter(pieces.values()))) if pieces else 0
    return [{k: v[i] for k, v in pieces.items()} for i in range(n)]


def _gather_over_processes(data: dict[str, Any]) -> list[dict[str, Any]]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, data)
        return gathered
    return [data]


def _reduce_over_processes(data: dict[str, Any], reduce: Any) -> dict[str, Any]:
    values: dict[str, list[Any]] = {}
    for part in _gather_over_processes(data):
        for k, v in part.items():
            is_seq = isinstance(v, Iterable) and not isinstance(v, str)
            values.setdefault(k, []).extend(v if is_seq else [v])
    return {k: reduce(np.asarray(v)) for k, v in values.items()}


def avg_over_accelerate(data: dict[str, Any]) -> dict[str, Any]:
    """Mean of each entry (numbers or lists of numbers) over all processes."""
    return _reduce_over_processes(data, np.mean)


def sum_over_accelerate(data: dict[str, Any]) -> dict[str, Any]:
    """Sum of each entry (numbers or lists of numbers) over all processes."""
    return _reduce_over_processes(data, np.sum)


def masked_avg(tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over the entries where ``mask`` (same shape) is True."""
    m = mask.float()
    return (tensor * m).sum() / (m.sum() + 1e-5)


def get_constant_schedule_with_warmup(
    optimizer: torch.optim.Optimizer, num_warmup_steps: int, last_epoch: int = -1
) -> LambdaLR:
    """LR factor step / num_warmup_steps during the warmup, then 1."""

    def factor(step: int) -> float:
        return step / max(1, num_warmup_steps) if step < num_warmup_steps else 1.0

    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def call_async_env(env: Any, method_name: str, *args: Any, **kwargs: Any) -> Any:
    """Call a method (or read an attribute) on every env of a vector env and wait for the results."""
    env.call_async(method_name, *args, **kwargs)
    return env.call_wait()


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gin_as_wandb_config() -> dict[str, Any]:
    """The operative gin configuration as ``{"Class.param": value}``."""
    from amago_pl.callbacks.config_logging import gin_bindings_as_dict

    return gin_bindings_as_dict(gin.operative_config_str())


def get_grad_norm(model: nn.Module) -> float:
    """Global L2 norm of the gradients of ``model`` (parameters without a gradient are skipped)."""
    norms = [p.grad.detach().norm(2) for p in model.parameters() if p.grad is not None]
    return float(torch.stack(norms).norm(2)) if norms else 0.0


def retry_load_checkpoint(ckpt_path: str | os.PathLike, map_location: Any, tries: int = 10) -> Any:
    """``torch.load`` with up to ``tries`` attempts one second apart; None if the file is missing or
    every attempt fails (e.g. another process is still writing it)."""
    if not os.path.exists(ckpt_path):
        amago_warning(f"Skipping checkpoint load: {ckpt_path} not found.")
        return None
    for attempt in range(1, tries + 1):
        try:
            return torch.load(ckpt_path, map_location=map_location)
        except Exception as err:  # noqa: BLE001 - any read error means "try again"
            amago_warning(
                f"Loading {ckpt_path} failed ({err}); {'retrying' if attempt < tries else 'giving up'}."
            )
            time.sleep(1)
    return None
