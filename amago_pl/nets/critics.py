"""Critic heads: one batched ensemble of C critics, scalar (``NCritics``) or two-hot
classification (``NCriticsTwoHot``).

The original kept them in ``amago/nets/actor_critic.py`` (2d85600), where users' gin files name them;
they register with gin under ``amago_pl.nets.actor_critic`` so those keys bind after the rename even
in a raw ``gin.parse_config`` string, and ``actor_critic.py`` imports them for the Python path.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import gin
import torch
import torch.nn.functional as F
from torch import nn

from amago_pl.nets.utils import activation_switch, symexp, symlog

# ----------------------------------------------------------------------------- critics


class EnsembleLinear(nn.Module):
    """C independent Linear layers applied with one batched matmul: (C, N, d_in) -> (C, N, d_out)."""

    def __init__(self, num_members: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_members, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(num_members, 1, d_out))
        bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """``n_layers`` hidden layers of width ``d_hidden`` per member, then the output layer."""

    def __init__(
        self,
        num_members: int,
        d_in: int,
        d_hidden: int,
        n_layers: int,
        d_out: int,
        activation: str,
        dropout_p: float,
    ):
        super().__init__()
        act = activation_switch(activation)
        layers: list[nn.Module] = []
        width = d_in
        for _ in range(n_layers):
            layers += [EnsembleLinear(num_members, width, d_hidden), act(), nn.Dropout(dropout_p)]
            width = d_hidden
        layers.append(EnsembleLinear(num_members, width, d_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (C, N, d_in) -> (C, N, d_out)


class BaseCriticHead(nn.Module):
    """``forward(state (B, L, D), actions (K, B, L, G, A)) -> out (K, B, L, C, G, P)``;
    ``values(out) -> (K, B, L, C, G, 1)`` raw critic values (before PopArt)."""

    def __init__(
        self, state_dim: int, action_dim: int, discrete: bool, gammas: Sequence[float], num_critics: int
    ):
        super().__init__()
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.discrete = discrete
        self.num_critics = num_critics
        self.num_gammas = len(gammas)
        # symlog(1/(1-gamma)): the effective horizon tells a shared (s, a) network which gamma to value.
        horizon = symlog(1.0 / (1.0 - torch.as_tensor(list(gammas), dtype=torch.float32)))
        self.register_buffer("gamma_features", horizon.unsqueeze(-1), persistent=False)  # (G, 1)

    def _state_action_input(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """[state, horizon feature, action] for every (K, gamma): (K, B, L, G, D + 1 + A)."""
        K, B, L, G, _ = actions.shape
        s = state.unsqueeze(0).unsqueeze(3).expand(K, B, L, G, state.shape[-1])
        h = self.gamma_features.to(state.dtype).expand(K, B, L, G, 1)
        # Keep actions strictly inside (-1, 1): +-1 inputs are out of the policy's (tanh) range.
        a = actions.to(state.dtype).clamp(-0.999, 0.999)
        return torch.cat((s, h, a), dim=-1)

    def _run_ensemble(self, net: EnsembleMLP, inp: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (C, ..., d_out): every member sees the same inputs."""
        flat = inp.reshape(1, -1, inp.shape[-1]).expand(self.num_critics, -1, -1)  # (C, N, d_in)
        out = net(flat)  # (C, N, d_out)
        return out.reshape(self.num_critics, *inp.shape[:-1], out.shape[-1])

    def values(self, out: torch.Tensor) -> torch.Tensor:
        return out


@gin.configurable(module="amago_pl.nets.actor_critic")  # the original's gin path, see module doc
class NCritics(BaseCriticHead):
    """Ensemble of scalar critics.

    Discrete: state -> G*A Q-values, dotted with the action (soft one-hot or probabilities), so
    V(s) = sum_a pi(a|s) Q(s, a) is exact. Continuous: [state, horizon(gamma), action] -> scalar,
    evaluated for every (K, gamma), where horizon(gamma) = symlog(1 / (1 - gamma)). The C members
    have independent weights but run as one batched network.

    Built as ``NCritics(state_dim, action_dim, discrete, gammas, num_critics)`` (see
    ``actor_critic.py``); the ensemble size C comes from ``Agent.num_critics``, so set it there.

    Args:
        n_layers: hidden layers per member (``n_layers=2`` gives three Linear layers).
        activation: an ``activation_switch`` name.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        discrete: bool,
        gammas: Sequence[float],
        num_critics: int,
        d_hidden: int = 256,
        n_layers: int = 2,
        dropout_p: float = 0.0,
        activation: str = "leaky_relu",
    ):
        super().__init__(state_dim, action_dim, discrete, gammas, num_critics)
        d_in = state_dim if discrete else state_dim + 1 + action_dim
        d_out = self.num_gammas * action_dim if discrete else 1
        self.net = EnsembleMLP(num_critics, d_in, d_hidden, n_layers, d_out, activation, dropout_p)

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        K, B, L, G, A = actions.shape
        if self.discrete:
            q_all = self._run_ensemble(self.net, state).float()  # (C, B, L, G * A)
            q_all = q_all.unflatten(-1, (G, A)).permute(1, 2, 0, 3, 4)  # (B, L, C, G, A)
            q = torch.einsum("blcga,kblga->kblcg", q_all, actions.float()).unsqueeze(-1)
        else:
            out = self._run_ensemble(
                self.net, self._state_action_input(state, actions)
            ).float()  # (C, K, B, L, G, 1)
            q = out.permute(1, 2, 3, 0, 4, 5)
        assert q.shape == (K, B, L, self.num_critics, G, 1)
        return q


@gin.configurable(module="amago_pl.nets.actor_critic")  # the original's gin path, see module doc
class NCriticsTwoHot(BaseCriticHead):
    """Ensemble of classification critics: a categorical over ``output_bins`` return bins.

    Bins are evenly spaced in symlog space (``use_symlog``), so one network covers returns from
    ~0 to ~1e5 without PopArt. Inputs are [state, horizon(gamma), action] for both discrete
    (one-hot actions) and continuous spaces. Bounds are in reward_multiplier-scaled units.
    The value is the expectation over the bins (mapped back with symexp when ``use_symlog``); the
    training labels are two-hot or HL-Gauss distributions of the TD target. The default critic of
    ``MultiTaskAgent``.

    Args:
        min_return: lowest representable return, in reward_multiplier-scaled units; targets
            below it are clamped. None uses -1e5 and warns.
        max_return: highest representable return, in scaled units. None uses 1e5 and warns.
        output_bins: number of bins P of the categorical.
        use_symlog: space the bins evenly in symlog(return) rather than in return.
        label_type: "twohot" (mass split between the two neighbouring bins) or "hlgauss" (a
            Gaussian integrated over the bins).
        sigma: HL-Gauss standard deviation, in units of the bin width; used only when
            ``label_type="hlgauss"``.
        init_value: if set, every critic starts out predicting this return (scaled units) with
            high confidence; None keeps the default initialisation.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        discrete: bool,
        gammas: Sequence[float],
        num_critics: int,
        d_hidden: int = 256,
        n_layers: int = 2,
        dropout_p: float = 0.0,
        activation: str = "leaky_relu",
        min_return: float | None = None,
        max_return: float | None = None,
        output_bins: int = 128,
        use_symlog: bool = True,
        label_type: str = "twohot",
        sigma: float = 0.75,
        init_value: float | None = None,
    ):
        super().__init__(state_dim, action_dim, discrete, gammas, num_critics)
        if min_return is None or max_return is None:
            warnings.warn(
                "NCriticsTwoHot.min_return/max_return are unset; using +-1e5 (scaled return units). "
                "Tighter bounds give finer value resolution.",
                stacklevel=2,
            )
        if label_type not in ("twohot", "hlgauss"):
            raise ValueError(f"label_type must be 'twohot' or 'hlgauss', got {label_type!r}")
        self.min_return = -1e5 if min_return is None else min_return
        self.max_return = 1e5 if max_return is None else max_return
        self.output_bins = output_bins
        self.use_symlog = use_symlog
        self.label_type = label_type
        self.sigma = sigma
        lo, hi = torch.tensor(self.min_return), torch.tensor(self.max_return)
        if use_symlog:
            lo, hi = symlog(lo), symlog(hi)
        self.register_buffer("bins", torch.linspace(float(lo), float(hi), output_bins))  # (P,)
        self.net = EnsembleMLP(
            num_critics, state_dim + 1 + action_dim, d_hidden, n_layers, output_bins, activation, dropout_p
        )
        if init_value is not None:
            # Start every critic at a confident prediction of init_value.
            last = self.net.net[-1]
            nn.init.zeros_(last.weight)
            with torch.no_grad():
                last.bias.copy_(
                    torch.log(self.raw_vals_to_labels(torch.tensor([init_value])) + 1e-3).expand_as(last.bias)
                )

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        K, B, L, G, A = actions.shape
        out = self._run_ensemble(
            self.net, self._state_action_input(state, actions)
        ).float()  # (C, K, B, L, G, P)
        logits = out.permute(1, 2, 3, 0, 4, 5)
        assert logits.shape == (K, B, L, self.num_critics, G, self.output_bins)
        return logits

    def values(self, out: torch.Tensor) -> torch.Tensor:
        return self.bin_dist_to_raw_vals(out)

    def bin_dist_to_raw_vals(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., P) logits -> (..., 1) expected value in return units."""
        expected = (F.softmax(logits.float(), dim=-1) * self.bins).sum(-1, keepdim=True)
        return symexp(expected) if self.use_symlog else expected

    def raw_vals_to_labels(self, values: torch.Tensor) -> torch.Tensor:
        """(..., 1) returns -> (..., P) target probabilities over the bins."""
        x = values.float()
        x = symlog(x) if self.use_symlog else x
        x = x.clamp(self.bins[0], self.bins[-1])
        if self.label_type == "twohot":
            # Split the mass between the two neighbouring bins, linearly in (symlog) value.
            upper = torch.searchsorted(self.bins, x.contiguous(), right=True).clamp(1, self.output_bins - 1)
            lower = upper - 1
            b_lo, b_hi = self.bins[lower], self.bins[upper]
            w_hi = ((x - b_lo) / (b_hi - b_lo)).clamp(0.0, 1.0)
            labels = torch.zeros(*x.shape[:-1], self.output_bins, device=x.device)
            labels.scatter_add_(-1, lower, 1.0 - w_hi)
            labels.scatter_add_(-1, upper, w_hi)
            return labels
        # HL-Gauss (Imani & White 2018; Farebrother et al. 2024): a Gaussian of std sigma * bin width,
        # integrated over each bin.
        width = self.bins[1] - self.bins[0]
        edges = torch.cat((self.bins - width / 2, self.bins[-1:] + width / 2))  # (P + 1,)
        cdf = torch.special.ndtr((edges - x) / (self.sigma * width))  # (..., P + 1)
        mass = cdf[..., 1:] - cdf[..., :-1]
        return mass / mass.sum(-1, keepdim=True).clamp_min(1e-8)
