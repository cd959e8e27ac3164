"""Timestep encoders: shapes per observation type, masking, augmentation and gin configuration."""

import gin
import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from amago_pl.nets.cnn import GridworldCNN, IMPALAishCNN, NatureishCNN
from amago_pl.nets.tstep_encoders import CNNTstepEncoder, FFTstepEncoder

B, L = 3, 5


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    torch.manual_seed(0)
    # These models are tiny: a second intra-op thread only adds synchronisation latency, which is
    # large on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    gin.clear_config()


def rl2_box(action_dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, shape=(1 + action_dim,), dtype=np.float32)


# (name, observation space, action representation width)
CASES = {
    "discrete": (gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (4,), np.float32)}), 5),
    "continuous": (gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (3,), np.float32)}), 2),
    "dict": (
        gym.spaces.Dict(
            {
                "pos": gym.spaces.Box(-1, 1, (3,), np.float32),
                "grid": gym.spaces.Box(0, 1, (2, 2), np.float32),
                "mode": gym.spaces.Discrete(4),
            }
        ),
        3,
    ),
    "image": (gym.spaces.Dict({"observation": gym.spaces.Box(0, 255, (40, 40, 3), np.uint8)}), 4),
}


def sample_inputs(obs_space: gym.spaces.Dict, action_dim: int, b: int = B, seq_len: int = L):
    obs = {}
    for k, space in obs_space.spaces.items():
        if isinstance(space, gym.spaces.Discrete):
            obs[k] = torch.randint(0, int(space.n), (b, seq_len))
        elif space.dtype == np.uint8:
            obs[k] = torch.randint(0, 256, (b, seq_len, *space.shape), dtype=torch.uint8)
        else:
            obs[k] = torch.randn(b, seq_len, *space.shape)
    return obs, torch.randn(b, seq_len, 1 + action_dim)


def make_tstep_encoder(case: str):
    obs_space, action_dim = CASES[case]
    if case == "image":
        return CNNTstepEncoder(obs_space, rl2_box(action_dim), img_features=32, d_output=24)
    return FFTstepEncoder(obs_space, rl2_box(action_dim), d_hidden=32, d_output=24)


@pytest.mark.parametrize("case", list(CASES))
def test_tstep_encoder_shapes(case):
    obs_space, action_dim = CASES[case]
    enc = make_tstep_encoder(case)
    obs, rl2s = sample_inputs(obs_space, action_dim)
    out = enc(obs, rl2s, torch.ones(B, L, dtype=torch.bool))
    assert out.shape == (B, L, enc.emb_dim) == (B, L, 24)
    assert torch.isfinite(out).all()


def test_ff_tstep_defaults_and_key_order():
    obs_space, a = CASES["dict"]
    enc = FFTstepEncoder(obs_space, rl2_box(a))
    assert enc.obs_keys == ["grid", "mode", "pos"]  # sorted by name
    linears = [m for m in enc.mlp.modules() if isinstance(m, nn.Linear)]
    d_inp = 4 + 4 + 3 + (1 + a)
    assert [(m.in_features, m.out_features) for m in linears] == [(d_inp, 512), (512, 512), (512, 256)]
    assert isinstance(enc.out_norm.norm, nn.LayerNorm)
    assert enc.in_norm is not None and enc.in_norm.dim == d_inp


def test_ff_tstep_specify_keys_and_auto_scale():
    obs_space, a = CASES["dict"]
    enc = FFTstepEncoder(
        obs_space, rl2_box(a), specify_obs_keys=["pos"], d_hidden=2, d_output=2, auto_scale=True
    )
    assert enc.obs_keys == ["pos"] and enc.emb_dim == 3 + 1 + a
    obs, rl2s = sample_inputs(obs_space, a)
    assert enc(obs, rl2s).shape == (B, L, enc.emb_dim)
    with pytest.raises(KeyError):
        FFTstepEncoder(obs_space, rl2_box(a), specify_obs_keys=["missing"])


def test_ff_tstep_input_norm_ignores_masked_steps():
    obs_space, a = CASES["continuous"]
    enc = FFTstepEncoder(obs_space, rl2_box(a)).train()
    obs, rl2s = sample_inputs(obs_space, a)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[:, 3:] = False
    junk_obs = {"observation": obs["observation"].clone()}
    junk_obs["observation"][:, 3:] = 1e6
    enc(junk_obs, rl2s, mask)
    mu_junk = enc.in_norm.mu.clone()

    torch.manual_seed(0)
    clean = FFTstepEncoder(obs_space, rl2_box(a)).train()
    clean({"observation": obs["observation"][:, :3]}, rl2s[:, :3])
    assert torch.allclose(mu_junk, clean.in_norm.mu, atol=1e-6)

    enc.eval()
    before = enc.in_norm.mu.clone()
    enc(obs, rl2s, None)
    assert torch.equal(before, enc.in_norm.mu)  # no updates outside training


def test_hide_rl2s_removes_rl2_information():
    obs_space, a = CASES["image"]
    enc = CNNTstepEncoder(obs_space, rl2_box(a), hide_rl2s=True, img_features=16, d_output=8).eval()
    obs, rl2s = sample_inputs(obs_space, a)
    assert torch.equal(enc(obs, rl2s), enc(obs, rl2s * 7 + 3))


def test_cnn_tstep_defaults():
    obs_space, a = CASES["image"]
    enc = CNNTstepEncoder(obs_space, rl2_box(a))
    assert isinstance(enc.cnn, NatureishCNN)
    assert enc.img_features.out_features == 256 and enc.rl2_features.out_features == 12
    assert enc.emb_dim == 256


@pytest.mark.parametrize("cnn_type", [NatureishCNN, IMPALAishCNN, GridworldCNN])
def test_cnn_tstep_channels_first(cnn_type):
    obs_space = gym.spaces.Dict({"img": gym.spaces.Box(0, 255, (3, 40, 40), np.uint8)})
    enc = CNNTstepEncoder(
        obs_space, rl2_box(2), cnn_type=cnn_type, channels_first=True, obs_key="img", d_output=16
    )
    obs, rl2s = sample_inputs(obs_space, 2, b=2, seq_len=2)
    assert enc(obs, rl2s).shape == (2, 2, 16)


def test_drqv2_aug_only_in_training_and_only_on_the_batch_tail():
    obs_space, a = CASES["image"]
    enc = CNNTstepEncoder(obs_space, rl2_box(a), drqv2_aug=True, aug_pct_of_batch=0.5, d_output=16)
    obs, rl2s = sample_inputs(obs_space, a, b=4, seq_len=2)
    enc.eval()
    ref = enc(obs, rl2s)
    assert torch.equal(ref, enc(obs, rl2s))
    enc.train()
    aug = enc(obs, rl2s)
    assert torch.allclose(aug[:2], ref[:2], atol=1e-6)  # first half untouched
    assert not torch.allclose(aug[2:], ref[2:], atol=1e-4)  # last half shifted
    rect = gym.spaces.Dict({"observation": gym.spaces.Box(0, 255, (40, 48, 3), np.uint8)})
    with pytest.raises(ValueError, match="square"):
        CNNTstepEncoder(rect, rl2_box(a), drqv2_aug=True)


def test_configure_doc_cnn_config_binds():
    """configure.txt: switch CNNTstepEncoder to a wider IMPALA CNN with gin bindings."""
    config = {
        "amago_pl.nets.tstep_encoders.CNNTstepEncoder.cnn_type": IMPALAishCNN,
        "IMPALAishCNN.cnn_block_depths": [32, 64, 64],
    }
    for key, value in config.items():
        gin.bind_parameter(key, value)
    obs_space, a = CASES["image"]
    enc = CNNTstepEncoder(obs_space, rl2_box(a))
    assert isinstance(enc.cnn, IMPALAishCNN)
    first_convs = [blk[0] for blk in enc.cnn.blocks]
    assert [c.out_channels for c in first_convs] == [32, 64, 64]
    assert any(isinstance(m, nn.GroupNorm) for m in enc.cnn.modules())  # post_group_norm default


def test_cnn_config_parses_from_gin_text():
    gin.parse_config(
        """
        CNNTstepEncoder.cnn_type = @GridworldCNN
        GridworldCNN.channels = [8, 8, 8]
        amago_pl.nets.tstep_encoders.CNNTstepEncoder.d_output = 40
        """
    )
    obs_space = gym.spaces.Dict({"observation": gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)})
    enc = CNNTstepEncoder(obs_space, rl2_box(2))
    assert isinstance(enc.cnn, GridworldCNN) and enc.emb_dim == 40
    assert [m.out_channels for m in enc.cnn.convs if isinstance(m, nn.Conv2d)] == [8, 8, 8]
