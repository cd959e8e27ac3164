"""Image backbones for :class:`~amago_pl.nets.tstep_encoders.CNNTstepEncoder`.

``CNNTstepEncoder`` builds each as ``cls(img_shape, channels_first, activation)``: the image shape
from the observation space, and its own ``channels_first`` and ``activation`` keywords. Every other
argument is a gin keyword (docs/configuration.md). A CNN maps (B, L, H, W, C) (or (B, L, C, H, W)
with ``channels_first``) float images to (B, L, emb_dim).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import gin
import torch
import torch.nn.functional as F
from torch import nn

from amago_pl.nets.utils import activation_switch


class CNN(nn.Module, ABC):
    """Base: subclasses build their layers and define :meth:`conv_forward` on (N, C, H, W) images;
    the flattened output width is measured once by running a blank image through it."""

    def __init__(self, img_shape: tuple[int, ...], channels_first: bool, activation: str):
        super().__init__()
        if len(img_shape) != 3:
            raise ValueError(f"Expected an image shape of length 3, got {img_shape}")
        self.img_shape = tuple(img_shape)
        self.channels_first = channels_first
        self.activation = activation
        self.act = activation_switch(activation)

    @property
    def in_channels(self) -> int:
        return self.img_shape[0] if self.channels_first else self.img_shape[-1]

    @property
    def blank_img(self) -> torch.Tensor:
        """An all-zero uint8 input of shape (1, 1, *img_shape), as the original's property."""
        return torch.zeros((1, 1, *self.img_shape), dtype=torch.uint8)

    def _infer_emb_dim(self) -> None:
        """Call at the end of a subclass ``__init__``, once its layers exist."""
        with torch.no_grad():
            self._emb_dim = self(self.blank_img).shape[-1]

    @property
    def emb_dim(self) -> int:
        return self._emb_dim

    @abstractmethod
    def conv_forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float images -> (N, features) after the convolutional stack."""

    def forward(self, imgs: torch.Tensor, from_float: bool | None = None) -> torch.Tensor:
        """imgs: (B, L, *img_shape). uint8 pixels (0..255) are scaled to [-1, 1) here, as the original's
        ``CNN.forward`` does (amago/nets/cnn.py:81 at 2d85600), so encoders written for it can pass raw
        observations; float images are used as given (``CNNTstepEncoder`` scales them itself).
        ``from_float=True`` skips the scaling for uint8 input too."""
        if imgs.dtype == torch.uint8 and not from_float:
            imgs = imgs.float() / 128.0 - 1.0
        B, L = imgs.shape[:2]
        x = imgs.reshape(B * L, *imgs.shape[2:])  # (B*L, *img_shape)
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)  # (B*L, C, H, W)
        return self.conv_forward(x).reshape(B, L, -1)  # (B, L, emb_dim)


def _plain_convs(
    in_channels: int, channels: list[int], kernels: list[int], strides: list[int], act
) -> nn.Sequential:
    if not len(channels) == len(kernels) == len(strides):
        raise ValueError("channels, kernels and strides need the same length")
    layers: list[nn.Module] = []
    for out_c, k, s in zip(channels, kernels, strides):
        layers += [nn.Conv2d(in_channels, out_c, kernel_size=k, stride=s), act()]
        in_channels = out_c
    return nn.Sequential(*layers)


@gin.configurable
class NatureishCNN(CNN):
    """The small DQN ("Nature") conv stack: plain Conv2d + activation layers, then flatten.

    ``channels``, ``kernels`` and ``strides`` give one entry per conv layer (same length); no
    padding is used.
    """

    def __init__(
        self,
        img_shape: tuple[int, ...],
        channels_first: bool,
        activation: str,
        channels: list[int] = [32, 64, 64],  # noqa: B006 - gin-facing default, never mutated
        kernels: list[int] = [8, 4, 3],  # noqa: B006
        strides: list[int] = [4, 2, 1],  # noqa: B006
    ):
        super().__init__(img_shape, channels_first, activation)
        self.convs = _plain_convs(self.in_channels, channels, kernels, strides, self.act)
        self._infer_emb_dim()

    def conv_forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.convs(imgs).flatten(1)  # (N, C' * H' * W')


@gin.configurable
class GridworldCNN(CNN):
    """Small-kernel convs for tiny gridworld images (each pixel is a cell).

    Same structure as ``NatureishCNN`` (plain convs, no padding, then flatten) with small kernels
    and stride 1, so a few-pixel image is not shrunk away.

    ``channels``, ``kernels`` and ``strides`` give one entry per conv layer (same length).
    """

    def __init__(
        self,
        img_shape: tuple[int, ...],
        channels_first: bool,
        activation: str,
        channels: list[int] = [16, 32, 48],  # noqa: B006
        kernels: list[int] = [2, 2, 2],  # noqa: B006
        strides: list[int] = [1, 1, 1],  # noqa: B006
    ):
        super().__init__(img_shape, channels_first, activation)
        self.convs = _plain_convs(self.in_channels, channels, kernels, strides, self.act)
        self._infer_emb_dim()

    def conv_forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.convs(imgs).flatten(1)


class _ImpalaResidual(nn.Module):
    def __init__(self, channels: int, act):
        super().__init__()
        self.body = nn.Sequential(
            act(),
            nn.Conv2d(channels, channels, 3, padding=1),
            act(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@gin.configurable
class IMPALAishCNN(CNN):
    """IMPALA ResNet (Espeholt et al., 2018): per block a conv, a stride-2 max-pool and two residual
    units, optionally followed by GroupNorm.

    Args:
        cnn_block_depths: output channels of each block; the list length is the number of blocks
            (each halves the spatial size).
        post_group_norm: add a GroupNorm (groups of 8 channels, or one group when the depth is not
            a multiple of 8) after each block.
    """

    def __init__(
        self,
        img_shape: tuple[int, ...],
        channels_first: bool,
        activation: str,
        cnn_block_depths: list[int] = [16, 32, 32],  # noqa: B006
        post_group_norm: bool = True,
    ):
        super().__init__(img_shape, channels_first, activation)
        blocks: list[nn.Module] = []
        in_c = self.in_channels
        for depth in cnn_block_depths:
            block = [
                nn.Conv2d(in_c, depth, 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),
                _ImpalaResidual(depth, self.act),
                _ImpalaResidual(depth, self.act),
            ]
            if post_group_norm:
                # Groups of ~8 channels; fall back to one group for narrow layers.
                block.append(nn.GroupNorm(max(1, depth // 8) if depth % 8 == 0 else 1, depth))
            blocks.append(nn.Sequential(*block))
            in_c = depth
        self.blocks = nn.Sequential(*blocks)
        self.out_act = self.act()
        self._infer_emb_dim()

    def conv_forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.out_act(self.blocks(imgs)).flatten(1)


def drqv2_random_shift(imgs: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """DrQ-v2 augmentation (Yarats et al., 2021): replicate-pad by ``pad`` pixels, then crop back at a
    random integer offset per image (done with ``grid_sample`` so the whole batch is one kernel).

    imgs: (N, C, H, W) float with H == W -> (N, C, H, W).
    """
    n, _, h, w = imgs.shape
    if h != w:
        raise ValueError(f"DrQ-v2 augmentation needs square images, got {h}x{w}")
    padded = F.pad(imgs, (pad,) * 4, mode="replicate")  # (N, C, H + 2p, W + 2p)
    eps = 1.0 / (h + 2 * pad)
    # Sampling grid for an un-shifted crop in normalised [-1, 1] coordinates of the padded image.
    base = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad, device=imgs.device, dtype=imgs.dtype)[:h]
    grid = torch.stack(torch.meshgrid(base, base, indexing="xy"), dim=-1)  # (H, W, 2)
    shift = torch.randint(0, 2 * pad + 1, (n, 1, 1, 2), device=imgs.device).to(imgs.dtype) * (2.0 * eps)
    return F.grid_sample(padded, grid.unsqueeze(0) + shift, padding_mode="zeros", align_corners=False)


def weight_init(module: nn.Module) -> None:
    """DrQ-v2's initialisation (``module.apply(weight_init)``): orthogonal Linear weights; a conv
    starts as only its kernel centre, orthogonal with the leaky-ReLU gain; zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight.data)
        if module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.Conv2d):
        k = module.weight.shape[-1]
        module.weight.data.zero_()
        nn.init.orthogonal_(module.weight.data[:, :, k // 2, k // 2], nn.init.calculate_gain("leaky_relu"))
        if module.bias is not None:
            module.bias.data.zero_()


class DrQv2Aug(nn.Module):
    """:func:`drqv2_random_shift` as a module on sequences of images.

    Input (B, L, H, W, C), or (B, L, C, H, W) with ``channels_first``; output has the same shape.
    """

    def __init__(self, pad: int, channels_first: bool):
        super().__init__()
        self.pad = pad
        self.channels_first = channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L = x.shape[:2]
        imgs = x.reshape(B * L, *x.shape[2:])
        if not self.channels_first:
            imgs = imgs.permute(0, 3, 1, 2)  # (B*L, C, H, W)
        out = drqv2_random_shift(imgs, self.pad)
        if not self.channels_first:
            out = out.permute(0, 2, 3, 1)
        return out.reshape(x.shape)


@gin.configurable
class DrQCNN(CNN):
    """DrQ-v2's encoder (Yarats et al., 2021, https://arxiv.org/abs/2107.09645): four 3x3 convs with
    32 channels (the first with stride 2), initialised with :func:`weight_init`."""

    def __init__(self, img_shape: tuple[int, ...], channels_first: bool, activation: str):
        super().__init__(img_shape, channels_first, activation)
        self.convs = _plain_convs(self.in_channels, [32] * 4, [3] * 4, [2, 1, 1, 1], self.act)
        self.apply(weight_init)
        self._infer_emb_dim()

    def conv_forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.convs(imgs).flatten(1)
