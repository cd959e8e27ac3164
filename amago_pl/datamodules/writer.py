"""Turns the stream of batched env steps into trajectory files.

`TrajectoryWriter` keeps one growing piece per parallel env. It is fed the `Timestep` after a
reset and then every `StepResult`; it saves a piece when the episode ends or when the piece
reaches its save length (a split). See the alignment convention in `amago_pl.types`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from amago_pl.datamodules.store import TrajectoryStore
from amago_pl.types import FrozenTraj, StepResult, Timestep


@dataclass
class _Piece:
    """One env's trajectory piece under construction (lists of unbatched per-step arrays)."""

    obs: dict[str, list[np.ndarray]]
    rl2s: list[np.ndarray]
    time_idxs: list[int]
    rews: list[float] = field(default_factory=list)
    dones: list[bool] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def starting_at(cls, ts: Timestep, i: int) -> _Piece:
        # Copies: vector envs reuse their observation buffers between steps.
        return cls(
            obs={k: [np.array(v[i])] for k, v in ts.obs.items()},
            rl2s=[np.array(ts.rl2s[i], dtype=np.float32)],
            time_idxs=[int(ts.time_idxs[i])],
        )

    def continued(self) -> _Piece:
        """A new piece whose first timestep is this piece's last one (the split overlap)."""
        return _Piece(
            obs={k: [v[-1]] for k, v in self.obs.items()},
            rl2s=[self.rl2s[-1]],
            time_idxs=[self.time_idxs[-1]],
        )

    def append(self, action: np.ndarray, reward: float, terminated: bool, ts: Timestep, i: int) -> None:
        self.actions.append(np.array(action))
        self.rews.append(float(reward))
        self.dones.append(bool(terminated))
        for k, v in ts.obs.items():
            self.obs[k].append(np.array(v[i]))
        self.rl2s.append(np.array(ts.rl2s[i], dtype=np.float32))
        self.time_idxs.append(int(ts.time_idxs[i]))

    def __len__(self) -> int:
        return len(self.rews)

    def freeze(self, action_is_index: bool) -> FrozenTraj:
        if action_is_index:
            actions = np.asarray(self.actions, dtype=np.int64).reshape(-1, 1)  # (T-1, 1)
        else:
            actions = np.asarray(self.actions, dtype=np.float32).reshape(len(self.actions), -1)  # (T-1, A)
        return FrozenTraj(
            obs={k: np.stack(v) for k, v in self.obs.items()},  # each (T, ...)
            rl2s=np.stack(self.rl2s).astype(np.float32, copy=False),  # (T, 1 + A)
            time_idxs=np.asarray(self.time_idxs, dtype=np.int64),  # (T,)
            rews=np.asarray(self.rews, dtype=np.float32),  # (T-1,)
            dones=np.asarray(self.dones, dtype=bool),  # (T-1,)
            actions=actions,
            action_is_index=action_is_index,
        )


class TrajectoryWriter:
    """Per-env trajectory buffers that save finished episodes and long pieces to a store.

    Args:
        traj_save_len: a piece is saved after this many transitions (the original's
            ``traj_save_len``); use a large int to keep whole episodes in one file.
        save_len_range: optional ``(low, high)`` ints; each piece draws its length with
            ``random.randint(low, high)`` instead (the original's "stagger", so training windows
            see the same offsets as rollouts).
        compressed: write with ``np.savez_compressed``.

    Splitting: after ``save_len`` transitions the piece is saved and the next piece starts with
    that piece's last timestep, so consecutive files overlap by one timestep and no transition is
    lost. The policy's memory is not reset at a split; only the files are.

    Episode end (terminated or truncated): ``result.final`` (the true last timestep) closes the
    piece, which is saved; a new piece starts from ``result.next``. ``dones`` records
    ``terminated`` only, so truncated episodes still bootstrap. An env with ``result.dropped``
    set crashed: its current piece is discarded (already saved earlier pieces stay).
    """

    def __init__(
        self,
        store: TrajectoryStore,
        num_envs: int,
        traj_save_len: int,
        save_len_range: tuple[int, int] | None = None,
        compressed: bool = False,
    ) -> None:
        if save_len_range is not None:
            lo, hi = save_len_range
            if not (isinstance(lo, int) and isinstance(hi, int)) or not 1 <= lo <= hi:
                raise ValueError(f"save_len_range must be two ints 1 <= low <= high, got {save_len_range}")
        if int(traj_save_len) < 1:
            raise ValueError(f"traj_save_len must be >= 1, got {traj_save_len}")
        self.store = store
        self.num_envs = num_envs
        self.traj_save_len = int(traj_save_len)
        self.save_len_range = save_len_range
        self.compressed = compressed
        self.files_written = 0
        self.discarded = 0  # pieces dropped because their env crashed
        self._pieces: list[_Piece | None] = [None] * num_envs
        self._save_lens = [self._draw_save_len() for _ in range(num_envs)]

    def _draw_save_len(self) -> int:
        if self.save_len_range is None:
            return self.traj_save_len
        return random.randint(*self.save_len_range)

    def start(self, ts: Timestep) -> None:
        """Begin a new piece for every env from ``ts`` (the batched timestep after a reset)."""
        if ts.num_envs != self.num_envs:
            raise ValueError(f"expected {self.num_envs} envs, got a timestep of {ts.num_envs}")
        self._pieces = [_Piece.starting_at(ts, i) for i in range(self.num_envs)]

    def add(self, actions: np.ndarray, result: StepResult) -> int:
        """Record one batched step; returns the number of files written by this call.

        Args:
            actions: (N,) int64 for Discrete or (N, A) float32, as given to ``env.step``.
            result: what the envs returned for those actions.
        """
        actions = np.asarray(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected actions for {self.num_envs} envs, got {len(actions)}")
        action_is_index = actions.ndim == 1 and np.issubdtype(actions.dtype, np.integer)
        written = 0
        for i in range(self.num_envs):
            piece = self._pieces[i]
            if piece is None:
                raise RuntimeError("TrajectoryWriter.start() must be called before add()")
            if result.dropped[i]:
                self.discarded += 1
                self._restart(i, result.next)
                continue
            ended = bool(result.terminated[i] or result.truncated[i])
            source = result.final if ended else result.next
            piece.append(actions[i], result.rewards[i], bool(result.terminated[i]), source, i)
            if ended:
                written += self._save(piece, result.env_names[i], action_is_index)
                self._restart(i, result.next)
            elif len(piece) >= self._save_lens[i]:
                written += self._save(piece, result.env_names[i], action_is_index)
                self._pieces[i] = piece.continued()
                self._save_lens[i] = self._draw_save_len()
        return written

    def _restart(self, i: int, ts: Timestep) -> None:
        self._pieces[i] = _Piece.starting_at(ts, i)
        self._save_lens[i] = self._draw_save_len()

    def _save(self, piece: _Piece, env_name: str, action_is_index: bool) -> int:
        if len(piece) == 0:
            return 0
        self.store.write(piece.freeze(action_is_index), env_name, compressed=self.compressed)
        self.files_written += 1
        return 1

    def flush(self) -> int:
        """Deliberately writes nothing and returns 0.

        Unfinished episodes are not cut at the end of a collection round: the envs keep running
        into the next epoch and their pieces are saved when they end or reach their save length.
        Saving them here would write the same steps twice (or split episodes at arbitrary
        points), breaking "every trajectory reaches the store exactly once".
        """
        return 0

    def pending_transitions(self) -> list[int]:
        """(N,) transitions held in memory per env (for progress reporting)."""
        return [0 if p is None else len(p) for p in self._pieces]
