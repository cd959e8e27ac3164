"""The Agent's update in named parts: one causal pass, the TD target, the critic terms, the actor terms.

``compute_loss`` runs them in the original's order (amago/agent.py:892-1060 at 2d85600): one pass of
the sequence model shared by actor and critics, Q(s, a_buffer) and Q(s, a~pi), the n-step TD target
(no gradient) and the PopArt statistics it updates, the critic loss, then the actor loss (DPG plus
advantage-filtered BC). The per-element losses finally go through the Agent's ``edit_*_mask`` hooks,
which only decide what the two means average over.

Each part takes the Agent (its networks, hyperparameters and overridable hooks) and tensors; the
pure loss formulas are in :mod:`amago_pl.modules.losses`. Shapes: B batch, L observations (L-1
transitions), D width, K sampled actions, C critics, G gammas, A action width, P critic outputs
per (critic, gamma).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from amago_pl.modules import losses
from amago_pl.types import Batch

if TYPE_CHECKING:
    from amago_pl.modules.agent import Agent


@dataclass
class SequencePass:
    """One causal pass over the batch and the buffer tensors every loss term reads."""

    state: torch.Tensor  # (B, L, D) sequence-model output
    dist: Any  # the actor's distribution over (B, L, G, A)
    tmask: torch.Tensor  # (B, L-1) bool: transition t is real
    a_critic: torch.Tensor  # (B, L-1, G, A) buffer actions as the critics take them
    rews: torch.Tensor  # (B, L-1, 1, G, 1) rewards times reward_multiplier
    dones: torch.Tensor  # (B, L-1, 1, G, 1) terminals
    logp: torch.Tensor  # (B, L-1, G, 1) log pi(a_buffer | s)


@dataclass
class CriticTerms:
    """What the critic update hands to the actor update and to the diagnostics."""

    parts: dict[str, torch.Tensor]  # ``loss_critic`` (weighted) and whatever ``critic_loss`` adds
    elements: torch.Tensor | None  # (B, L-1, C, G, 1) per-element loss, for edit_critic_mask
    advantage: torch.Tensor  # (B, L-1, G, 1) Q(s, a_buffer) - V(s) in raw critic units, no grad
    dpg_value: torch.Tensor | None  # (B, L-1, G, 1) the value the DPG term maximises
    q_buffer_raw: torch.Tensor | None = None  # (B, L-1, C, G, 1)
    td: torch.Tensor | None = None  # (B, L-1, 1, G, 1) scaled-return units


def compute_loss(agent: Agent, batch: Batch, diagnostics: bool = False) -> dict[str, torch.Tensor]:
    """All loss parts (``loss_*``, summed by ``training_step``) and, if asked, dashboard scalars."""
    seq = encode(agent, batch)
    critic = critic_terms(agent, batch, seq) if critics_needed(agent) else critics_skipped(agent, seq)
    out = dict(critic.parts)
    actor = actor_terms(agent, seq, critic)
    actor_elements = actor.pop("actor_elements")  # (B, L-1, G, 1)
    out.update(actor)
    out.update(apply_mask_hooks(agent, batch, seq.tmask, actor_elements, critic.elements))
    if diagnostics:
        with torch.no_grad():
            out.update(diagnostic_scalars(agent, batch, seq, critic))
    return out


def encode(agent: Agent, batch: Batch) -> SequencePass:
    """The shared causal pass (amago/agent.py:949-950 at 2d85600) and the buffer tensors."""
    B, L = batch.rl2s.shape[:2]
    G, A = len(agent.gammas_list), agent.action_dim
    assert L >= 2, "a training sequence needs at least one transition"
    mask = batch.mask.bool()  # (B, L)
    emb = agent.tstep_encoder(batch.obs, batch.rl2s, mask)  # (B, L, D_tstep)
    state, _ = agent.traj_encoder(emb, batch.time_idxs)  # (B, L, D)
    assert state.shape[:2] == (B, L)
    dist = agent.actor(state, agent._obs_for_actor(batch.obs))  # over (B, L, G, A)
    # Clamping neutralises whatever value padding holds; the masks drop those steps later
    # (amago/agent.py:921 at 2d85600).
    a_buf = batch.actions.float().clamp(0.0 if agent.discrete else -1.0, 1.0)  # (B, L-1, A)
    a_buf = a_buf.unsqueeze(2).expand(B, L - 1, G, A)  # (B, L-1, G, A)
    rews = agent.reward_multiplier * batch.rews.float()
    # log pi(a_t | s_t): the distribution covers L steps, so pad one dummy action and drop it.
    a_pad = torch.cat((a_buf, a_buf[:, -1:]), dim=1)  # (B, L, G, A)
    return SequencePass(
        state=state,
        dist=dist,
        tmask=mask[:, 1:],
        a_critic=agent.policy_dist.action_from_buffer(a_buf),
        rews=rews.reshape(B, L - 1, 1, 1, 1).expand(B, L - 1, 1, G, 1),
        dones=batch.dones.float().reshape(B, L - 1, 1, 1, 1).expand(B, L - 1, 1, G, 1),
        logp=agent.policy_dist.log_prob(dist, a_pad)[:, :-1],
    )


def critics_needed(agent: Agent) -> bool:
    """Pure behaviour cloning (``fake_filter`` without DPG) never evaluates the critics."""
    return not (agent.fake_filter and agent.online_coeff == 0)


@torch.no_grad()
def td_target(agent: Agent, batch: Batch, seq: SequencePass) -> torch.Tensor:
    """n-step target (B, L-1, 1, G, 1) in scaled-return units (amago/agent.py:977-989 at 2d85600).

    V(s') averages K actions from the target actor (or the online one) under the target critics,
    denormalised, then reduced REDQ-style. It uses the real-transition mask, never the edited ones.
    """
    B, T = seq.tmask.shape
    s_next = seq.state[:, 1:].detach()  # (B, L-1, D)
    next_actor = agent.target_actor if agent.use_target_actor else agent.actor
    next_obs = {k: v[:, 1:] for k, v in batch.obs.items()}
    next_dist = next_actor(s_next, agent._obs_for_actor(next_obs))
    a_next = agent.policy_dist.actions_for_value(
        next_dist, agent.num_actions_for_value_in_critic_loss
    )  # (K, B, L-1, G, A)
    q_next = agent.target_critics.values(agent.target_critics(s_next, a_next)).mean(0)  # (B, L-1, C, G, 1)
    q_next = agent.denormalize_values(q_next)
    # Looked up on the module at call time, so tests can substitute these two.
    q_next = losses.reduce_critic_ensemble(q_next, agent.num_critics_td, use_min=agent.online_coeff > 0)
    assert q_next.shape == (B, T, 1, len(agent.gammas_list), 1)
    return losses.nstep_return(seq.rews, seq.dones, q_next, agent.gammas, seq.tmask, agent.n_step)


def critic_terms(agent: Agent, batch: Batch, seq: SequencePass) -> CriticTerms:
    """Q(s, a_buffer), Q(s, a~pi), the TD target, the PopArt update and the weighted critic loss."""
    B, T = seq.tmask.shape
    C, G = agent.num_critics, len(agent.gammas_list)
    s = seq.state[:, :-1]  # (B, L-1, D)
    q_buf_out = agent.critics(s, seq.a_critic.unsqueeze(0)).squeeze(0)  # (B, L-1, C, G, P)
    q_buf_raw = agent.critics.values(q_buf_out)  # (B, L-1, C, G, 1)
    # Q(s, a~pi) through the frozen copy on detached states, so the DPG gradient reaches only the
    # actor, through the action (amago/agent.py:967-968 at 2d85600).
    a_agent = agent.policy_dist.actions_for_value(seq.dist, agent.num_actions_for_value_in_actor_loss)
    a_agent = a_agent[:, :, :-1]  # (K, B, L-1, G, A)
    q_agent_out = agent.maximized_critics(s.detach(), a_agent)  # (K, B, L-1, C, G, P)
    q_agent_raw = agent.maximized_critics.values(q_agent_out).mean(0)  # (B, L-1, C, G, 1)
    assert q_buf_raw.shape == q_agent_raw.shape == (B, T, C, G, 1)

    td = td_target(agent, batch, seq)  # (B, L-1, 1, G, 1)
    # A non-finite target would poison the running statistics for good; the step itself is skipped
    # by the Agent's NonFiniteGuard.
    if agent.training and bool(torch.isfinite(td).all()):
        with torch.no_grad():  # the output-preserving update edits PopArt's w and b in place
            agent.popart.update_stats(td, seq.tmask)

    # After the PopArt update, as in the original (amago/agent.py:991-1000 at 2d85600).
    crit = agent.critic_loss(q_buf_out, td, seq.tmask)
    elements = crit.pop("critic_elements", None)  # (B, L-1, C, G, 1)
    parts = {"loss_critic": agent.critic_loss_weight * crit.pop("loss_critic"), **crit}
    dpg = agent.dpg_value(q_agent_raw.min(2).values) if agent.online_coeff > 0 else None
    return CriticTerms(
        parts=parts,
        elements=elements,
        advantage=(q_buf_raw.mean(2) - q_agent_raw.mean(2)).detach(),  # (B, L-1, G, 1)
        dpg_value=dpg,  # (B, L-1, G, 1)
        q_buffer_raw=q_buf_raw,
        td=td,
    )


def critics_skipped(agent: Agent, seq: SequencePass) -> CriticTerms:
    """Pure BC: a zero critic loss that keeps every critic parameter in the graph, so DDP needs no
    ``find_unused_parameters``; zero advantages (``fake_filter`` ignores them)."""
    zero = sum(p.sum() for p in agent.critics.parameters()) * 0.0
    return CriticTerms(
        parts={"loss_critic": zero}, elements=None, advantage=torch.zeros_like(seq.logp), dpg_value=None
    )


def actor_terms(agent: Agent, seq: SequencePass, critic: CriticTerms) -> dict[str, torch.Tensor]:
    """``loss_actor`` = -online_coeff * DPG value - offline_coeff * f(A) * log pi(a_buffer | s),
    plus ``actor_elements`` (B, L-1, G, 1) and the filter diagnostics."""
    return losses.actor_loss(
        seq.logp,
        critic.advantage,
        seq.tmask,
        agent.online_coeff,
        agent.offline_coeff,
        critic.dpg_value,
        agent.fbc_filter_func,
        agent.fake_filter,
    )


def apply_mask_hooks(
    agent: Agent,
    batch: Batch,
    tmask: torch.Tensor,
    actor_elements: torch.Tensor,
    critic_elements: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Re-average the losses over the masks ``edit_actor_mask`` / ``edit_critic_mask`` return.

    As in the original (amago/agent.py:857-890 at 2d85600), the hooks get the per-element losses
    and the real-transition mask broadcast to their shapes. tmask: (B, L-1) bool; critic_elements
    is None when the critics are not evaluated (the hook is still called and its answer ignored).
    """
    B, T = tmask.shape
    G, C = len(agent.gammas_list), agent.num_critics
    # Copies, not views, so a hook may edit its mask in place.
    actor_mask = tmask.reshape(B, T, 1, 1).expand(B, T, G, 1).clone()  # (B, L-1, G, 1)
    critic_mask = tmask.reshape(B, T, 1, 1, 1).expand(B, T, C, G, 1).clone()  # (B, L-1, C, G, 1)
    actor_mask = agent.edit_actor_mask(batch, actor_elements, actor_mask)
    critic_mask = agent.edit_critic_mask(batch, critic_elements, critic_mask)
    out = {"loss_actor": losses.masked_mean(actor_elements, actor_mask)}
    if critic_elements is not None:
        out["loss_critic"] = agent.critic_loss_weight * losses.masked_mean(critic_elements, critic_mask)
    return out


def diagnostic_scalars(
    agent: Agent, batch: Batch, seq: SequencePass, critic: CriticTerms
) -> dict[str, torch.Tensor]:
    """Scalars for the dashboard; computed only on logging steps."""
    tmask = seq.tmask
    out: dict[str, torch.Tensor] = {
        "sequence_length": torch.tensor(float(batch.seq_len)),
        "batch_timesteps": tmask.sum().float(),
        "reward_mean": losses.masked_mean(seq.rews[:, :, 0, -1], tmask),
        "sequences_with_done": (batch.dones & tmask).any(1).float().mean(),
    }
    entropy = agent.policy_dist.entropy(seq.dist)  # (B, L, G)
    out["policy_entropy"] = losses.masked_mean(entropy[:, :-1, -1:], tmask)
    if critic.q_buffer_raw is not None and critic.td is not None:
        q = agent.denormalize_values(critic.q_buffer_raw)  # (B, L-1, C, G, 1)
        for g, gamma in enumerate(agent.gammas_list):
            out[f"q_gamma={gamma}"] = losses.masked_mean(q[:, :, :, g], tmask)
        out["q_ensemble_std"] = losses.masked_mean(
            q.std(2) if q.shape[2] > 1 else torch.zeros_like(q[:, :, 0]), tmask
        )
        valid_td = critic.td[:, :, 0, -1, 0][tmask]  # (N,) main-gamma targets of real transitions
        if valid_td.numel():
            out.update(
                td_target_mean=valid_td.mean(), td_target_min=valid_td.min(), td_target_max=valid_td.max()
            )
    out.update(agent.popart.stats())
    return out


def grad_norms(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """``train/grad_norm_{name}``: the global L2 norm of each module's gradients (0 if none)."""
    out = {}
    for name, module in modules.items():
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        total = (
            torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else torch.zeros(())
        )
        out[f"train/grad_norm_{name}"] = total.float()
    return out


# --------------------------------------------------------------------------- target copies


def _target_pairs(agent: Agent) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
    return [(agent.critics, agent.target_critics), (agent.actor, agent.target_actor)]


@torch.no_grad()
def copy_targets(agent: Agent) -> None:
    """Hard copies: the target actor and critics and the DPG critic copy become the online ones."""
    for online, target in _target_pairs(agent):
        target.load_state_dict(online.state_dict())
    agent.maximized_critics.load_state_dict(agent.critics.state_dict())


@torch.no_grad()
def ema_targets(agent: Agent, tau: float) -> None:
    """Move the target actor and critics toward the online ones by ``tau`` (buffers are copied) and
    hard-copy the critics into the DPG copy (amago/agent.py:711-716 at 2d85600)."""
    for online, target in _target_pairs(agent):
        t_params = [p for p in target.parameters()]
        o_params = [p.detach() for p in online.parameters()]
        torch._foreach_lerp_(t_params, o_params, tau)
        for tb, ob in zip(target.buffers(), online.buffers()):
            tb.copy_(ob)
    for tp, op in zip(agent.maximized_critics.parameters(), agent.critics.parameters()):
        tp.copy_(op.detach())


def build_optimizer(agent: Agent) -> dict:
    """AdamW over the trainable modules with a linear warmup to ``agent.learning_rate`` over
    ``agent.lr_warmup_steps`` optimizer steps, then constant (transformers'
    get_constant_schedule_with_warmup, as amago/experiment.py:511 at 2d85600)."""
    params = [p for m in agent.trainable_modules.values() for p in m.parameters() if p.requires_grad]
    # The fused kernel replaces AdamW's per-parameter Python loop (5-17% of a small CPU update,
    # benchmarks/README.md); it needs floating-point parameters on CPU or CUDA. Lightning's
    # mixed-precision plugins refuse to clip gradients for optimizers that unscale internally
    # (fused ones), so mixed precision keeps the plain implementation.
    precision = str(agent._trainer.precision) if agent._trainer is not None else "32-true"
    fused = "mixed" not in precision and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )
    opt = torch.optim.AdamW(params, lr=agent.learning_rate, weight_decay=agent.l2_coeff, fused=fused)
    warmup = agent.lr_warmup_steps

    def warmup_then_constant(step: int) -> float:
        return float(step) / float(max(1, warmup)) if step < warmup else 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_constant)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
