"""Agent invariants on hand-made padded batches (no Trainer): masking, TD targets, acting, learning."""

from __future__ import annotations

import copy

import gin
import gymnasium as gym
import pytest
import torch

from amago_pl.modules import losses
from amago_pl.modules.agent import Agent, MultiTaskAgent, get_agent_cls
from amago_pl.nets.policy_dists import GMM, Multibinary
from amago_pl.nets.traj_encoders import GRUTrajEncoder, TformerTrajEncoder
from amago_pl.nets.tstep_encoders import FFTstepEncoder
from amago_pl.testing.batches import bind_tiny, spaces_for, synthetic_batch

DISCRETE = gym.spaces.Discrete(4)
BOX = gym.spaces.Box(-1.0, 1.0, (2,))
LENGTHS = [7, 4, 2]  # observations per sequence; L = 7


@pytest.fixture(autouse=True)
def tiny_gin():
    gin.clear_config()
    bind_tiny()
    yield
    gin.clear_config()


def make(cls=Agent, space=DISCRETE, traj=GRUTrajEncoder, **kw) -> Agent:
    torch.manual_seed(0)
    obs, rl2 = spaces_for(3, space)
    return cls(obs, rl2, space, 8, FFTstepEncoder, traj, **kw)


def batch_for(agent: Agent, seed: int = 0):
    return synthetic_batch(
        agent.obs_space, agent.action_space, 3, 7, lengths=LENGTHS, seed=seed, done_prob=0.2
    )


def total(agent: Agent, batch) -> torch.Tensor:
    parts = agent.compute_loss(batch)
    return sum(v for k, v in parts.items() if k.startswith("loss_"))


def test_registry():
    assert get_agent_cls("agent") is Agent and get_agent_cls("multitask") is MultiTaskAgent


@pytest.mark.parametrize("cls", [Agent, MultiTaskAgent])
@pytest.mark.parametrize("space", [DISCRETE, BOX])
def test_batch_not_mutated_and_padding_ignored(cls, space):
    agent = make(cls, space, popart=False)
    batch = batch_for(agent)
    before = copy.deepcopy(batch)
    # Each training-mode loss also updates the InputNorm statistics; restore them before the second
    # loss so both see the same normalisation (a repeated batch is not a no-op for the statistics,
    # whose initial values count as one prior batch).
    state = copy.deepcopy(agent.state_dict())
    torch.manual_seed(1)
    loss = total(agent, batch)
    for name in ("rl2s", "time_idxs", "rews", "dones", "actions", "mask"):
        assert torch.equal(getattr(batch, name), getattr(before, name)), name
    assert torch.equal(batch.obs["observation"], before.obs["observation"])
    # Rewrite every padded value: the loss (same random draws) must not change.
    pad = ~batch.mask
    tpad = ~batch.transition_mask
    other = copy.deepcopy(batch)
    other.obs["observation"][pad] = -123.0
    other.rl2s[pad] = 55.0
    other.time_idxs[pad] = 0
    other.rews[tpad] = 1e4
    other.dones[tpad] = True
    other.actions[tpad] = 0.3
    agent.load_state_dict(state)
    torch.manual_seed(1)
    assert torch.allclose(total(agent, other), loss, atol=1e-5)


@pytest.mark.parametrize("space", [DISCRETE, BOX])
def test_padded_steps_get_zero_gradient(space):
    agent = make(Agent, space, traj=TformerTrajEncoder)
    batch = batch_for(agent)
    batch.obs["observation"].requires_grad_(True)
    batch.rl2s.requires_grad_(True)
    total(agent, batch).backward()
    pad = ~batch.mask
    assert (batch.obs["observation"].grad[pad] == 0).all()
    assert (batch.rl2s.grad[pad] == 0).all()
    assert batch.obs["observation"].grad[batch.mask].abs().sum() > 0


def test_copies_are_frozen_and_outside_optimizer():
    agent = make()
    for m in (agent.target_critics, agent.target_actor, agent.maximized_critics):
        assert not any(p.requires_grad for p in m.parameters())
    opt_params = {id(p) for g in agent.configure_optimizers()["optimizer"].param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in agent.parameters() if p.requires_grad}
    total(agent, batch_for(agent)).backward()
    assert all(p.grad is None for p in agent.maximized_critics.parameters())


def test_td_target_one_step(monkeypatch):
    """n_step=1: target = reward_multiplier * r + gamma * (1 - terminated) * Q'(s', a' ~ target actor)."""
    agent = make(Agent, DISCRETE, num_critics=3, num_critics_td=3)
    # Make the REDQ subset deterministic: the min over every critic.
    monkeypatch.setattr(
        losses, "reduce_critic_ensemble", lambda q, n, use_min, generator=None: q.min(2, keepdim=True).values
    )
    seen = {}
    real = losses.nstep_return

    def spy(*args, **kwargs):
        seen["td"] = real(*args, **kwargs)
        return seen["td"]

    monkeypatch.setattr(losses, "nstep_return", spy)
    batch = batch_for(agent)
    batch.dones[0, 2] = True  # a terminal step
    batch.dones[0, 5] = False  # the sequence's last real step is a truncation: must bootstrap
    # A copy in training mode applies the same single InputNorm update that compute_loss will.
    ref = copy.deepcopy(agent).train()
    with torch.no_grad():
        state, _ = ref.traj_encoder(ref.tstep_encoder(batch.obs, batch.rl2s, batch.mask), batch.time_idxs)
        probs = ref.target_actor(state[:, 1:]).probs.unsqueeze(0)  # (1, B, L-1, G, A)
        q = ref.target_critics(state[:, 1:], probs)[0]  # (B, L-1, C, G, 1)
        q = ref.popart(q, normalized=False).min(2).values[..., 0]  # (B, L-1, G)
    expected = 10.0 * batch.rews[..., None] + agent.gammas * (1 - batch.dones.float()[..., None]) * q
    agent.train()
    agent.compute_loss(batch)
    td = seen["td"][:, :, 0, :, 0]  # (B, L-1, G)
    m = batch.transition_mask
    assert torch.allclose(td[m], expected[m], atol=1e-3)
    assert torch.allclose(td[0, 2], 10.0 * batch.rews[0, 2].expand(len(agent.gammas)))
    assert not torch.allclose(td[0, 5], 10.0 * batch.rews[0, 5].expand(len(agent.gammas)))


def test_gammas_and_defaults():
    agent = make()
    assert agent.gammas.tolist() == pytest.approx([0.1, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999])
    assert (agent.num_critics, agent.num_critics_td, agent.online_coeff, agent.offline_coeff) == (
        4,
        2,
        1.0,
        0.1,
    )
    assert len(make(use_multigamma=False).gammas) == 1
    mt = make(MultiTaskAgent)
    assert (mt.online_coeff, mt.offline_coeff, mt.num_actions_for_value_in_actor_loss) == (0.0, 1.0, 3)
    assert type(mt.policy_dist).__name__ == "DiscreteLikeContinuous"


@pytest.mark.parametrize("space", [DISCRETE, BOX, gym.spaces.MultiBinary(3)])
def test_get_actions_and_hidden_state(space):
    if isinstance(space, gym.spaces.MultiBinary):
        gin.bind_parameter("Actor.continuous_dist_type", Multibinary)
        agent = make(Agent, space, online_coeff=0.0)
    else:
        agent = make(Agent, space)
    agent.eval()
    N = 5
    obs = {"observation": torch.randn(N, 1, 3)}
    rl2s = torch.zeros(N, 1, 1 + agent.action_dim)
    t = torch.zeros(N, 1, dtype=torch.long)
    h = agent.init_hidden_state(N, "cpu")
    actions, h2 = agent.get_actions(obs, rl2s, t, h, sample=True)
    greedy, _ = agent.get_actions(obs, rl2s, t, h, sample=False)
    if isinstance(space, gym.spaces.Discrete):
        assert actions.shape == (N,) and actions.dtype == torch.int64 and (actions < 4).all()
    else:
        assert actions.shape == (N, agent.action_dim) and actions.dtype == torch.float32
        assert (actions.abs() <= 1).all()
    assert greedy.shape == actions.shape
    h3 = agent.reset_hidden_state(h2, torch.tensor([True, False, False, False, True]))
    assert (h3[:, 0] == 0).all() and torch.equal(h3[:, 1], h2[:, 1])


def test_non_differentiable_dist_requires_offline_only():
    gin.bind_parameter("Actor.continuous_dist_type", GMM)
    with pytest.raises(ValueError, match="online_coeff"):
        make(Agent, BOX)
    make(Agent, BOX, online_coeff=0.0)


@pytest.mark.parametrize("cls", [Agent, MultiTaskAgent])
def test_critic_loss_decreases_on_fixed_batch(cls):
    agent = make(cls, DISCRETE)
    agent.train()
    batch = batch_for(agent)
    opt = agent.configure_optimizers()["optimizer"]
    for g in opt.param_groups:
        g["lr"] = 3e-3
    first = None
    for step in range(100):
        parts = agent.compute_loss(batch)
        loss = sum(v for k, v in parts.items() if k.startswith("loss_"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        agent.soft_sync_targets()
        if step == 0:
            first = parts["loss_critic"].item()
    assert parts["loss_critic"].item() < 0.5 * first
