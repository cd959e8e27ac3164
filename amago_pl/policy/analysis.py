"""What a policy step looked like, for analysis: the acting head's distribution and values per gamma.

The agent trains one actor head and one critic head per discount factor (``Agent.gammas_list``; the
last one acts, amago/agent.py:85 at 2d85600). A step with ``return_details=True`` records the
trajectory encoder's output and the actor's distribution (``step.Captured``) and reads them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from amago_pl.policy.step import Captured


@dataclass
class PolicyDetails:
    """One ``Policy.act`` call, per env. N envs, G gammas, A action width.

    Attributes:
        gammas: (G,) the discount factors, in head order (the last one acts).
        actions: the policy's actions before conversion to the env's format ((N,) or (N, A)).
        probs: (N, A) action probabilities of the acting head (Discrete), else None.
        mean, std: (N, A) mean and standard deviation of the acting head (continuous; ``std`` None
            when the distribution has no closed form for it), else None.
        values: (N, G) the critics' value estimate per gamma, ensemble mean, in the env's reward
            units (PopArt undone, ``reward_multiplier`` divided out): V(s) = sum_a pi(a|s) Q(s, a) for
            Discrete, Q(s, greedy action) otherwise. None if the agent has no critics to ask.
        distribution: the actor's torch distribution over every head, batch shape (N, 1, G).
    """

    gammas: np.ndarray
    actions: np.ndarray
    probs: np.ndarray | None
    mean: np.ndarray | None
    std: np.ndarray | None
    values: np.ndarray | None
    distribution: Any


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def _mean_std(dist: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    try:
        mean = _numpy(dist.mean[:, -1, -1])  # (N, A) at the acting gamma
    except (NotImplementedError, AttributeError):
        mean = None
    base = getattr(dist, "base_dist", dist)
    try:
        std = _numpy(base.stddev[:, -1, -1])  # (N, A); of the pre-squash Gaussian for TanhGaussian
    except (NotImplementedError, AttributeError):
        std = None
    return mean, std


@torch.no_grad()
def values_per_gamma(agent: Any, captured: Captured) -> np.ndarray | None:
    """(N, G) value estimates from the captured state and distribution (see ``PolicyDetails``)."""
    critics = getattr(agent, "critics", None)
    if critics is None or captured.state is None or captured.dist is None:
        return None
    dist = captured.dist
    if agent.discrete:
        action = dist.probs  # (N, 1, G, A): the critic dots Q(s, .) with it, i.e. E_pi Q
    else:
        action = agent.policy_dist.env_action(dist, False)  # (N, 1, G, A) greedy
    out = critics(captured.state.float(), action.float().unsqueeze(0))  # (1, N, 1, C, G, P)
    raw = critics.values(out).mean(3)  # (1, N, 1, G, 1) ensemble mean
    scaled = agent.denormalize_values(raw)  # scaled-return units
    return _numpy(scaled[0, :, 0, :, 0] / float(agent.reward_multiplier))  # (N, G)


def details_of(agent: Any, captured: Captured | None, actions: np.ndarray) -> PolicyDetails:
    captured = captured or Captured()
    dist = captured.dist
    probs = mean = std = None
    if dist is not None:
        if agent.discrete and hasattr(dist, "probs"):
            probs = _numpy(dist.probs[:, -1, -1])  # (N, A)
        else:
            mean, std = _mean_std(dist)
    return PolicyDetails(
        gammas=np.asarray(getattr(agent, "gammas_list", []), dtype=np.float64),
        actions=actions,
        probs=probs,
        mean=mean,
        std=std,
        values=values_per_gamma(agent, captured),
        distribution=dist,
    )
