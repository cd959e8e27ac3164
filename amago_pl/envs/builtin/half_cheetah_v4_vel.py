"""HalfCheetah velocity meta-RL task on gymnasium's MuJoCo ``HalfCheetah-v4``.

Needs ``mujoco`` (``pip install amago_pl[envs-extra]``; ``gymnasium[mujoco]`` also brings it).
The module imports without it; constructing an env raises an ImportError naming the package.

The hidden task is a target forward velocity drawn at every reset; the reward is
``-velocity_reward_weight * |x_velocity - target| - ctrl_cost``, following the VariBAD version
of the task (varibad/environments/mujoco/half_cheetah_vel.py) as the original does
(amago/envs/builtin/half_cheetah_v4_vel.py at 2d85600). Episodes are cut at 1000 steps by the env
itself because it is built directly rather than through ``gymnasium.make`` (no TimeLimit wrapper).

Difference from the original: the target is drawn from the env's own ``np_random`` (seeded by
``reset(seed=...)``, which every parallel actor gets a different one of) instead of Python's
global ``random``, so seeded runs repeat and gymnasium's env checker passes. Override
``sample_target_velocity`` to change the task distribution, as in the original.
"""

from __future__ import annotations

from typing import Any

import gin
import numpy as np

from amago_pl.envs.amago_env import LOG_METRIC_PREFIX

EXTRA_HINT = "pip install amago_pl[envs-extra]"
EPISODE_STEPS = 1000  # HalfCheetah-v4's registered time limit

try:
    # gymnasium raises its DependencyNotInstalled (not an ImportError) when mujoco is missing.
    from gymnasium.envs.mujoco.half_cheetah_v4 import HalfCheetahEnv as _HalfCheetahBase
except Exception as _err:  # noqa: BLE001
    _IMPORT_ERROR: Exception | None = _err

    class _HalfCheetahBase:  # type: ignore[no-redef]
        """Stands in for gymnasium's HalfCheetahEnv so subclasses still import without mujoco."""

        def __init__(self, *args: Any, **kwargs: Any):
            raise ImportError(
                f"HalfCheetah-v4 needs the `mujoco` package ({_IMPORT_ERROR}): `{EXTRA_HINT}`"
            ) from _IMPORT_ERROR
else:
    _IMPORT_ERROR = None


class HalfCheetahV4LogVelocity(_HalfCheetahBase):
    """HalfCheetah-v4 that ends episodes after 1000 steps and logs velocity metrics.

    At the end of an episode ``info`` holds ``AMAGO_LOG_METRIC Mean Velocity``, ``... Max
    Velocity`` and ``... Avg. Last 50 Timestep Velocity`` (logged by amago_pl like any
    ``LOG_METRIC_PREFIX`` key). Keywords go to gymnasium's ``HalfCheetahEnv``.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._velocity_history: list[float] = []
        self.step_count = 0

    def velocity_reward_term(self, x_velocity: float) -> float:
        """The forward term of the reward; the plain task rewards speed."""
        return self._forward_reward_weight * x_velocity

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs, info = super().reset(seed=seed, options=options)
        self._velocity_history = []
        self.step_count = 0
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        # The same physics step as gymnasium's HalfCheetah-v4.step, with the forward term
        # replaced by velocity_reward_term so subclasses can change the task.
        x_before = float(self.data.qpos[0])
        self.do_simulation(action, self.frame_skip)
        x_after = float(self.data.qpos[0])
        x_velocity = (x_after - x_before) / self.dt
        ctrl_cost = float(self.control_cost(action))
        forward = float(self.velocity_reward_term(x_velocity))
        info: dict[str, Any] = {
            "x_position": x_after,
            "x_velocity": x_velocity,
            "reward_run": forward,
            "reward_ctrl": -ctrl_cost,
        }
        if self.render_mode == "human":
            self.render()
        self.step_count += 1
        self._velocity_history.append(x_velocity)
        truncated = self.step_count >= EPISODE_STEPS
        if truncated:
            v = np.asarray(self._velocity_history)
            info[f"{LOG_METRIC_PREFIX} Mean Velocity"] = float(v.mean())
            info[f"{LOG_METRIC_PREFIX} Max Velocity"] = float(v.max())
            info[f"{LOG_METRIC_PREFIX} Avg. Last 50 Timestep Velocity"] = float(v[-50:].mean())
        return self._get_obs(), forward - ctrl_cost, False, truncated, info


@gin.configurable
class HalfCheetahV4_MetaVelocity(HalfCheetahV4LogVelocity):
    """HalfCheetah-v4 where each episode asks for a hidden target velocity (meta-RL).

    Args:
        ctrl_cost_weight: half of HalfCheetah-v4's 0.1, as in the classic task.
        velocity_reward_weight: scale of the ``-|velocity - target|`` term.
        task_min_velocity: lower end of the uniform target distribution.
        task_max_velocity: upper end (the classic task uses 3; a policy trained to run as fast
            as possible exceeds 10).
        **kwargs: passed to gymnasium's ``HalfCheetahEnv`` (e.g. ``reset_noise_scale``).

    At the end of an episode ``info`` also holds ``AMAGO_LOG_METRIC Target Velocity Error at
    Final 50 Timesteps``. ``target_velocity`` is the current task.
    """

    def __init__(
        self,
        ctrl_cost_weight: float = 0.5 * 0.1,
        velocity_reward_weight: float = 1.0,
        task_min_velocity: float = 0.0,
        task_max_velocity: float = 3.0,
        **kwargs: Any,
    ):
        super().__init__(
            forward_reward_weight=velocity_reward_weight, ctrl_cost_weight=ctrl_cost_weight, **kwargs
        )
        self.task_min_velocity = task_min_velocity
        self.task_max_velocity = task_max_velocity
        self.target_velocity = self.sample_target_velocity()

    def velocity_reward_term(self, x_velocity: float) -> float:
        return -self._forward_reward_weight * abs(x_velocity - self.target_velocity)

    def sample_target_velocity(self) -> float:
        """Draw the next task; override to change the task distribution (e.g. a test split)."""
        return float(self.np_random.uniform(self.task_min_velocity, self.task_max_velocity))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs, info = super().reset(seed=seed, options=options)
        self.target_velocity = self.sample_target_velocity()
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        if terminated or truncated:
            achieved = info[f"{LOG_METRIC_PREFIX} Avg. Last 50 Timestep Velocity"]
            info[f"{LOG_METRIC_PREFIX} Target Velocity Error at Final 50 Timesteps"] = abs(
                self.target_velocity - achieved
            )
        return obs, reward, terminated, truncated, info
