"""Feed-forward building blocks: normalisation layers, MLP and a residual FF block."""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn

from amago_pl.nets.utils import activation_switch


@gin.configurable
class SimNorm(nn.Module):
    """Simplicial normalisation (TD-MPC2): softmax over consecutive groups of ``simnorm_dim`` features.

    Selected with the normalisation name "simnorm" (``Normalization("simnorm", d_model)``), e.g.
    ``FFTstepEncoder.out_norm = "simnorm"``. ``d_model`` comes from the layer being normalised and
    must be divisible by ``simnorm_dim``.
    """

    def __init__(self, d_model: int, simnorm_dim: int = 8):
        super().__init__()
        if d_model % simnorm_dim:
            raise ValueError(f"SimNorm needs d_model ({d_model}) divisible by simnorm_dim ({simnorm_dim})")
        self.simnorm_dim = simnorm_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        groups = x.reshape(*shape[:-1], -1, self.simnorm_dim)  # (..., D / g, g)
        return F.softmax(groups, dim=-1).reshape(shape)


class Normalization(nn.Module):
    """Select a normalisation by name.

    ``"layer"`` LayerNorm; ``"rmsnorm"`` RMSNorm; ``"none"``/None identity; ``"unitball"`` divide by the
    L2 norm (``"unitball-detach"``: no gradient through the norm); ``"hypersphere"`` project onto the
    sphere of radius sqrt(d_model), so entries keep unit scale; ``"simnorm"`` :class:`SimNorm`.
    """

    METHODS = ("layer", "rmsnorm", "none", "unitball", "unitball-detach", "hypersphere", "simnorm")

    def __init__(self, method: str | None, d_model: int):
        super().__init__()
        method = "none" if method is None else method
        if method not in self.METHODS:
            raise ValueError(f"Unknown normalization {method!r}; choose from {self.METHODS} or None")
        self.method = method
        self.d_model = d_model
        if method == "layer":
            self.norm: nn.Module = nn.LayerNorm(d_model)
        elif method == "rmsnorm":
            self.norm = nn.RMSNorm(d_model)
        elif method == "simnorm":
            self.norm = SimNorm(d_model)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method in ("unitball", "unitball-detach"):
            norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            return x / (norm.detach() if self.method == "unitball-detach" else norm)
        if self.method == "hypersphere":
            return F.normalize(x, dim=-1, eps=1e-6) * (self.d_model**0.5)
        return self.norm(x)


class MLP(nn.Module):
    """``n_layers`` hidden layers then an output layer: ``n_layers=2`` means three Linear layers.

    Args:
        norm: optional normalisation after each hidden Linear (before the activation).
    """

    def __init__(
        self,
        d_inp: int,
        d_hidden: int,
        n_layers: int,
        d_output: int,
        activation: str = "leaky_relu",
        dropout_p: float = 0.0,
        norm: str | None = None,
    ):
        super().__init__()
        act = activation_switch(activation)
        layers: list[nn.Module] = []
        width = d_inp
        for _ in range(n_layers):
            layers += [
                nn.Linear(width, d_hidden),
                Normalization(norm, d_hidden),
                act(),
                nn.Dropout(dropout_p),
            ]
            width = d_hidden
        layers.append(nn.Linear(width, d_output))
        self.net = nn.Sequential(*layers)
        self.d_output = d_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (..., d_inp) -> (..., d_output)


class FFBlock(nn.Module):
    """Pre-norm residual feed-forward block: ``x + drop(W2 drop(act(W1 norm(x))))``."""

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        activation: str = "leaky_relu",
        dropout: float = 0.0,
        norm: str | None = "layer",
    ):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.norm = Normalization(norm, d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.act = activation_switch(activation)()
        self.ff2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.ff1(self.norm(x))))  # (..., d_ff)
        return x + self.dropout(self.ff2(h))  # (..., d_model)
