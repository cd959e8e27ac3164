"""Lightning callbacks: data collection, evaluation, config logging, latest-policy sync, summary,
and the atomic checkpoint writer."""

from amago_pl.callbacks.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError
from amago_pl.callbacks.config_logging import ConfigLoggingCallback, gin_bindings_as_dict, write_config_txt
from amago_pl.callbacks.evaluation import EvalCallback
from amago_pl.callbacks.interact import EpisodeStat, interact, summarize_episodes
from amago_pl.callbacks.latest_policy import LatestPolicyCallback, load_latest_policy, save_latest_policy
from amago_pl.callbacks.rollout import RolloutCallback
from amago_pl.callbacks.summary import SummaryCallback, plot_learning_curve

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointWriteError",
    "ConfigLoggingCallback",
    "EpisodeStat",
    "EvalCallback",
    "LatestPolicyCallback",
    "RolloutCallback",
    "SummaryCallback",
    "gin_bindings_as_dict",
    "interact",
    "load_latest_policy",
    "plot_learning_curve",
    "save_latest_policy",
    "summarize_episodes",
    "write_config_txt",
]
