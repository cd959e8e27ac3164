"""Builtin envs. The light ones need only gymnasium + numpy; POPGym and MiniGrid adapters import
their packages only when used (``pip install amago_pl[envs]``).

The env classes are gin-configurable: your env factory (or ``make_builtin_env``) builds them, and
every keyword it does not pass comes from gin (docs/configuration.md).
"""

from amago_pl.envs.builtin.mazerunner import MazeRunnerAMAGOEnv, MazeRunnerGymEnv
from amago_pl.envs.builtin.minigrid_envs import MiniGridAMAGO
from amago_pl.envs.builtin.popgym_envs import POPGym, POPGymAMAGO
from amago_pl.envs.builtin.registry import list_builtin_envs, make_builtin_env, register_builtin_env
from amago_pl.envs.builtin.tmaze import TMazeAltActive, TMazeAltPassive
from amago_pl.envs.builtin.toy_gym import MetaFrozenLake, RoomKeyDoor

__all__ = [
    "MazeRunnerAMAGOEnv",
    "MazeRunnerGymEnv",
    "MetaFrozenLake",
    "MiniGridAMAGO",
    "POPGym",
    "POPGymAMAGO",
    "RoomKeyDoor",
    "TMazeAltActive",
    "TMazeAltPassive",
    "list_builtin_envs",
    "make_builtin_env",
    "register_builtin_env",
]
