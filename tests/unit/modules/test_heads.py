"""Actor/critic heads and PopArt."""

from __future__ import annotations

import pytest
import torch

from amago_pl.nets.actor_critic import Actor, NCritics, NCriticsTwoHot, ResidualActor
from amago_pl.nets.policy_dists import Multibinary
from amago_pl.nets.popart import PopArtLayer

B, L, D, A = 2, 5, 8, 3
GAMMAS = [0.9, 0.99, 0.999]
G = len(GAMMAS)


@pytest.mark.parametrize("actor_cls", [Actor, ResidualActor])
@pytest.mark.parametrize("discrete", [True, False])
def test_actor_one_distribution_per_gamma(actor_cls, discrete):
    torch.manual_seed(0)
    actor = actor_cls(
        D,
        A,
        discrete,
        GAMMAS,
        **({"d_hidden": 16} if actor_cls is Actor else {"feature_dim": 16, "residual_ff_dim": 16}),
    )
    dist = actor(torch.randn(B, L, D))
    assert dist.batch_shape == (B, L, G)
    act = actor.policy_dist.env_action(dist, sample=True)
    assert act.shape == ((B, L, G) if discrete else (B, L, G, A))


def test_actor_multibinary():
    actor = Actor(D, A, False, GAMMAS, continuous_dist_type=Multibinary)
    assert actor.policy_dist.env_action(actor(torch.randn(B, L, D)), sample=False).shape == (B, L, G, A)


@pytest.mark.parametrize("discrete", [True, False])
def test_ncritics_batched_equals_each_member(discrete):
    """One bmm over C gives the same values as running each member's weights separately."""
    torch.manual_seed(0)
    C, K = 4, 2
    critic = NCritics(D, A, discrete, GAMMAS, C, d_hidden=16)
    state = torch.randn(B, L, D)
    actions = torch.softmax(torch.randn(K, B, L, G, A), -1) if discrete else torch.rand(K, B, L, G, A) * 2 - 1
    q = critic(state, actions)
    assert q.shape == (K, B, L, C, G, 1)
    layers = [m for m in critic.net.net if hasattr(m, "weight")]
    for c in range(C):
        x = state if discrete else critic._state_action_input(state, actions)
        for i, layer in enumerate(layers):
            x = x @ layer.weight[c] + layer.bias[c, 0]
            if i < len(layers) - 1:
                x = torch.nn.functional.leaky_relu(x)
        if discrete:
            expected = (x.unflatten(-1, (G, A)).unsqueeze(0) * actions).sum(-1)  # (K, B, L, G)
        else:
            expected = x.squeeze(-1)  # (K, B, L, G)
        assert torch.allclose(q[:, :, :, c, :, 0], expected, atol=1e-5)


@pytest.mark.parametrize("label_type", ["twohot", "hlgauss"])
def test_twohot_labels_round_trip(label_type):
    critic = NCriticsTwoHot(
        D,
        A,
        False,
        GAMMAS,
        2,
        d_hidden=16,
        min_return=-100.0,
        max_return=100.0,
        output_bins=64,
        label_type=label_type,
    )
    values = torch.tensor([[-50.0], [-1.0], [0.0], [3.7], [99.0]])
    labels = critic.raw_vals_to_labels(values)
    assert labels.shape == (5, 64)
    assert torch.allclose(labels.sum(-1), torch.ones(5), atol=1e-5)
    recovered = critic.bin_dist_to_raw_vals(torch.log(labels + 1e-12))
    tol = 0.02 if label_type == "twohot" else 0.1
    assert torch.allclose(recovered, values, rtol=tol, atol=tol)


def test_twohot_critic_shapes_and_clamped_labels():
    C, K = 3, 2
    critic = NCriticsTwoHot(D, A, True, GAMMAS, C, d_hidden=16, output_bins=16, min_return=-10, max_return=10)
    logits = critic(torch.randn(B, L, D), torch.rand(K, B, L, G, A))
    assert logits.shape == (K, B, L, C, G, 16)
    assert critic.values(logits).shape == (K, B, L, C, G, 1)
    labels = critic.raw_vals_to_labels(torch.tensor([[1e6], [-1e6]]))
    assert labels[0, -1] == 1.0 and labels[1, 0] == 1.0


def test_popart_preserves_outputs_and_tracks_stats():
    torch.manual_seed(0)
    pop = PopArtLayer(G, beta=0.1)
    x = torch.randn(B, L, 4, G, 1)
    before = pop(x, normalized=False)
    targets = torch.randn(B, L - 1, 1, G, 1) * 50 + 20
    mask = torch.ones(B, L - 1, dtype=torch.bool)
    for _ in range(20):
        pop.update_stats(targets, mask)
    after = pop(x, normalized=False)
    assert torch.allclose(before, after, atol=1e-3), "ART must keep denormalised outputs unchanged"
    assert (pop.mu - 20).abs().max() < 15
    assert torch.allclose(pop.normalize(pop(x, normalized=False)), pop(x), atol=1e-4)


def test_popart_ignores_masked_targets_and_disabled_is_identity():
    pop = PopArtLayer(G)
    targets = torch.zeros(1, 2, 1, G, 1)
    targets[:, 1] = 1e6  # padding
    pop.update_stats(targets, torch.tensor([[True, False]]))
    assert pop.mu.abs().max() == 0
    off = PopArtLayer(G, enabled=False)
    x = torch.randn(3, G, 1)
    assert (
        torch.equal(off(x), x)
        and torch.equal(off(x, normalized=False), x)
        and torch.equal(off.normalize(x), x)
    )
