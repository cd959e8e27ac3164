"""Timestep encoders: map one timestep (observation dict + rl2 features) to a vector.

A TstepEncoder sees each timestep independently (no memory); memory is the TrajEncoder's job.
The Agent builds one as ``cls(obs_space, rl2_space)`` from the env; every other argument is a gin
keyword (docs/configuration.md).
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod

import gin
import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from amago_pl import compat
from amago_pl.nets.cnn import CNN, NatureishCNN, drqv2_random_shift
from amago_pl.nets.ff import MLP, Normalization
from amago_pl.nets.utils import InputNorm, activation_switch, symlog


class TstepEncoder(nn.Module, ABC):
    """Base class.

    Args:
        obs_space: the AMAGOEnv observation space (always a ``gym.spaces.Dict``).
        rl2_space: ``Box(1 + A)`` of [previous reward, previous action representation].
        hide_rl2s: zero every rl2 feature (keeps layer sizes; an ablation of the RL^2 inputs).
        hide_rewards: zero only the previous-reward feature.
    """

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        rl2_space: gym.spaces.Box,
        hide_rl2s: bool = False,
        hide_rewards: bool = False,
    ):
        super().__init__()
        self.obs_space = obs_space
        self.rl2_space = rl2_space
        self.hide_rl2s = hide_rl2s
        self.hide_rewards = hide_rewards

    # True for subclasses written for the original, whose ``inner_forward(obs, rl2s, log_dict=None)``
    # takes a logging dict where amago_pl passes the mask (amago/nets/tstep_encoders.py:113 at 2d85600).
    _takes_log_dict: bool = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        params = inspect.signature(cls.inner_forward).parameters
        cls._takes_log_dict = "log_dict" in params and "mask" not in params

    def forward(
        self,
        obs: dict[str, torch.Tensor],
        rl2s: torch.Tensor,
        mask: torch.Tensor | None = None,
        log_dict: dict | None = None,
    ) -> torch.Tensor:
        """obs: each (B, L, ...); rl2s: (B, L, 1 + A); mask: (B, L) bool real steps or None -> (B, L, emb_dim).

        ``log_dict`` is only passed on to an original-style ``inner_forward`` (None from the Agent).
        """
        if self.hide_rl2s:
            rl2s = torch.zeros_like(rl2s)
        elif self.hide_rewards:
            rl2s = torch.cat((torch.zeros_like(rl2s[..., :1]), rl2s[..., 1:]), dim=-1)
        if self._takes_log_dict:
            return self.inner_forward(obs, rl2s, log_dict=log_dict)
        return self.inner_forward(obs, rl2s, mask)

    @abstractmethod
    def inner_forward(
        self, obs: dict[str, torch.Tensor], rl2s: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Encode after the rl2 hiding above. Returns (B, L, emb_dim)."""

    @property
    @abstractmethod
    def emb_dim(self) -> int:
        """Width of the output, so the TrajEncoder sizes itself in code."""


def _flat_dim(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if space.shape is None:
        raise ValueError(f"FFTstepEncoder cannot flatten observation space {space}")
    return int(math.prod(space.shape))


def _flatten_obs(x: torch.Tensor, space: gym.Space) -> torch.Tensor:
    """(B, L, ...) -> (B, L, flat) float; Discrete observations become one-hot."""
    if isinstance(space, gym.spaces.Discrete):
        return F.one_hot((x.long() - int(space.start)).reshape(*x.shape[:2]), int(space.n)).float()
    return x.reshape(*x.shape[:2], -1).float()


@gin.configurable
class FFTstepEncoder(TstepEncoder):
    """MLP over the flattened observation keys (sorted by name) concatenated with the rl2 features.

    The right choice for vector (state) observations. Discrete observation entries are one-hot
    encoded; every other key is flattened. The pipeline is
    [obs || rl2] -> ``InputNorm`` (optional) -> ``MLP`` -> ``out_norm``.

    Args:
        n_layers: hidden Linear layers of the MLP (``n_layers=2`` gives three in total).
        d_output: output width, the encoder's ``emb_dim``.
        norm: normalisation after each hidden Linear layer, by ``Normalization`` name ("layer",
            "rmsnorm", "unitball", "hypersphere", "simnorm", ...) or None.
        activation: an ``activation_switch`` name ("leaky_relu", "relu", "gelu", "mish").
        hide_rl2s: feed zeros instead of the rl2 features (the layer sizes do not change; an
            ablation of the previous-action/reward inputs).
        normalize_inputs: standardise [obs || rl2] with a running ``InputNorm`` whose statistics
            update in training mode from real (unpadded) timesteps only.
        specify_obs_keys: encode only these observation keys (e.g. drop a key that a relabeler
            uses); None encodes every key.
        auto_scale: raise ``d_hidden`` and ``d_output`` to at least the flattened input width.
        out_norm: normalisation of the MLP output (a ``Normalization`` name or None).
    """

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        rl2_space: gym.spaces.Box,
        n_layers: int = 2,
        d_hidden: int = 512,
        d_output: int = 256,
        norm: str | None = None,
        activation: str = "leaky_relu",
        hide_rl2s: bool = False,
        normalize_inputs: bool = True,
        specify_obs_keys: list[str] | None = None,
        auto_scale: bool = False,
        out_norm: str | None = "layer",
    ):
        super().__init__(obs_space, rl2_space, hide_rl2s=hide_rl2s)
        keys = sorted(specify_obs_keys if specify_obs_keys is not None else obs_space.spaces.keys())
        missing = [k for k in keys if k not in obs_space.spaces]
        if missing:
            raise KeyError(
                f"specify_obs_keys {missing} not in the observation space keys {list(obs_space.spaces)}"
            )
        self.obs_keys = keys
        d_inp = sum(_flat_dim(obs_space[k]) for k in keys) + int(math.prod(rl2_space.shape))
        if auto_scale:
            d_hidden, d_output = max(d_hidden, d_inp), max(d_output, d_inp)
        self.in_norm = InputNorm(d_inp) if normalize_inputs else None
        self.mlp = MLP(d_inp, d_hidden, n_layers, d_output, activation=activation, norm=norm)
        self.out_norm = Normalization(out_norm, d_output)
        self._emb_dim = d_output

    @property
    def emb_dim(self) -> int:
        return self._emb_dim

    def inner_forward(
        self, obs: dict[str, torch.Tensor], rl2s: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        parts = [_flatten_obs(obs[k], self.obs_space[k]) for k in self.obs_keys]
        x = torch.cat([*parts, rl2s.float()], dim=-1)  # (B, L, d_inp)
        if self.in_norm is not None:
            x = self.in_norm(x, mask)
        return self.out_norm(self.mlp(x))  # (B, L, d_output)


@gin.configurable
class CNNTstepEncoder(TstepEncoder):
    """CNN over one image observation, fused with the (symlog-scaled) rl2 features.

    image /128 - 1 -> cnn -> Linear(img_features) ; symlog(rl2s) -> Linear(rl2_features);
    concat -> activation -> Linear(d_output) -> out_norm.

    Pixel values are expected in 0..255 (any dtype). Only the image at ``obs_key`` is encoded;
    other observation keys are ignored.

    Args:
        cnn_type: the :class:`~amago_pl.nets.cnn.CNN` class, built as
            ``cnn_type(img_shape, channels_first, activation)``; its own keywords come from gin.
        channels_first: True if images are laid out (C, H, W), False for (H, W, C).
        img_features: width of the Linear layer applied to the flattened CNN output.
        rl2_features: width of the Linear layer applied to ``symlog(rl2s)``.
        d_output: width of the layer that fuses the image and rl2 features; the encoder's
            ``emb_dim``.
        out_norm: a ``Normalization`` name or None.
        activation: used in the CNN and before the fusing layer (an ``activation_switch`` name).
        hide_rl2s: feed zeros instead of the rl2 features (the layer sizes do not change).
        drqv2_aug: in training mode, apply DrQ-v2 random-shift augmentation (replicate-pad by 4
            pixels, random crop back) to part of each batch. Needs square images.
        aug_pct_of_batch: fraction (0 to 1) of the sequences in a batch that ``drqv2_aug``
            augments (the last ones).
        obs_key: the observation key holding the image; "observation" is the key AMAGOEnv uses
            when the env's observation space is not a dict.
    """

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        rl2_space: gym.spaces.Box,
        cnn_type: type[CNN] = NatureishCNN,
        channels_first: bool = False,
        img_features: int = 256,
        rl2_features: int = 12,
        d_output: int = 256,
        out_norm: str | None = "layer",
        activation: str = "leaky_relu",
        hide_rl2s: bool = False,
        drqv2_aug: bool = False,
        aug_pct_of_batch: float = 0.75,
        obs_key: str = "observation",
    ):
        super().__init__(obs_space, rl2_space, hide_rl2s=hide_rl2s)
        img_shape = tuple(obs_space[obs_key].shape)
        self.obs_key, self.channels_first = obs_key, channels_first
        self.drqv2_aug, self.aug_pct_of_batch = drqv2_aug, aug_pct_of_batch
        if drqv2_aug:
            h, w = img_shape[1:] if channels_first else img_shape[:2]
            if h != w:
                raise ValueError(f"drqv2_aug needs square images, got {img_shape}")
        self.cnn = cnn_type(img_shape, channels_first, activation)
        self.img_features = nn.Linear(self.cnn.emb_dim, img_features)
        self.rl2_features = nn.Linear(int(math.prod(rl2_space.shape)), rl2_features)
        self.merge = nn.Sequential(
            activation_switch(activation)(),
            nn.Linear(img_features + rl2_features, d_output),
            Normalization(out_norm, d_output),
        )
        self._emb_dim = d_output

    @property
    def emb_dim(self) -> int:
        return self._emb_dim

    def _augment(self, img: torch.Tensor) -> torch.Tensor:
        """img (B, L, *img_shape) float; shifts the last ``aug_pct_of_batch`` of the B sequences."""
        B, L = img.shape[:2]
        n_aug = int(round(B * self.aug_pct_of_batch))
        if n_aug == 0:
            return img
        tail = img[B - n_aug :].reshape(n_aug * L, *img.shape[2:])  # (N, *img_shape)
        if not self.channels_first:
            tail = tail.permute(0, 3, 1, 2)  # (N, C, H, W)
        tail = drqv2_random_shift(tail)
        if not self.channels_first:
            tail = tail.permute(0, 2, 3, 1)
        return torch.cat((img[: B - n_aug], tail.reshape(n_aug, L, *img.shape[2:])), dim=0)

    def inner_forward(
        self, obs: dict[str, torch.Tensor], rl2s: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        # Pixels are 0..255 whatever their dtype; centre them on [-1, 1).
        img = obs[self.obs_key].float() / 128.0 - 1.0  # (B, L, *img_shape)
        if self.drqv2_aug and self.training:
            img = self._augment(img)
        img_emb = self.img_features(self.cnn(img))  # (B, L, img_features)
        rl2_emb = self.rl2_features(symlog(rl2s.float()))  # (B, L, rl2_features)
        return self.merge(torch.cat((img_emb, rl2_emb), dim=-1))  # (B, L, d_output)


# register_tstep_encoder & co., which the original defined here, live in nets/registry.py
# (it imports this module); served through amago_pl/compat.py.
__getattr__ = compat.name_getattr(__name__)
