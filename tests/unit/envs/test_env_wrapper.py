"""AMAGOEnv: space normalisation, action conversion, errors and env names."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from amago_pl.envs import LOG_METRIC_PREFIX, AMAGOEnv
from amago_pl.testing.envs import ScriptedEnv


class SpaceEnv(gym.Env):
    """Records the env-space action it receives; obs is a constant Box(2)."""

    def __init__(self, action_space: spaces.Space, obs_space: spaces.Space | None = None):
        self.action_space = action_space
        self.observation_space = obs_space or spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.received = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)  # so check_env's same-seed resets match
        return self.observation_space.sample(), {}

    def step(self, action):
        self.received = action
        return self.observation_space.sample(), 1.5, False, False, {}


def test_log_metric_prefix():
    assert LOG_METRIC_PREFIX == "AMAGO_LOG_METRIC"


def test_discrete_300_actions():
    inner = SpaceEnv(spaces.Discrete(300))
    env = AMAGOEnv(inner)
    assert env.discrete and env.action_dim == 300
    assert env.action_space == spaces.Discrete(300)
    assert env.rl2_space.shape == (301,) and env.rl2_space.dtype == np.float32
    assert np.all(np.isinf(env.rl2_space.low)) and np.all(np.isinf(env.rl2_space.high))
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.int64(299))
    assert inner.received == 299 and reward == 1.5
    assert set(obs) == {"observation"}
    rep = env.action_rep(299)
    assert rep.shape == (300,) and rep.dtype == np.float32 and rep[299] == 1.0 and rep.sum() == 1.0
    with pytest.raises(ValueError, match="out of range"):
        env.step(300)


def test_discrete_with_start_offset():
    inner = SpaceEnv(spaces.Discrete(4, start=-2))
    env = AMAGOEnv(inner)
    env.reset(seed=0)
    env.step(0)
    assert inner.received == -2
    assert env.action_rep(0)[0] == 1.0


def test_multibinary():
    inner = SpaceEnv(spaces.MultiBinary(4))
    env = AMAGOEnv(inner)
    assert not env.discrete and env.action_dim == 4
    env.reset(seed=0)
    env.step(np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32))
    np.testing.assert_array_equal(inner.received, [1, 0, 1, 0])
    assert inner.received.dtype == inner.action_space.dtype
    np.testing.assert_array_equal(env.action_rep(np.array([1, 0, 0, 1])), np.array([1, 0, 0, 1], np.float32))


def test_box_rescaling_exact_at_bounds():
    low = np.array([-0.3, 10.0, -7.1], dtype=np.float32)
    high = np.array([0.7, 20.0, 3.3], dtype=np.float32)
    inner = SpaceEnv(spaces.Box(low, high, dtype=np.float32))
    env = AMAGOEnv(inner)
    assert env.action_space == spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
    assert env.action_dim == 3 and not env.discrete
    env.reset(seed=0)
    env.step(-np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(inner.received, low)
    env.step(np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(inner.received, high)
    env.step(np.zeros(3, dtype=np.float32))
    np.testing.assert_allclose(inner.received, (low + high) / 2, rtol=1e-6)
    env.step(np.array([5.0, -5.0, 0.5], dtype=np.float32))  # out of range -> clipped first
    np.testing.assert_allclose(
        inner.received, [high[0], low[1], low[2] + 0.75 * (high[2] - low[2])], rtol=1e-6
    )
    np.testing.assert_array_equal(
        env.action_rep(np.array([5.0, -5.0, 0.5])), np.array([1, -1, 0.5], np.float32)
    )


def test_box_2d_action_is_flattened():
    inner = SpaceEnv(spaces.Box(0.0, 1.0, (2, 2), dtype=np.float32))
    env = AMAGOEnv(inner)
    assert env.action_space.shape == (4,)
    env.reset(seed=0)
    env.step(np.ones(4, dtype=np.float32))
    assert inner.received.shape == (2, 2) and np.all(inner.received == 1.0)


@pytest.mark.parametrize(
    "space, name",
    [
        (spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))), "Tuple"),
        (spaces.Dict({"a": spaces.Discrete(2)}), "Dict"),
        (spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
    ],
)
def test_unsupported_action_spaces(space, name):
    with pytest.raises(ValueError, match=name):
        AMAGOEnv(SpaceEnv(space))


def test_infinite_box_raises():
    space = spaces.Box(-np.inf, np.inf, (2,), dtype=np.float32)
    with pytest.raises(ValueError, match="non-finite bounds") as err:
        AMAGOEnv(SpaceEnv(space))
    assert "Box" in str(err.value)


def test_dict_observations_pass_through():
    obs_space = spaces.Dict({"img": spaces.Box(0, 255, (3, 3), np.uint8), "v": spaces.Box(-1, 1, (2,))})
    env = AMAGOEnv(SpaceEnv(spaces.Discrete(2), obs_space))
    assert env.observation_space is obs_space
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"img", "v"}


def test_env_name_default_and_dynamic():
    assert AMAGOEnv(gym.make("CartPole-v1")).env_name == "CartPole-v1"
    assert AMAGOEnv(SpaceEnv(spaces.Discrete(2))).env_name == "SpaceEnv"
    assert AMAGOEnv(SpaceEnv(spaces.Discrete(2)), env_name="custom").env_name == "custom"
    # A property of the inner env, read through wrappers with get_wrapper_attr, per reset.
    env = AMAGOEnv(gym.wrappers.RecordEpisodeStatistics(ScriptedEnv(name_by_episode=True)))
    env.reset(seed=0)
    assert env.env_name == "scripted-even"
    env.reset()
    assert env.env_name == "scripted-odd"


@pytest.mark.parametrize(
    "make",
    [
        lambda: gym.make("CartPole-v1"),
        lambda: gym.make("Pendulum-v1"),
        lambda: ScriptedEnv(box_actions=True),
        lambda: SpaceEnv(spaces.MultiBinary(3)),
    ],
)
def test_check_env_passes(make):
    check_env(AMAGOEnv(make()), skip_render_check=True)
