"""Hindsight instruction relabeling for MazeRunner-style goal-conditioned envs.

The technique is AMAGO's (arXiv 2310.09971, Appendix B, Algorithm 1), shipped by the original as
an example (examples/13_mazerunner_relabeling.py:69-173 at 2d85600); here it is a library class.

The env's dict observation has ``achieved`` (T, 1, 2): the agent's cell, and ``goals`` (T, k, 2):
the ordered goal cells with reached ones replaced by the sentinel ``(-1, -1)``. Reward is 1 per
goal reached in order and the episode ends when the last goal is reached (or at the time limit).
A failed episode carries almost no reward; relabeling pretends the agent was asked to visit
cells it actually visited, which turns it into a successful demonstration of some instruction.

Given a new goal list ``g`` (k, 2) the whole trajectory is recomputed from one counter ``c_t``
(goals reached before observation t, ``c_0 = 0``)::

    c_{t+1} = c_t + 1  if c_t < k and achieved[t+1] == g[c_t]  else c_t
    rews[t] = c_{t+1} - c_t          rl2s[t+1, 0] = rews[t]
    dones[t] = c_{t+1} == k  or  a time-limit terminal
    goals[t, j] = g[j] if j >= c_t else (-1, -1)

and the trajectory is cut after the first done, so every array agrees with what the env would
have produced for that instruction. Relabeling needs whole-episode files (``traj_save_len`` above
the episode length and ``stagger_traj_file_lengths=False``); pieces that do not start an episode
are returned unchanged.
"""

from __future__ import annotations

import logging

import gin
import numpy as np

from amago_pl.datamodules.relabel import Relabeler
from amago_pl.types import FrozenTraj

log = logging.getLogger(__name__)

STRATEGIES = ("all", "some", "none")
SENTINEL = -1.0  # the env's coordinate for goals already reached (mazerunner.GOAL_REACHED)


def goal_progress(achieved: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """(T,) int64 counter ``c_t``: goals of ``goals`` (k, 2) reached in order before observation t.

    ``achieved`` is (T, 2). The cell at t=0 never counts (the episode starts there).
    """
    k = len(goals)
    counts = np.zeros(len(achieved), dtype=np.int64)
    c = 0
    for t in range(1, len(achieved)):
        if c < k and np.array_equal(achieved[t], goals[c]):
            c += 1
        counts[t] = c
    return counts


def first_visits(achieved: np.ndarray, after: int = 0) -> np.ndarray:
    """Sorted timesteps t > ``after`` at which a cell is entered for the first time since ``after``.

    The cell occupied at ``after`` is excluded: a goal there would count only on a later revisit,
    and the env never places a goal on the agent's cell.
    """
    seen = {tuple(achieved[after])}
    times = []
    for t in range(after + 1, len(achieved)):
        cell = tuple(achieved[t])
        if cell not in seen:
            seen.add(cell)
            times.append(t)
    return np.asarray(times, dtype=np.int64)


@gin.configurable
class HindsightInstructionReplay(Relabeler):
    """Rewrite goals, rewards, the previous-reward input and dones with achieved cells.

    Build it yourself or let ``DiskTrajDataset`` build it from ``relabeler=@HindsightInstructionReplay``
    (then every keyword comes from gin).

    Args:
        num_goals: k, the length of the goal list (the env's ``num_goals``); at least 1.
        strategy: "all" replaces the whole goal list with k cells the agent visited (in visit
            order), so the relabeled episode succeeds; "some" keeps the real goals the agent
            reached, then replaces a random number of the remaining ones with cells visited after
            the last real success (later goals stay the real, unreached ones); "none" returns
            trajectories unchanged (a baseline for comparisons).
        time_limit: the env's time limit; transitions into ``time_idxs == time_limit`` stay
            terminal. None infers it: the final stored done is kept when the real goals were not
            all reached (then it was the time limit, not a success).
        achieved_key: observation key of the agent's cell, shape (1, 2) per step.
        goals_key: observation key of the goal list, shape (k, 2) per step.
        seed: seeds a private generator (tests). None draws from numpy's global RNG, which the
            training stream seeds per dataloader worker and epoch, so runs stay reproducible.
    """

    def __init__(
        self,
        num_goals: int,
        strategy: str = "all",
        time_limit: int | None = None,
        achieved_key: str = "achieved",
        goals_key: str = "goals",
        seed: int | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r}: use one of {STRATEGIES}")
        if num_goals < 1:
            raise ValueError(f"num_goals must be >= 1, got {num_goals}")
        self.num_goals = int(num_goals)
        self.strategy = strategy
        self.time_limit = time_limit
        self.achieved_key = achieved_key
        self.goals_key = goals_key
        self._generator = None if seed is None else np.random.default_rng(seed)
        self._warned_piece = False

    def relabel(self, traj: FrozenTraj) -> FrozenTraj:
        if self.strategy == "none" or len(traj) == 0:
            return traj
        if int(traj.time_idxs[0]) != 0:
            if not self._warned_piece:
                self._warned_piece = True
                log.warning(
                    "HindsightInstructionReplay got a file that does not start an episode; it is left "
                    "unchanged. Save whole episodes (traj_save_len > episode length, no stagger)."
                )
            return traj
        achieved = traj.obs[self.achieved_key].reshape(len(traj.rl2s), 2)  # (T, 2)
        real_goals = traj.obs[self.goals_key][0]  # (k, 2): at t=0 no goal is reached yet
        if real_goals.shape != (self.num_goals, 2):
            raise ValueError(f"goals have shape {real_goals.shape}, expected ({self.num_goals}, 2)")
        new_goals = self.choose_goals(achieved, real_goals)
        return self.apply_goals(traj, new_goals, real_goals)

    # ------------------------------------------------------------------ goal choice
    @property
    def rng(self) -> np.random.Generator:
        if self._generator is not None:
            return self._generator
        return np.random.default_rng(np.random.randint(2**31))  # follows the global (seeded) RNG

    def _sample_times(self, candidates: np.ndarray, n: int) -> np.ndarray:
        """``n`` of the ``candidates`` timesteps, in time order (the instruction's order)."""
        picked = self.rng.choice(len(candidates), size=n, replace=False)
        return np.sort(candidates[picked])

    def choose_goals(self, achieved: np.ndarray, real_goals: np.ndarray) -> np.ndarray:
        """The new (k, 2) goal list for one episode, per ``strategy``."""
        k = self.num_goals
        goals = real_goals.astype(np.float32).copy()
        if self.strategy == "all":
            visits = first_visits(achieved, after=0)
            n = min(k, len(visits))
            # Too short an episode to supply k cells: the tail keeps real goals (still unreached).
            goals[:n] = achieved[self._sample_times(visits, n)]
            return goals
        # "some": keep the real prefix the agent achieved, relabel part of the rest.
        progress = goal_progress(achieved, real_goals)
        reached = int(progress[-1])
        if reached == k:
            return goals  # already a success: nothing to relabel
        last_success = int(np.argmax(progress == reached))  # first step with `reached` goals
        visits = first_visits(achieved, after=last_success)
        n = int(self.rng.integers(0, min(k - reached, len(visits)) + 1))
        if n:
            goals[reached : reached + n] = achieved[self._sample_times(visits, n)]
        return goals

    # ----------------------------------------------------------------- rewriting
    def apply_goals(self, traj: FrozenTraj, goals: np.ndarray, real_goals: np.ndarray) -> FrozenTraj:
        """``traj`` as if the instruction had been ``goals`` (k, 2); see the module doc."""
        k = self.num_goals
        T = len(traj.rl2s)
        achieved = traj.obs[self.achieved_key].reshape(T, 2)
        progress = goal_progress(achieved, goals)  # (T,)
        rews = np.diff(progress).astype(np.float32)  # (T-1,)
        dones = progress[1:] >= k  # (T-1,)
        dones |= self._time_limit_dones(traj, achieved, real_goals)
        # Cut after the first done: past it the relabeled episode would already be over.
        ends = np.flatnonzero(dones)
        n_trans = int(ends[0]) + 1 if len(ends) else T - 1
        steps, trans = slice(0, n_trans + 1), slice(0, n_trans)

        new_obs = {key: value[steps] for key, value in traj.obs.items()}
        goal_obs = np.broadcast_to(goals.astype(np.float32), (n_trans + 1, k, 2)).copy()
        goal_obs[np.arange(k)[None, :] < progress[steps, None]] = SENTINEL  # reached goals
        new_obs[self.goals_key] = goal_obs.astype(traj.obs[self.goals_key].dtype)  # (T', k, 2)
        rl2s = traj.rl2s[steps].copy()  # (T', 1 + A); copy: never edit the loaded arrays
        rl2s[1:, 0] = rews[trans]
        return FrozenTraj(
            obs=new_obs,
            rl2s=rl2s,
            time_idxs=traj.time_idxs[steps],
            rews=rews[trans],
            dones=dones[trans],
            actions=traj.actions[trans],
            action_is_index=traj.action_is_index,
        )

    def _time_limit_dones(self, traj: FrozenTraj, achieved: np.ndarray, real_goals: np.ndarray) -> np.ndarray:
        """(T-1,) bool: transitions that end the episode whatever the goals (the timer ran out)."""
        if self.time_limit is not None:
            return traj.time_idxs[1:] >= self.time_limit
        out = np.zeros(len(traj), dtype=bool)
        # A stored terminal that was not the real instruction's success must be the time limit.
        if traj.dones[-1] and goal_progress(achieved, real_goals)[-1] < self.num_goals:
            out[-1] = True
        return out
