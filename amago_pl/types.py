"""Data types shared by envs, the trajectory store and the agent.

Shape vocabulary (used across the project): N parallel envs, T timesteps of a trajectory,
B batch, L sequence length (observations), A action-representation width.

Alignment (the original's convention, ``Trajectory.freeze`` in amago/hindsight.py:267-290 at
2d85600): a trajectory of T observations has T-1 transitions. ``rews[t]``, ``dones[t]`` and
``actions[t]`` belong to the transition from observation ``t`` to ``t+1``. ``rl2s[t]`` holds
``[reward received on arriving at t, representation of the action that led to t]`` (zeros at an
episode start).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

OBS_PREFIX = "obs."  # npz key prefix of observation arrays, e.g. "obs.observation"


@dataclass
class Timestep:
    """The current input of N parallel envs (a batched timestep)."""

    obs: dict[str, np.ndarray]  # each (N, ...)
    rl2s: np.ndarray  # (N, 1 + A) float32: [previous reward, previous action representation]
    time_idxs: np.ndarray  # (N,) int64: step index within the episode, 0 at reset

    @property
    def num_envs(self) -> int:
        return int(self.rl2s.shape[0])

    def index(self, i: int) -> Timestep:
        """Env ``i`` as a batch of one (keeps the leading dimension)."""
        return Timestep(
            obs={k: v[i : i + 1] for k, v in self.obs.items()},
            rl2s=self.rl2s[i : i + 1],
            time_idxs=self.time_idxs[i : i + 1],
        )

    def as_tensors(
        self, device: torch.device | str = "cpu"
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Model inputs with a length-1 sequence dimension: obs (N, 1, ...), rl2s (N, 1, D), time (N, 1)."""
        obs = {k: torch.as_tensor(v, device=device).unsqueeze(1) for k, v in self.obs.items()}
        rl2s = torch.as_tensor(self.rl2s, device=device, dtype=torch.float32).unsqueeze(1)
        time_idxs = torch.as_tensor(self.time_idxs, device=device, dtype=torch.long).unsqueeze(1)
        return obs, rl2s, time_idxs


@dataclass
class StepResult:
    """What N parallel envs return for one batched action (same-step autoreset semantics).

    ``next`` is what the policy sees next: for envs whose episode ended it is already the first
    timestep of a new episode. ``final`` is the real last timestep of the ended episodes (equal
    to ``next`` elsewhere), so truncated episodes bootstrap from their true last observation.
    """

    next: Timestep
    final: Timestep
    rewards: np.ndarray  # (N,) float32 raw env reward of this step
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    env_names: list[str]  # (N,) env_name of the episode this step belonged to
    infos: list[dict]  # (N,) per-env info dicts of this step
    dropped: np.ndarray  # (N,) bool: the env crashed and was rebuilt; its episode must be discarded

    @property
    def done(self) -> np.ndarray:
        """(N,) bool: the episode ended (terminated or truncated) or was dropped."""
        return self.terminated | self.truncated | self.dropped


@dataclass
class FrozenTraj:
    """A finished trajectory (or a file-sized piece of one), as stored on disk."""

    obs: dict[str, np.ndarray]  # each (T, ...)
    rl2s: np.ndarray  # (T, 1 + A) float32
    time_idxs: np.ndarray  # (T,) int64
    rews: np.ndarray  # (T-1,) float32
    dones: np.ndarray  # (T-1,) bool: terminated only; truncation still bootstraps
    actions: np.ndarray  # (T-1, 1) int64 indices for Discrete; (T-1, A) float32 otherwise
    action_is_index: bool = False  # True for Discrete action spaces

    def __post_init__(self) -> None:
        T = len(self.rl2s)
        if T < 1:
            raise ValueError("a trajectory needs at least one observation")
        for k, v in self.obs.items():
            if len(v) != T:
                raise ValueError(f"obs[{k!r}] has {len(v)} steps but rl2s has {T}")
        if len(self.time_idxs) != T:
            raise ValueError(f"time_idxs has {len(self.time_idxs)} steps, expected {T}")
        for name in ("rews", "dones", "actions"):
            if len(getattr(self, name)) != T - 1:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} steps, expected {T - 1} (one per transition)"
                )

    def __len__(self) -> int:
        """Number of transitions (T-1)."""
        return len(self.rews)

    @property
    def action_dim(self) -> int:
        """Width A of the action representation (one-hot width for Discrete)."""
        return int(self.rl2s.shape[-1]) - 1

    def action_rep(self) -> np.ndarray:
        """(T-1, A) float32 action representation: one-hot for Discrete, the stored values otherwise."""
        if self.action_is_index:
            out = np.zeros((len(self.actions), self.action_dim), dtype=np.float32)
            out[np.arange(len(self.actions)), self.actions[:, 0]] = 1.0
            return out
        return self.actions.astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, np.ndarray]:
        out = {OBS_PREFIX + k: v for k, v in self.obs.items()}
        out.update(
            rl2s=self.rl2s,
            time_idxs=self.time_idxs,
            rews=self.rews,
            dones=self.dones,
            actions=self.actions,
            action_is_index=np.asarray(self.action_is_index),
        )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> FrozenTraj:
        obs = {k[len(OBS_PREFIX) :]: np.asarray(v) for k, v in d.items() if k.startswith(OBS_PREFIX)}
        return cls(
            obs=obs,
            rl2s=np.asarray(d["rl2s"]),
            time_idxs=np.asarray(d["time_idxs"]),
            rews=np.asarray(d["rews"]),
            dones=np.asarray(d["dones"]),
            actions=np.asarray(d["actions"]),
            action_is_index=bool(np.asarray(d.get("action_is_index", False))),
        )

    def total_return(self) -> float:
        return float(self.rews.sum())


@dataclass
class Batch:
    """A padded batch of training sequences (right-padded; ``mask`` marks the real steps).

    L is the longest observation sequence in the batch (at most max_seq_len + 1); transitions
    have length L - 1.
    """

    obs: dict[str, torch.Tensor]  # each (B, L, ...)
    rl2s: torch.Tensor  # (B, L, 1 + A) float32
    time_idxs: torch.Tensor  # (B, L) int64
    rews: torch.Tensor  # (B, L-1) float32
    dones: torch.Tensor  # (B, L-1) bool
    actions: torch.Tensor  # (B, L-1, A) float32 action representation (one-hot for Discrete)
    mask: torch.Tensor  # (B, L) bool: True where the observation is real (not padding)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # optional user fields, (B, ...)

    @property
    def transition_mask(self) -> torch.Tensor:
        """(B, L-1) bool: transition t is real iff observation t+1 is real."""
        return self.mask[:, 1:]

    @property
    def batch_size(self) -> int:
        return int(self.rl2s.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.rl2s.shape[1])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(x: torch.Tensor) -> torch.Tensor:
            return x.to(device, non_blocking=non_blocking)

        kwargs = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kwargs[f.name] = {k: move(t) for k, t in v.items()} if isinstance(v, dict) else move(v)
        return Batch(**kwargs)

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True) so host-to-device copies can be non-blocking."""
        kwargs = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kwargs[f.name] = (
                {k: t.pin_memory() for k, t in v.items()} if isinstance(v, dict) else v.pin_memory()
            )
        return Batch(**kwargs)
