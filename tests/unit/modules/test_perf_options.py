"""Speed options of the Transformer: sigma-reparam fast paths and ``Transformer.compile_training``."""

import copy
import functools

import gin
import torch

import amago_pl.nets.transformer as tmod
from amago_pl.nets.traj_encoders import TformerTrajEncoder
from amago_pl.nets.transformer import SigmaReparam

D_IN = 12


def _encoder() -> TformerTrajEncoder:
    return TformerTrajEncoder(
        D_IN, 16, d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout_ff=0.0, dropout_emb=0.0
    )


def test_sigma_reparam_matches_reference_formula():
    torch.manual_seed(0)
    layer = SigmaReparam(8, 5)
    x = torch.randn(3, 7, 8)
    layer.eval()
    with torch.no_grad():
        sigma = torch.dot(layer.u, torch.mv(layer.weight, layer.v))
        expected = torch.nn.functional.linear(x, layer.weight) * (layer.gamma / sigma) + layer.bias
        torch.testing.assert_close(layer(x), expected)
        # The inference cache of W_hat follows writes to the weight and to gamma.
        layer.weight.mul_(2.0)
        layer.gamma.fill_(3.0)
        sigma = torch.dot(layer.u, torch.mv(layer.weight, layer.v))
        expected = torch.nn.functional.linear(x, layer.weight) * (layer.gamma / sigma) + layer.bias
        torch.testing.assert_close(layer(x), expected)
    # Grad mode: the gradient reaches weight, gamma and bias.
    layer.train()
    layer(x).sum().backward()
    assert all(p.grad is not None for p in (layer.weight, layer.gamma, layer.bias))


def test_compile_training_is_off_by_default_and_gin_bindable():
    assert _encoder().transformer.compile_training is False
    gin.bind_parameter("Transformer.compile_training", True)
    assert _encoder().transformer.compile_training is True


def test_compiled_training_pass_matches_eager(monkeypatch):
    # The "eager" dynamo backend traces the same graph without the minutes of inductor codegen.
    monkeypatch.setattr(tmod.torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch.manual_seed(0)
    eager = _encoder().train()
    compiled = copy.deepcopy(eager)
    compiled.transformer.compile_training = True
    seq = torch.randn(3, 9, D_IN)
    t = torch.arange(9).expand(3, 9)
    out_e, _ = eager(seq, t)
    out_c, _ = compiled(seq, t)
    torch.testing.assert_close(out_c, out_e)
    out_c.square().mean().backward()
    assert all(p.grad is not None for p in compiled.parameters() if p.requires_grad)
    assert compiled.transformer in tmod._COMPILED_FORWARDS
    # No grad (rollouts, target computations): the eager path.
    with torch.no_grad():
        torch.testing.assert_close(compiled.eval()(seq, t)[0], eager.eval()(seq, t)[0])
    # Copies do not share the compiled function of the original.
    clone = copy.deepcopy(compiled)
    assert clone.transformer not in tmod._COMPILED_FORWARDS
