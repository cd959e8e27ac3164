"""The discount factors an Agent trains: ``Agent.gamma`` plus, by default, the ``Multigammas`` list.

AMAGO trains one critic and actor output per discount factor over the same sequence-model pass
(the multi-gamma update of Grigsby et al. 2024; ``amago/agent.py:85`` and ``:652-656`` at 2d85600).
The last factor is the one that acts. ``Multigammas`` keeps its gin name under
``amago_pl.modules.agent``, where it was defined.
"""

from __future__ import annotations

from collections.abc import Iterable

import gin


@gin.configurable(module="amago_pl.modules.agent")
class Multigammas:
    """Extra discount factors trained in parallel with ``Agent.gamma`` (amago/agent.py:85 at 2d85600).

    Used only when ``Agent.use_multigamma`` is True; ``Agent.gamma`` is always appended last, so the
    default run trains G = 7 discount factors. Continuous critics run once per gamma, so long lists
    cost more there than for discrete ones.

    Args:
        discrete: extra discount factors when the action space is Discrete.
        continuous: extra discount factors for every other action space.
    """

    def __init__(
        self,
        discrete: Iterable[float] = (0.1, 0.9, 0.95, 0.97, 0.99, 0.995),
        continuous: Iterable[float] = (0.1, 0.9, 0.95, 0.97, 0.99, 0.995),
    ):
        self.discrete = [float(g) for g in discrete]
        self.continuous = [float(g) for g in continuous]


def trained_gammas(gamma: float, discrete: bool, use_multigamma: bool) -> list[float]:
    """The G discount factors in output order: the ``Multigammas`` list for the action space's kind
    (if ``use_multigamma``), then ``gamma`` last."""
    extra = Multigammas()
    return [*((extra.discrete if discrete else extra.continuous) if use_multigamma else []), float(gamma)]
