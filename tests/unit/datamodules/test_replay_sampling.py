"""random_slice lengths and start distributions; collate padding, mask and immutability."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from replay_factories import assert_traj_equal, make_traj

from amago_pl.datamodules import collate_trajs, random_slice
from amago_pl.datamodules.sampling import slice_start_range

N, L = 20, 8  # transitions in the trajectory, max_seq_len


def _starts_and_lengths(mode: str, draws: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    traj = make_traj(N + 1)
    rng = np.random.default_rng(0)
    starts, lengths = [], []
    for _ in range(draws):
        w = random_slice(traj, L, mode, rng)
        starts.append(int(w.obs["t"][0, 0]))
        lengths.append(len(w))
        # the window is contiguous and aligned across fields
        assert len(w.rl2s) == len(w) + 1 == len(w.time_idxs)
        np.testing.assert_array_equal(w.time_idxs, np.arange(starts[-1], starts[-1] + len(w) + 1))
        np.testing.assert_array_equal(w.rews, traj.rews[starts[-1] : starts[-1] + len(w)])
    return np.array(starts), np.array(lengths)


def test_none_mode_always_full_length_uniform_start() -> None:
    starts, lengths = _starts_and_lengths("none")
    assert (lengths == L).all()
    assert starts.min() == 0 and starts.max() == N - L
    counts = np.bincount(starts, minlength=N - L + 1)
    assert counts.min() > 0.6 * counts.mean()  # roughly uniform over [0, N-L]


def test_left_mode_shortens_windows_at_the_start() -> None:
    starts, lengths = _starts_and_lengths("left")
    assert lengths.max() == L and lengths.min() == 1  # raw start -L+1 leaves one transition
    assert starts.max() == N - L
    # raw starts in [-L+1, 0] are clamped to 0: start 0 gets L of the N+L-1... draws
    p0 = (starts == 0).mean()
    assert p0 == pytest.approx(L / (N - L + L), abs=0.04)
    # every window that starts at 0 ends at most L transitions in; windows never pass the end
    assert ((starts + lengths) <= N).all()


def test_right_mode_shortens_windows_at_the_end() -> None:
    starts, lengths = _starts_and_lengths("right")
    assert starts.min() == 0 and starts.max() == N - 2
    assert lengths.min() == 2 and lengths.max() == L
    np.testing.assert_array_equal(lengths, np.minimum(L, N - starts))


def test_both_mode_shortens_on_both_sides() -> None:
    starts, lengths = _starts_and_lengths("both")
    assert starts.min() == 0 and starts.max() == N - 2
    assert lengths.min() == 1 and lengths.max() == L
    assert (starts == 0).mean() == pytest.approx(L / (N - 2 + L), abs=0.04)


@pytest.mark.parametrize("mode", ["none", "left", "right", "both"])
def test_short_trajectories_are_taken_whole(mode: str) -> None:
    traj = make_traj(L)  # L-1 transitions <= L
    assert random_slice(traj, L, mode, np.random.default_rng(0)) is traj


def test_start_ranges_match_the_table() -> None:
    assert slice_start_range(100, 10, "none") == (0, 90)
    assert slice_start_range(100, 10, "both") == (-9, 98)
    assert slice_start_range(100, 10, "left") == (-9, 90)
    assert slice_start_range(100, 10, "right") == (0, 98)
    with pytest.raises(ValueError, match="padded_sampling"):
        slice_start_range(100, 10, "middle")


def test_collate_pads_right_and_mask_marks_exactly_the_real_steps() -> None:
    trajs = [make_traj(T, traj_id=i, seed=i) for i, T in enumerate([9, 4, 1, 6])]
    batch = collate_trajs(trajs)
    B, Lmax = 4, 9
    assert batch.rl2s.shape == (B, Lmax, 5) and batch.rl2s.dtype == torch.float32
    assert batch.time_idxs.shape == (B, Lmax) and batch.time_idxs.dtype == torch.int64
    assert batch.rews.shape == (B, Lmax - 1) and batch.dones.dtype == torch.bool
    assert batch.actions.shape == (B, Lmax - 1, 4) and batch.actions.dtype == torch.float32
    assert batch.obs["img"].shape == (B, Lmax, 3, 4, 4) and batch.obs["img"].dtype == torch.uint8
    assert batch.mask.shape == (B, Lmax) and batch.mask.dtype == torch.bool
    for b, t in enumerate(trajs):
        T = len(t.rl2s)
        assert batch.mask[b].tolist() == [True] * T + [False] * (Lmax - T)
        assert batch.transition_mask[b].tolist() == [True] * (T - 1) + [False] * (Lmax - T)
        np.testing.assert_array_equal(batch.obs["t"][b, :T, 0].numpy(), np.arange(T))
        np.testing.assert_array_equal(batch.actions[b, : T - 1].numpy(), t.action_rep())
        np.testing.assert_array_equal(batch.rews[b, : T - 1].numpy(), t.rews)
        # padding is zeros everywhere
        assert (batch.rl2s[b, T:] == 0).all() and (batch.obs["img"][b, T:] == 0).all()
        assert (batch.actions[b, T - 1 :] == 0).all() and not batch.dones[b, T - 1 :].any()


def test_collate_never_mutates_inputs() -> None:
    trajs = [make_traj(T, traj_id=i, seed=i, num_actions=None) for i, T in enumerate([7, 3])]
    windows = [random_slice(t, 4, "both", np.random.default_rng(1)) for t in trajs]
    before = copy.deepcopy(windows)
    originals = copy.deepcopy(trajs)
    batch = collate_trajs(windows)
    batch.rl2s += 100.0  # writing into the batch must not reach the sources
    batch.actions += 100.0
    for t in batch.obs.values():
        t += 1
    for a, b in zip(windows, before):
        assert_traj_equal(a, b)
    for a, b in zip(trajs, originals):
        assert_traj_equal(a, b)
