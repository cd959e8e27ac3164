"""Translation between the policy's action space and an env's own action space.

The policy always acts in one of three normalised forms (see docs/architecture.md):

- ``Discrete(n)``: an integer index in ``[0, n)``; its representation is a one-hot vector.
- ``MultiBinary(A)``: a 0/1 vector; its representation is the same vector as float32.
- ``Box(-1, 1, (A,))``: a flat vector, rescaled linearly to the env's (finite) bounds.

``ActionAdapter`` owns that mapping for one env (``AMAGOEnv``) or for the single space of a
vector env (``AMAGOVectorEnv``), so both use the exact same conversion.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


class ActionAdapter:
    """Maps policy actions to the env's own action ``space`` and to their float32 representation.

    Raises:
        ValueError: for unsupported spaces (Tuple, Dict, MultiDiscrete, ...) or a Box with
            non-finite bounds; the message names the space.
    """

    def __init__(self, space: spaces.Space):
        self.env_space = space
        if isinstance(space, spaces.Discrete):
            self.kind = "discrete"
            self.action_dim = int(space.n)
            self._start = int(space.start)
            # Policy indices are 0-based even when the env's Discrete has a non-zero start.
            self.policy_space: spaces.Space = spaces.Discrete(self.action_dim)
        elif isinstance(space, spaces.MultiBinary):
            self.kind = "multibinary"
            self.action_dim = int(np.prod(space.shape))
            self.policy_space = spaces.MultiBinary(self.action_dim)
        elif isinstance(space, spaces.Box):
            low = np.asarray(space.low, dtype=np.float64)
            high = np.asarray(space.high, dtype=np.float64)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(
                    f"Box action space {space!r} has non-finite bounds: the policy acts in [-1, 1] and "
                    "needs finite low/high to rescale to. Clip or bound the env's action space first."
                )
            self.kind = "continuous"
            self.action_dim = int(np.prod(space.shape))
            self._low = low.reshape(-1)  # (A,)
            self._high = high.reshape(-1)  # (A,)
            self.policy_space = spaces.Box(-1.0, 1.0, (self.action_dim,), dtype=np.float32)
        else:
            raise ValueError(
                f"Unsupported action space {space!r} ({type(space).__name__}). amago_pl supports "
                "Discrete, MultiBinary and Box action spaces; flatten or wrap other spaces first."
            )

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    # ----------------------------------------------------------------- single actions
    def to_env(self, action: np.ndarray | int | float) -> np.ndarray | int:
        """One policy action -> the action the env executes."""
        if self.kind == "discrete":
            return self._index(action)
        return self._to_env_batch(np.asarray(action)[None])[0]

    def rep(self, action: np.ndarray | int | float) -> np.ndarray:
        """One policy action -> its (A,) float32 representation (one-hot for Discrete)."""
        return self.rep_batch(np.asarray(action)[None])[0]

    # ----------------------------------------------------------------- batched actions
    def to_env_batch(self, actions: np.ndarray) -> np.ndarray:
        """(N,) / (N, 1) indices or (N, A) vectors -> (N, *env_shape) env actions."""
        actions = np.asarray(actions)
        if self.kind == "discrete":
            idx = self._indices(actions)  # (N,)
            return (idx + self._start).astype(np.int64)
        return self._to_env_batch(actions)

    def rep_batch(self, actions: np.ndarray) -> np.ndarray:
        """(N,) / (N, 1) indices or (N, A) vectors -> (N, A) float32 representations."""
        actions = np.asarray(actions)
        n = actions.shape[0]
        if self.kind == "discrete":
            out = np.zeros((n, self.action_dim), dtype=np.float32)  # (N, A)
            out[np.arange(n), self._indices(actions)] = 1.0
            return out
        flat = actions.reshape(n, self.action_dim).astype(np.float32)  # (N, A)
        if self.kind == "multibinary":
            return (flat > 0.5).astype(np.float32)
        # The representation records what was executed, i.e. the clipped action.
        return np.clip(flat, -1.0, 1.0)

    # ----------------------------------------------------------------- helpers
    def _indices(self, actions: np.ndarray) -> np.ndarray:
        idx = np.asarray(actions).reshape(len(actions), -1)
        if idx.shape[1] != 1:
            raise ValueError(f"Discrete actions must have shape (N,) or (N, 1), got {actions.shape}")
        idx = idx[:, 0]
        if not np.all(idx == np.round(idx)):
            raise ValueError(f"Discrete actions must be integer indices, got {idx}")
        idx = idx.astype(np.int64)  # (N,) int64: any number of actions (no uint8 overflow)
        if np.any((idx < 0) | (idx >= self.action_dim)):
            raise ValueError(f"Discrete action index out of range [0, {self.action_dim}): {idx}")
        return idx

    def _index(self, action: np.ndarray | int | float) -> int:
        return int(self._indices(np.asarray(action).reshape(1, -1))[0]) + self._start

    def _to_env_batch(self, actions: np.ndarray) -> np.ndarray:
        n = actions.shape[0]
        flat = actions.reshape(n, self.action_dim)  # (N, A)
        shape = (n, *self.env_space.shape)
        if self.kind == "multibinary":
            return (flat > 0.5).astype(self.env_space.dtype).reshape(shape)
        a = np.clip(flat.astype(np.float64), -1.0, 1.0)
        # Written as a weighted average so a = -1 gives exactly low and a = +1 exactly high
        # (low + (a + 1) / 2 * (high - low) can miss high by one ulp).
        env_a = ((1.0 - a) * self._low + (1.0 + a) * self._high) / 2.0  # (N, A)
        env_a = np.clip(env_a, self._low, self._high)
        return env_a.astype(self.env_space.dtype).reshape(shape)


def rl2_space_for(action_dim: int) -> spaces.Box:
    """The unbounded Box(1 + A) of ``[previous reward, previous action representation]``."""
    return spaces.Box(-np.inf, np.inf, shape=(1 + action_dim,), dtype=np.float32)
