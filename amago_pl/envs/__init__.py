"""Envs: the ``AMAGOEnv`` wrapper, parallel envs, exploration and builtin envs (see
docs/architecture.md, "Envs")."""

from amago_pl.envs import builtin
from amago_pl.envs.action_spaces import ActionAdapter
from amago_pl.envs.already_vectorized import AMAGOVectorEnv, VectorizedParallelEnvs
from amago_pl.envs.amago_env import (
    AMAGO_ENV_LOG_PREFIX,
    LOG_METRIC_PREFIX,
    AMAGOEnv,
    EnvCreator,
    ReturnHistory,
    SequenceWrapper,
    SpecialMetricHistory,
)
from amago_pl.envs.async_envs import AsyncParallelEnvs
from amago_pl.envs.builtin import make_builtin_env
from amago_pl.envs.exploration import (
    BilevelEpsilonGreedy,
    EpsilonGreedy,
    ExplorationWrapper,
    get_exploration_cls,
    list_registered_explorations,
    register_exploration,
)
from amago_pl.envs.parallel import MODES, make_parallel_envs
from amago_pl.envs.vector import ParallelEnvs, SyncParallelEnvs

__all__ = [
    "AMAGO_ENV_LOG_PREFIX",
    "LOG_METRIC_PREFIX",
    "MODES",
    "AMAGOEnv",
    "AMAGOVectorEnv",
    "ActionAdapter",
    "AsyncParallelEnvs",
    "BilevelEpsilonGreedy",
    "EnvCreator",
    "EpsilonGreedy",
    "ExplorationWrapper",
    "ParallelEnvs",
    "ReturnHistory",
    "SequenceWrapper",
    "SpecialMetricHistory",
    "SyncParallelEnvs",
    "VectorizedParallelEnvs",
    "builtin",
    "get_exploration_cls",
    "list_registered_explorations",
    "make_builtin_env",
    "make_parallel_envs",
    "register_exploration",
]
