"""The original's builtin benchmark envs (amago/envs/builtin/*.py at 2d85600) against their real
packages (the envs-extra extra): gymnasium's env checker and one tiny training epoch each; and
the clear failures of the two that cannot be installed from PyPI (Procgen, Alchemy)."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from amago_pl.envs import LOG_METRIC_PREFIX, AMAGOEnv, make_builtin_env
from tests.porting.env_adapter_helpers import VectorSlot, tiny_epoch, xland_benchmark

pytestmark = pytest.mark.integration
CI_PYTHON = (3, 11)  # every envs-extra package has a wheel for it: nothing may skip there


def need(module: str) -> None:
    """Skip when ``module`` is missing on a Python other than CI's; fail on CI's Python."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        if sys.version_info[:2] == CI_PYTHON:
            pytest.fail(f"`{module}` is missing: install amago_pl[envs-extra] ({e})")
        pytest.skip(
            f"`{module}` is not installed: amago_pl[envs-extra] may have no wheel for Python {sys.version}"
        )


def check(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's advice about unbounded Box spaces etc.
        check_env(env, skip_render_check=True)


def test_babyai(tmp_path):
    need("minigrid")
    need("cv2")
    from amago_pl.envs.builtin.babyai import ALL_BABYAI_TASKS, BabyAIAMAGOEnv, MultitaskMetaBabyAI

    assert "BabyAI-GoToRedBall-v0" in ALL_BABYAI_TASKS and not any("BossLevel" in t for t in ALL_BABYAI_TASKS)
    tasks = ["BabyAI-GoToRedBall-v0", "BabyAI-OpenDoor-v0"]
    for kind, side in (("partial-grid", 7), ("full-image", 63)):
        env = BabyAIAMAGOEnv(MultitaskMetaBabyAI(tasks, k_episodes=2, observation_type=kind))
        check(env)
        check(env.unwrapped)
        obs, _ = env.reset(seed=0)
        assert obs["image"].shape == (side, side, 3) and env.env_name in ("GoToRedBall-v0", "OpenDoor-v0")
        # "go to the red ball" -> 2 + the word's index in WORDS; "pick/open ..." likewise.
        words = MultitaskMetaBabyAI.WORDS
        assert obs["mission"][0] in (words.index("go") + 2, words.index("open") + 2)
        assert obs["extra"][-1] == pytest.approx(1 / 2)
    tiny_epoch(tmp_path, lambda: BabyAIAMAGOEnv(MultitaskMetaBabyAI(tasks, k_episodes=2)))


def test_half_cheetah_meta_velocity(tmp_path):
    need("mujoco")
    from amago_pl.envs.builtin.half_cheetah_v4_vel import HalfCheetahV4_MetaVelocity

    env = HalfCheetahV4_MetaVelocity(task_min_velocity=1.0, task_max_velocity=2.0)
    check(env)
    check(AMAGOEnv(env))
    env.reset(seed=3)
    target = env.target_velocity
    assert 1.0 <= target <= 2.0
    env.reset(seed=3)
    assert env.target_velocity == target  # the task comes from the seeded np_random
    action = np.full(6, 0.5, dtype=np.float32)
    _, reward, *_, info = env.step(action)
    # VariBAD's reward: -|v - target| - 0.05 * |a|^2 (half HalfCheetah-v4's control cost).
    expected = -abs(info["x_velocity"] - target) - 0.05 * float(np.sum(action**2))
    assert reward == pytest.approx(expected)
    tiny_epoch(tmp_path, lambda: make_builtin_env("half_cheetah_vel"))


def test_metaworld(tmp_path):
    need("metaworld")
    from amago_pl.envs.builtin.metaworld_ml import Metaworld

    with pytest.warns(UserWarning, match="reach-v3"):
        env = Metaworld("reach-v2", "train", k_episodes=2)  # the original's default task name
    assert env.env_name == "reach-v3" and env.observation_space["observation"].shape == (40,)
    check(env)
    check(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs["observation"][-1] == 1.0  # first step of an attempt
    obs, *_ = env.step(np.zeros(4, dtype=np.float32))
    assert obs["observation"][-1] == 0.0
    tiny_epoch(tmp_path, lambda: Metaworld("reach-v3", "train", k_episodes=2))


def test_ale(tmp_path):
    need("ale_py")
    need("cv2")
    from amago_pl.envs.builtin.ale_retro import ALE, ALEAction, AtariAMAGOWrapper, AtariGame

    # Buttons -> ALE's full action set; opposite directions cancel.
    assert ALEAction(1, 0, 0, 1, 1).to_discrete() == 14  # up-right-fire
    assert ALEAction(1, 1, 1, 0, 0).to_discrete() == 4  # left
    assert ALEAction(0, 0, 0, 0, 0).to_discrete() == 0
    env = AtariAMAGOWrapper(AtariGame("Pong", time_limit=400))
    check(env)
    assert env.observation_space["observation"].shape == (3, 84, 84) and env.env_name == "Pong"
    gray = AtariGame("Pong", grayscale=True, channels_last=True, action_space="multibinary", time_limit=400)
    check(gray)
    assert gray.observation_space.shape == (84, 84, 1)
    multi = AtariAMAGOWrapper(ALE(["Pong", "Breakout"]))
    multi.reset(seed=1)
    assert multi.env_name in ("Pong", "Breakout")
    tiny_epoch(
        tmp_path,
        lambda: AtariAMAGOWrapper(AtariGame("Pong", time_limit=400)),
        tstep="cnn",
        tstep_kwargs={"channels_first": True},
    )


def test_retro(tmp_path):
    need("stable_retro")
    need("cv2")
    from amago_pl.envs.builtin.ale_retro import RetroAMAGOWrapper, RetroArcade
    from amago_pl.nets.policy_dists import Multibinary

    # Airstriker is the free ROM that stable-retro ships; one emulator per process, so the env
    # is closed before the next is made and the run uses async (one process per actor).
    games = {"Airstriker-Genesis-v0": ["Level1"]}
    env = RetroAMAGOWrapper(RetroArcade(games, time_limit_minutes=0.05))
    check(env)
    obs, _ = env.reset(seed=0)
    assert env.env_name == "Airstriker-Genesis-v0_Level1" and env.action_space.n == 12
    assert list(obs["observation"][:, 0, 0]) == RetroArcade.console_cabinets["Genesis"]  # border colour
    env.close()
    tiny_epoch(
        tmp_path,
        lambda: RetroAMAGOWrapper(RetroArcade(games, time_limit_minutes=0.05)),
        tstep="cnn",
        env_mode="async",
        tstep_kwargs={"channels_first": True},
        # Button presses: a Multibinary policy, trained by the filtered-BC term alone (not differentiable).
        extra_gin={
            "Actor.continuous_dist_type": Multibinary,
            "Agent.online_coeff": 0.0,
            "Agent.offline_coeff": 1.0,
        },
    )


def test_gymnax(tmp_path):
    need("gymnax")
    import gymnax

    from amago_pl.envs.builtin.gymnax_envs import GymnaxAMAGO, GymnaxCompatibility

    # CartPole: MemoryChain's gymnax space is Box(0, 2) but it emits -1, which the checker rejects.
    env, params = gymnax.make("CartPole-v1")
    check(VectorSlot(GymnaxCompatibility(env, num_envs=1, params=params)))
    venv = GymnaxCompatibility(env, num_envs=2, params=params, seed=0)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 4) and obs.dtype == np.float32
    for _ in range(200):  # always pushing left drops the pole within a few dozen steps
        obs, rew, term, trunc, infos = venv.step(np.zeros(2, dtype=np.int64))
        if (term | trunc).any():
            break
    done = term | trunc
    assert term.any() and infos["_final_obs"].tolist() == done.tolist()
    # SAME_STEP: the returned obs starts the next episode (CartPole resets within +-0.05), and
    # the last obs, past the 12-degree (0.2095 rad) pole limit or the 2.4 cart limit, is kept.
    i = int(np.flatnonzero(term)[0])
    last = infos["final_obs"][i]
    assert np.abs(obs[i]).max() <= 0.05
    assert abs(last[2]) > 0.2095 or abs(last[0]) > 2.4
    tiny_epoch(
        tmp_path,
        lambda: GymnaxAMAGO("CartPole-v1", parallel_envs=2, seed=0),
        env_mode="already_vectorized",
    )


def test_xland_minigrid(tmp_path):
    need("xminigrid")
    from amago_pl.envs.builtin.xland_minigrid import XLandMiniGridAMAGO, XLandMinigridVectorizedGym

    kwargs = dict(
        k_episodes=2, rooms=1, grid_size=9, ruleset_benchmark=xland_benchmark(), train_test_split_pct=0.5
    )
    one = XLandMinigridVectorizedGym(parallel_envs=1, **kwargs)
    check(VectorSlot(one))
    venv = XLandMiniGridAMAGO(one)
    assert venv.env_name == "XLandMiniGrid-custom-R1-9x9"
    assert set(venv.single_observation_space.spaces) == {"grid", "direction_done", "goal"}
    assert venv.suggested_max_seq_len == (venv.env.max_steps_per_episode + 1) * 2
    # Play one whole meta-episode: two inner episodes (each logs its return on the step after it
    # ends), then a new ruleset within the same step, with the last observation kept (SAME_STEP).
    one.reset(seed=0)
    logged: set[str] = set()
    for _ in range(venv.suggested_max_seq_len + 2):
        obs, _, term, trunc, infos = one.step(np.zeros(1, dtype=np.int64))
        logged |= {k for k in infos if k.startswith(LOG_METRIC_PREFIX) and infos[f"_{k}"][0]}
        if term[0]:
            break
    assert term[0] and trunc[0] and infos["_final_obs"][0]
    assert f"{LOG_METRIC_PREFIX}Ep 0 Return" in logged and f"{LOG_METRIC_PREFIX}Ep 1 Return" in logged
    assert one.single_observation_space.contains(infos["final_obs"][0])
    assert one.current_episode[0] == 0 and obs["direction_done"][0, -1] == 0
    tiny_epoch(
        tmp_path,
        lambda: XLandMiniGridAMAGO(XLandMinigridVectorizedGym(parallel_envs=2, **kwargs)),
        env_mode="already_vectorized",
    )


def test_xland_named_benchmarks_fail_with_what_to_do(tmp_path, monkeypatch):
    """The original's example 11 names a benchmark (``--benchmark small-1m``): with no copy on disk
    and no network, or a name xminigrid no longer registers, the error says what to do."""
    need("xminigrid")
    import urllib.request

    import xminigrid.benchmarks

    from amago_pl.envs.builtin.xland_minigrid import XLandMinigridVectorizedGym

    monkeypatch.setattr(xminigrid.benchmarks, "DATA_PATH", str(tmp_path))
    monkeypatch.setenv("XLAND_MINIGRID_DATA", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError, match=r"small-1m.*could not be downloaded.*XLAND_MINIGRID_DATA"):
        XLandMinigridVectorizedGym(parallel_envs=1, ruleset_benchmark="small-1m")
    with pytest.raises(ValueError, match=r"'trivial-1m' is not registered.*choose one of"):
        XLandMinigridVectorizedGym(parallel_envs=1, ruleset_benchmark="trivial-1m")


def test_popgym_multidomain(tmp_path):
    need("popgym")
    from amago_pl.envs.builtin.popgym_multidomain import MultiDomainPOPGym, MultiDomainPOPGymAMAGO

    env = MultiDomainPOPGymAMAGO(warmup_episodes=1)
    check(env)
    check(env.unwrapped)
    inner = env.unwrapped
    assert isinstance(inner, MultiDomainPOPGym) and len(inner.name_to_env) == 27
    env.reset(seed=0)
    assert env.env_name == f"MultiDomainPOPGym-{inner.current_env_name}"
    # Warmup rewards are hidden from the return but shown in the last observation entry.
    total_shown, done = 0.0, False
    while not done and inner.current_episode == 0:
        obs, reward, done, _, _ = env.step(0)
        total_shown += reward
    assert total_shown == 0.0
    tiny_epoch(tmp_path, lambda: make_builtin_env("popgym_multidomain"))


@pytest.mark.parametrize(
    "build, missing, package",
    [
        (lambda m: m.MultitaskMetaBabyAI(["BabyAI-GoToRedBall-v0"]), "minigrid", "minigrid"),
        (lambda m: m.Metaworld("reach-v3", "train", 2), "metaworld", "metaworld"),
        (lambda m: m.AtariGame("Pong"), "ale_py", "ale-py"),
        (lambda m: m.RetroArcade({"Airstriker-Genesis-v0": ["Level1"]}), "retro", "stable-retro"),
        (lambda m: m.GymnaxAMAGO("CartPole-v1", 2), "gymnax", "gymnax"),
        (lambda m: m.XLandMinigridVectorizedGym(2), "xminigrid", "xminigrid"),
    ],
    ids=["babyai", "metaworld", "ale", "retro", "gymnax", "xland"],
)
def test_missing_packages_are_named(monkeypatch, build, missing, package):
    """Without its package, building an env says which package and which extra to install."""
    module = {
        "minigrid": "babyai",
        "metaworld": "metaworld_ml",
        "ale_py": "ale_retro",
        "retro": "ale_retro",
        "gymnax": "gymnax_envs",
        "xminigrid": "xland_minigrid",
    }[missing]
    mod = importlib.import_module(f"amago_pl.envs.builtin.{module}")
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in (missing, "stable_retro" if missing == "retro" else missing):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=f"`{package}`.*envs-extra"):
        build(mod)


@pytest.mark.parametrize(
    "module, names, package, why",
    [
        ("procgen_envs", ["ProcgenAMAGO", "TwoAttemptMTProcgen"], "procgen", "no wheel for Python 3.11"),
        ("alchemy", ["SymbolicAlchemy"], "dm_alchemy", "not published on PyPI"),
    ],
)
def test_unavailable_envs_fail_with_the_reason(module, names, package, why):
    mod = importlib.import_module(f"amago_pl.envs.builtin.{module}")
    for name in names:
        cls = getattr(mod, name)

        class Sub(cls):  # scripts that subclass the env still import
            pass

        for target in (cls, Sub):
            with pytest.raises(ImportError) as err:
                target("coinrun")
            assert f"`{package}`" in str(err.value) and why in str(err.value)
            assert "docs/envs.md" in str(err.value)


def test_registry_names_for_the_new_envs():
    from amago_pl.envs.builtin import list_builtin_envs

    names = list_builtin_envs()
    for n in ("babyai", "half_cheetah_vel", "popgym_multidomain", "metaworld:<name>", "ale:<name>"):
        assert n in names
    assert LOG_METRIC_PREFIX == "AMAGO_LOG_METRIC"
