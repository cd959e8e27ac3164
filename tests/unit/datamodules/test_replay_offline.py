"""write_offline_dataset: flat arrays -> store files, both layouts, splitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amago_pl.datamodules import TrajectoryStore, write_offline_dataset


def _episodes() -> list[dict]:
    """Three episodes with known content: lengths (transitions) 4, 2, 5; the 2nd is truncated."""
    rng = np.random.default_rng(0)
    eps = []
    for n, kind in [(4, "term"), (2, "trunc"), (5, "term")]:
        eps.append(
            dict(
                obs=rng.normal(size=(n + 1, 3)).astype(np.float32),
                goal=rng.integers(0, 9, size=(n + 1, 2)),
                actions=rng.integers(0, 6, size=n),
                rewards=rng.normal(size=n).astype(np.float32),
                kind=kind,
            )
        )
    return eps


def _check(store: TrajectoryStore, eps: list[dict], num_actions: int, protected: bool = True) -> None:
    files = store.files(include_protected=True)
    assert len(store.files(include_protected=False)) == (0 if protected else len(files))
    trajs = sorted((store.load(p) for p in files), key=lambda t: len(t))
    for ep, t in zip(sorted(eps, key=lambda e: len(e["rewards"])), trajs):
        n = len(ep["rewards"])
        np.testing.assert_array_equal(t.obs["observation"], ep["obs"])
        np.testing.assert_array_equal(t.obs["goal"], ep["goal"])
        assert t.actions.dtype == np.int64 and t.action_is_index
        np.testing.assert_array_equal(t.actions[:, 0], ep["actions"])
        np.testing.assert_array_equal(t.rews, ep["rewards"])
        assert t.dones.tolist() == [False] * (n - 1) + [ep["kind"] == "term"]
        np.testing.assert_array_equal(t.time_idxs, np.arange(n + 1))
        assert t.rl2s.shape == (n + 1, 1 + num_actions) and (t.rl2s[0] == 0).all()
        np.testing.assert_array_equal(t.rl2s[1:, 0], ep["rewards"])
        np.testing.assert_array_equal(t.rl2s[1:, 1:], t.action_rep())


def test_observation_rows_layout_round_trip(tmp_path: Path) -> None:
    eps = _episodes()
    # every observation incl. the last of each episode; step values on last rows are ignored
    obs = np.concatenate([e["obs"] for e in eps])
    goal = np.concatenate([e["goal"] for e in eps])
    pad = lambda x, v: np.concatenate([x, [v]])  # noqa: E731
    actions = np.concatenate([pad(e["actions"], 0) for e in eps])
    rewards = np.concatenate([pad(e["rewards"], 0.0) for e in eps])
    term = np.concatenate(
        [
            pad(np.arange(len(e["rewards"])) == len(e["rewards"]) - 1, True) & (e["kind"] == "term")
            for e in eps
        ]
    )
    trunc = np.concatenate(
        [
            pad(np.arange(len(e["rewards"])) == len(e["rewards"]) - 1, False) & (e["kind"] == "trunc")
            for e in eps
        ]
    )
    store = TrajectoryStore(tmp_path / "buffer")
    n = write_offline_dataset(
        store, {"observation": obs, "goal": goal}, actions, rewards, term, trunc, discrete=6
    )
    assert n == 3
    _check(store, eps, num_actions=6)
    # the same data delimited by episode_starts instead of flags
    starts = np.concatenate([np.arange(len(e["obs"])) == 0 for e in eps])
    store2 = TrajectoryStore(tmp_path / "buffer2")
    no_flags = np.zeros_like(term)
    flags = term & ~np.roll(starts, -1)  # terminations stay on the last transition rows
    n2 = write_offline_dataset(
        store2,
        {"observation": obs, "goal": goal},
        actions,
        rewards,
        flags,
        no_flags,
        episode_starts=starts,
        discrete=6,
    )
    assert n2 == 3
    _check(store2, eps, num_actions=6)


def test_transition_rows_layout_with_next_observations(tmp_path: Path) -> None:
    eps = _episodes()
    obs = np.concatenate([e["obs"][:-1] for e in eps])
    next_obs = np.concatenate([e["obs"][1:] for e in eps])
    goal = np.concatenate([e["goal"][:-1] for e in eps])
    next_goal = np.concatenate([e["goal"][1:] for e in eps])
    last = lambda e: np.arange(len(e["rewards"])) == len(e["rewards"]) - 1  # noqa: E731
    term = np.concatenate([last(e) & (e["kind"] == "term") for e in eps])
    trunc = np.concatenate([last(e) & (e["kind"] == "trunc") for e in eps])
    n = write_offline_dataset(
        tmp_path / "buffer",
        {"observation": obs, "goal": goal},
        np.concatenate([e["actions"] for e in eps]),
        np.concatenate([e["rewards"] for e in eps]),
        term,
        trunc,
        protected=False,
        discrete=6,
        next_observations={"observation": next_obs, "goal": next_goal},
    )
    assert n == 3
    _check(TrajectoryStore(tmp_path / "buffer"), eps, num_actions=6, protected=False)


def test_continuous_actions_and_splitting(tmp_path: Path) -> None:
    T = 11  # observations of one terminated episode
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(T, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(T, 3)).astype(np.float32)
    rewards = np.arange(T, dtype=np.float32)
    term = np.zeros(T, bool)
    term[T - 2] = True
    store = TrajectoryStore(tmp_path / "buffer")
    n = write_offline_dataset(store, obs, actions, rewards, term, np.zeros(T, bool), traj_save_len=4)
    assert n == 3  # 10 transitions -> 4 + 4 + 2
    pieces = [store.load(p) for p in store.files()]
    assert [len(p) for p in pieces] == [4, 4, 2]
    for a, b in zip(pieces, pieces[1:]):
        np.testing.assert_array_equal(a.obs["observation"][-1], b.obs["observation"][0])
    assert pieces[0].actions.dtype == np.float32 and not pieces[0].action_is_index
    np.testing.assert_array_equal(np.concatenate([p.rews for p in pieces]), rewards[:-1])
    assert pieces[-1].time_idxs.tolist() == [8, 9, 10] and pieces[-1].dones[-1]


def test_rejects_mismatched_lengths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rows"):
        write_offline_dataset(
            tmp_path, np.zeros((5, 2)), np.zeros(4, np.int64), np.zeros(5), np.zeros(5), np.zeros(5)
        )
