"""Names for the builtin envs, so scripts and the CLI can say ``--env tmaze``.

``make_builtin_env(name, **kwargs)`` returns an ``AMAGOEnv``. Plain names map to builtin classes
(``list_builtin_envs()``); prefixed names build external envs: ``"popgym:<EnvName>"``,
``"minigrid:<env id>"`` and ``"gym:<gymnasium id>"``. ``kwargs`` go to the env's constructor.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym

from amago_pl.envs.amago_env import AMAGOEnv
from amago_pl.envs.builtin.mazerunner import MazeRunnerAMAGOEnv, MazeRunnerGymEnv
from amago_pl.envs.builtin.tmaze import TMazeAltActive, TMazeAltPassive
from amago_pl.envs.builtin.toy_gym import MetaFrozenLake, RoomKeyDoor

_BUILTIN: dict[str, Callable[..., AMAGOEnv]] = {}
_PREFIXED: dict[str, Callable[..., AMAGOEnv]] = {}


def register_builtin_env(name: str) -> Callable[[Callable[..., AMAGOEnv]], Callable[..., AMAGOEnv]]:
    """Decorator: ``make_builtin_env(name, **kw)`` calls the decorated factory. A name ending in
    ":" registers a prefix whose factory receives the rest of the name first."""

    def deco(factory: Callable[..., AMAGOEnv]) -> Callable[..., AMAGOEnv]:
        (_PREFIXED if name.endswith(":") else _BUILTIN)[name.rstrip(":")] = factory
        return factory

    return deco


def list_builtin_envs() -> list[str]:
    return sorted(_BUILTIN) + sorted(f"{p}:<name>" for p in _PREFIXED)


def make_builtin_env(name: str, **kwargs) -> AMAGOEnv:
    """Build a builtin env by name (see the module doc)."""
    if ":" in name:
        prefix, rest = name.split(":", 1)
        if prefix in _PREFIXED and rest:
            return _PREFIXED[prefix](rest, **kwargs)
    elif name in _BUILTIN:
        return _BUILTIN[name](**kwargs)
    raise ValueError(f"unknown builtin env {name!r}; choose one of {list_builtin_envs()}")


register_builtin_env("tmaze")(lambda **kw: AMAGOEnv(TMazeAltPassive(**kw)))
register_builtin_env("tmaze_passive")(lambda **kw: AMAGOEnv(TMazeAltPassive(**kw)))
register_builtin_env("tmaze_active")(lambda **kw: AMAGOEnv(TMazeAltActive(**kw)))
register_builtin_env("frozen_lake")(lambda **kw: AMAGOEnv(MetaFrozenLake(**kw)))
register_builtin_env("dark_key_door")(lambda **kw: AMAGOEnv(RoomKeyDoor(dark=True, **kw)))
register_builtin_env("key_door")(lambda **kw: AMAGOEnv(RoomKeyDoor(dark=False, **kw)))
register_builtin_env("mazerunner")(lambda **kw: AMAGOEnv(MazeRunnerGymEnv(**kw)))
register_builtin_env("mazerunner_goals")(lambda **kw: MazeRunnerAMAGOEnv(**kw))


@register_builtin_env("gym:")
def _gym(env_id: str, **kwargs) -> AMAGOEnv:
    return AMAGOEnv(gym.make(env_id, **kwargs))


@register_builtin_env("popgym:")
def _popgym(env_name: str, **kwargs) -> AMAGOEnv:
    from amago_pl.envs.builtin.popgym_envs import POPGymAMAGO

    return POPGymAMAGO(env_name, **kwargs)


@register_builtin_env("minigrid:")
def _minigrid(env_id: str, **kwargs) -> AMAGOEnv:
    from amago_pl.envs.builtin.minigrid_envs import MiniGridAMAGO

    return MiniGridAMAGO(env_id, **kwargs)


# The original's benchmark envs (docs/envs.md; their packages are in the envs-extra extra). The
# JAX envs (gymnax_envs, xland_minigrid) are vector envs for env_mode="already_vectorized" and are
# built from their modules instead.
@register_builtin_env("babyai")
def _babyai(**kwargs) -> AMAGOEnv:
    from amago_pl.envs.builtin.babyai import BabyAIAMAGOEnv, MultitaskMetaBabyAI, all_babyai_tasks

    kwargs.setdefault("task_names", all_babyai_tasks())
    return BabyAIAMAGOEnv(MultitaskMetaBabyAI(**kwargs))


@register_builtin_env("half_cheetah_vel")
def _half_cheetah_vel(**kwargs) -> AMAGOEnv:
    from amago_pl.envs.builtin.half_cheetah_v4_vel import HalfCheetahV4_MetaVelocity

    return AMAGOEnv(HalfCheetahV4_MetaVelocity(**kwargs), env_name="HalfCheetahV4Velocity")


@register_builtin_env("popgym_multidomain")
def _popgym_multidomain(**kwargs) -> AMAGOEnv:
    from amago_pl.envs.builtin.popgym_multidomain import MultiDomainPOPGymAMAGO

    return MultiDomainPOPGymAMAGO(**kwargs)


@register_builtin_env("metaworld:")
def _metaworld(benchmark_name: str, split: str = "train", k_episodes: int = 3) -> AMAGOEnv:
    from amago_pl.envs.builtin.metaworld_ml import Metaworld

    return Metaworld(benchmark_name, split, k_episodes)


@register_builtin_env("ale:")
def _ale(game: str, **kwargs) -> AMAGOEnv:
    from amago_pl.envs.builtin.ale_retro import AtariAMAGOWrapper, AtariGame

    return AtariAMAGOWrapper(AtariGame(game, **kwargs))
