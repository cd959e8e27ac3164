"""Building blocks: activations, norms, MLP, InputNorm, CNN backbones, registries, the nets alias."""

import gin
import pytest
import torch
from torch import nn

from amago_pl.nets.cnn import GridworldCNN, IMPALAishCNN, NatureishCNN, drqv2_random_shift
from amago_pl.nets.ff import MLP, FFBlock, Normalization
from amago_pl.nets.utils import InputNorm, activation_switch, symexp, symlog


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


@pytest.mark.parametrize("name", ["leaky_relu", "relu", "gelu", "mish"])
def test_activation_switch_returns_factory(name):
    act = activation_switch(name)()
    assert isinstance(act, nn.Module)
    assert act(torch.randn(3, 4)).shape == (3, 4)


def test_activation_switch_unknown():
    with pytest.raises(ValueError, match="Unknown activation"):
        activation_switch("swishy")


def test_symlog_symexp_roundtrip():
    x = torch.tensor([-1e4, -3.0, -0.1, 0.0, 0.5, 7.0, 1e5])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    assert torch.equal(torch.sign(symlog(x)), torch.sign(x))


@pytest.mark.parametrize(
    "method", [None, "none", "layer", "rmsnorm", "unitball", "unitball-detach", "hypersphere", "simnorm"]
)
def test_normalization_methods(method):
    norm = Normalization(method, 16)
    x = torch.randn(2, 5, 16) * 3
    y = norm(x)
    assert y.shape == x.shape
    if method in ("unitball", "unitball-detach"):
        assert torch.allclose(y.norm(dim=-1), torch.ones(2, 5), atol=1e-5)
    if method == "hypersphere":
        assert torch.allclose(y.norm(dim=-1), torch.full((2, 5), 4.0), atol=1e-4)
    if method == "simnorm":
        assert torch.allclose(y.view(2, 5, 2, 8).sum(-1), torch.ones(2, 5, 2), atol=1e-5)
    if method in (None, "none"):
        assert torch.equal(y, x)


def test_normalization_rejects_batch():
    with pytest.raises(ValueError, match="Unknown normalization"):
        Normalization("batch", 8)


def test_mlp_layer_count_and_shape():
    mlp = MLP(5, 32, 2, 7, activation="gelu", dropout_p=0.1)
    assert sum(isinstance(m, nn.Linear) for m in mlp.modules()) == 3  # n_layers hidden + output
    assert mlp(torch.randn(4, 3, 5)).shape == (4, 3, 7)


def test_ffblock_is_residual():
    block = FFBlock(8, 32)
    nn.init.zeros_(block.ff2.weight)
    nn.init.zeros_(block.ff2.bias)
    x = torch.randn(2, 3, 8)
    assert torch.equal(block(x), x)


def test_input_norm_uses_only_unmasked_steps():
    norm = InputNorm(3).train()
    real = torch.randn(2, 6, 3) * 2 + 5
    padded = real.clone()
    padded[:, 4:] = 4.0e3  # junk at the padded steps
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[:, 4:] = False
    norm(padded, mask)
    # First update blends the prior (mu 0, nu 1, one batch's weight) with the real rows only, at
    # rate beta / (1 - (1-beta)^2) ~ 1/2 (amago/nets/utils.py:145-152 at 2d85600).
    rows = real[:, :4].reshape(-1, 3)
    rate = 1e-4 / (1.0 - (1.0 - 1e-4) ** 2)
    assert torch.allclose(norm.mu, rate * rows.mean(0), atol=1e-5)
    assert torch.allclose(norm.nu, (1 - rate) + rate * rows.square().mean(0), atol=1e-4)
    assert int(norm.t) == 1


def test_input_norm_frozen_in_eval_and_saved():
    norm = InputNorm(4).train()
    norm(torch.randn(8, 4) + 3)
    state = {k: v.clone() for k, v in norm.state_dict().items()}
    assert set(state) == {"mu", "nu", "t"}
    norm.eval()
    out = norm(torch.randn(8, 4) + 3)
    for k, v in norm.state_dict().items():
        assert torch.equal(v, state[k])
    assert out.abs().mean() < 3  # normalised
    fresh = InputNorm(4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.mu, norm.mu)


def test_input_norm_skip_and_all_masked():
    norm = InputNorm(2, skip=True).train()
    x = torch.randn(3, 2)
    assert torch.equal(norm(x), x)
    norm = InputNorm(2).train()
    norm(torch.randn(1, 3, 2), torch.zeros(1, 3, dtype=torch.bool))
    assert int(norm.t) == 0


@pytest.mark.parametrize(
    "cls,shape,channels_first",
    [
        (NatureishCNN, (64, 64, 3), False),
        (IMPALAishCNN, (3, 32, 32), True),
        (GridworldCNN, (7, 7, 3), False),
    ],
)
def test_cnn_output_dim_inferred(cls, shape, channels_first):
    cnn = cls(shape, channels_first, "relu")
    out = cnn(torch.rand(2, 3, *shape))
    assert out.shape == (2, 3, cnn.emb_dim)


def test_impala_block_depths_configurable():
    gin.bind_parameter("IMPALAishCNN.cnn_block_depths", [8, 16])
    gin.bind_parameter("IMPALAishCNN.post_group_norm", False)
    cnn = IMPALAishCNN((16, 16, 3), False, "relu")
    convs = [m for m in cnn.blocks if isinstance(m, nn.Sequential)]
    assert [b[0].out_channels for b in convs] == [8, 16]
    assert not any(isinstance(m, nn.GroupNorm) for m in cnn.modules())


def test_drqv2_shift_is_integer_translation():
    imgs = torch.rand(6, 2, 12, 12)
    out = drqv2_random_shift(imgs)
    assert out.shape == imgs.shape
    padded = torch.nn.functional.pad(imgs, (4, 4, 4, 4), mode="replicate")
    crops = [padded[..., dy : dy + 12, dx : dx + 12] for dy in range(9) for dx in range(9)]
    for i in range(6):  # each image is exactly one pad-and-crop of its input
        assert any(torch.allclose(out[i], c[i], atol=1e-5) for c in crops)
    with pytest.raises(ValueError, match="square"):
        drqv2_random_shift(torch.rand(1, 1, 8, 10))


def test_registry_names_and_custom_registration():
    from amago_pl.nets import registry
    from amago_pl.nets.traj_encoders import GRUTrajEncoder, IdentityTrajEncoder, TrajEncoder

    assert {"ff", "cnn"} <= set(registry.list_registered_tstep_encoders())
    assert {"ff", "transformer", "rnn", "gru", "mamba", "identity"} <= set(
        registry.list_registered_traj_encoders()
    )
    assert registry.get_traj_encoder_cls("rnn") is GRUTrajEncoder
    assert registry.get_traj_encoder_cls("identity") is IdentityTrajEncoder
    with pytest.raises(KeyError, match="registered"):
        registry.get_tstep_encoder_cls("nope")

    @registry.register_traj_encoder("test_custom_identity")
    class Custom(IdentityTrajEncoder):
        pass

    assert registry.get_traj_encoder_cls("test_custom_identity") is Custom
    with pytest.raises(TypeError):
        registry.register_traj_encoder("bad")(int)
    assert issubclass(Custom, TrajEncoder)


def test_nets_alias_is_same_module():
    import amago_pl.nets.cnn
    import amago_pl.nets.transformer
    from amago_pl.nets.cnn import IMPALAishCNN as AliasIMPALA
    from amago_pl.nets.transformer import SlidingWindowFlexAttention

    assert AliasIMPALA is amago_pl.nets.cnn.IMPALAishCNN
    assert SlidingWindowFlexAttention is amago_pl.nets.transformer.SlidingWindowFlexAttention
