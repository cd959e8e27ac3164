"""The Agent's training step: the loss computation and the Lightning training hooks.

Kept apart from ``agent.py`` (construction, acting, optimizer, checkpoints) so each file reads on
its own. Shapes: B batch, L observations (L-1 transitions), D width, K sampled actions, C critics,
G gammas, A action width, P critic outputs per (critic, gamma).
"""

from __future__ import annotations

from typing import Any

import torch

from amago_pl.modules import losses
from amago_pl.types import Batch


class AgentStepMixin:
    """Mixed into :class:`amago_pl.modules.agent.Agent` (needs its networks and hyperparameters)."""

    def compute_loss(self, batch: Batch, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        """All loss parts (``loss_*``, summed by ``training_step``) and optional diagnostics."""
        B, L = batch.rl2s.shape[:2]
        G, C, A = len(self.gammas_list), self.num_critics, self.action_dim
        assert L >= 2, "a training sequence needs at least one transition"
        mask = batch.mask.bool()  # (B, L)
        tmask = mask[:, 1:]  # (B, L-1)
        dist_fn = self.policy_dist

        # 1. One causal pass shared by actor and critics.
        emb = self.tstep_encoder(batch.obs, batch.rl2s, mask)  # (B, L, D_tstep)
        state, _ = self.traj_encoder(emb, batch.time_idxs)  # (B, L, D)
        assert state.shape[:2] == (B, L)
        dist = self.actor(state, self._obs_for_actor(batch.obs))  # over (B, L, G, A)

        # 2. Buffer actions, rewards and terminals, broadcast over gammas. Clamping neutralises
        # whatever value padding holds (inventory 1.7.2).
        a_buf = batch.actions.float().clamp(0.0 if self.discrete else -1.0, 1.0)  # (B, L-1, A)
        a_buf = a_buf.unsqueeze(2).expand(B, L - 1, G, A)  # (B, L-1, G, A)
        a_critic = dist_fn.action_from_buffer(a_buf)  # (B, L-1, G, A)
        rews = (
            (self.reward_multiplier * batch.rews.float()).reshape(B, L - 1, 1, 1, 1).expand(B, L - 1, 1, G, 1)
        )
        dones = batch.dones.float().reshape(B, L - 1, 1, 1, 1).expand(B, L - 1, 1, G, 1)
        # log pi(a_t | s_t): the distribution covers L steps, so pad one dummy action and drop it.
        a_pad = torch.cat((a_buf, a_buf[:, -1:]), dim=1)  # (B, L, G, A)
        logp = dist_fn.log_prob(dist, a_pad)[:, :-1]  # (B, L-1, G, 1)
        assert logp.shape == (B, L - 1, G, 1)

        out: dict[str, torch.Tensor] = {}
        critic_mask = self.edit_critic_mask(batch, None, tmask)
        actor_mask = self.edit_actor_mask(batch, None, tmask)
        need_critic = not (self.fake_filter and self.online_coeff == 0)
        if need_critic:
            # 3. Q(s, a_buffer) with the online critics; Q(s, a~pi) with the frozen copy on detached
            # states, so the DPG gradient reaches only the actor through the action.
            q_buf_out = self.critics(state[:, :-1], a_critic.unsqueeze(0)).squeeze(0)  # (B, L-1, C, G, P)
            q_buf_raw = self.critics.values(q_buf_out)  # (B, L-1, C, G, 1)
            a_agent = dist_fn.actions_for_value(dist, self.num_actions_for_value_in_actor_loss)[
                :, :, :-1
            ]  # (K, B, L-1, G, A)
            q_agent_out = self.maximized_critics(state[:, :-1].detach(), a_agent)  # (K, B, L-1, C, G, P)
            q_agent_raw = self.maximized_critics.values(q_agent_out).mean(0)  # (B, L-1, C, G, 1)
            assert q_buf_raw.shape == q_agent_raw.shape == (B, L - 1, C, G, 1)

            # 4. TD target in scaled-return units (no grad).
            with torch.no_grad():
                s_next = state[:, 1:].detach()  # (B, L-1, D)
                next_actor = self.target_actor if self.use_target_actor else self.actor
                next_obs = {k: v[:, 1:] for k, v in batch.obs.items()}
                next_dist = next_actor(s_next, self._obs_for_actor(next_obs))
                a_next = dist_fn.actions_for_value(
                    next_dist, self.num_actions_for_value_in_critic_loss
                )  # (K, B, L-1, G, A)
                q_next = self.target_critics.values(self.target_critics(s_next, a_next)).mean(
                    0
                )  # (B, L-1, C, G, 1)
                q_next = self.denormalize_values(q_next)
                q_next = losses.reduce_critic_ensemble(
                    q_next, self.num_critics_td, use_min=self.online_coeff > 0
                )
                assert q_next.shape == (B, L - 1, 1, G, 1)
                td = losses.nstep_return(
                    rews, dones, q_next, self.gammas, critic_mask, self.n_step
                )  # (B, L-1, 1, G, 1)
                if self.training:
                    self.popart.update_stats(td, critic_mask)

            # 5. Critic loss (after the PopArt update, as in the original).
            crit = self.critic_loss(q_buf_out, td, critic_mask)
            out["loss_critic"] = self.critic_loss_weight * crit.pop("loss_critic")
            out.update(crit)
            adv = (q_buf_raw.mean(2) - q_agent_raw.mean(2)).detach()  # (B, L-1, G, 1)
            dpg = (
                self.dpg_value(q_agent_raw.min(2).values) if self.online_coeff > 0 else None
            )  # (B, L-1, G, 1)
        else:
            # Pure BC: the critic is never evaluated. The zero term keeps every trainable parameter
            # in the graph, so DDP needs no find_unused_parameters.
            out["loss_critic"] = sum(p.sum() for p in self.critics.parameters()) * 0.0
            adv, dpg = torch.zeros_like(logp), None

        # 6. Actor loss.
        act = losses.actor_loss(
            logp,
            adv,
            actor_mask,
            self.online_coeff,
            self.offline_coeff,
            dpg,
            self.fbc_filter_func,
            self.fake_filter,
        )
        out.update(act)
        if diagnostics:
            with torch.no_grad():
                out.update(
                    self._diagnostics(
                        batch,
                        dist,
                        tmask,
                        rews,
                        q_buf_raw if need_critic else None,
                        td if need_critic else None,
                    )
                )
        return out

    def _diagnostics(
        self, batch: Batch, dist, tmask: torch.Tensor, rews, q_buf_raw, td
    ) -> dict[str, torch.Tensor]:
        """Scalars for the dashboard; computed only on logging steps."""
        out: dict[str, torch.Tensor] = {
            "sequence_length": torch.tensor(float(batch.seq_len)),
            "batch_timesteps": tmask.sum().float(),
            "reward_mean": losses.masked_mean(rews[:, :, 0, -1], tmask),
            "sequences_with_done": (batch.dones & tmask).any(1).float().mean(),
        }
        entropy = self.policy_dist.entropy(dist)  # (B, L, G)
        out["policy_entropy"] = losses.masked_mean(entropy[:, :-1, -1:], tmask)
        if q_buf_raw is not None:
            q = self.denormalize_values(q_buf_raw)  # (B, L-1, C, G, 1)
            for g, gamma in enumerate(self.gammas_list):
                out[f"q_gamma={gamma}"] = losses.masked_mean(q[:, :, :, g], tmask)
            out["q_ensemble_std"] = losses.masked_mean(
                q.std(2) if q.shape[2] > 1 else torch.zeros_like(q[:, :, 0]), tmask
            )
            valid_td = td[:, :, 0, -1, 0][tmask]
            if valid_td.numel():
                out.update(
                    td_target_mean=valid_td.mean(), td_target_min=valid_td.min(), td_target_max=valid_td.max()
                )
        out.update(self.popart.stats())
        return out

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        log_now = self._should_log()
        parts = self.compute_loss(batch, diagnostics=log_now)
        loss = sum(v for k, v in parts.items() if k.startswith("loss_"))
        bs = batch.batch_size
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        if log_now:
            metrics = {f"train/{k}": v.detach().float() for k, v in parts.items()}
            metrics["gradient_steps"] = torch.tensor(float(self.global_step))
            self.log_dict(metrics, batch_size=bs)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Evaluation is env rollouts, run by ``EvalCallback`` at the end of the validation epoch;
        this step only lets Lightning's loop (and ``Trainer.validate``) run."""

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """See ``validation_step``: ``Trainer.test`` runs the test ``EvalCallback``."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self._should_log():
            return
        norms = {}
        for name, module in self.trainable_modules.items():
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            total = (
                torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                if grads
                else torch.zeros(())
            )
            norms[f"train/grad_norm_{name}"] = total.float()
        norms["train/learning_rate"] = torch.tensor(float(optimizer.param_groups[0]["lr"]))
        self.log_dict(norms)

    def on_train_start(self) -> None:
        self._last_synced_step = self.trainer.global_step

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Once per optimizer step (global_step advances only when one happened, so accumulation is
        # handled), after the update: targets trail the online weights by one EMA step.
        step = self.trainer.global_step
        if self._last_synced_step is None:
            self._last_synced_step = step
        elif step != self._last_synced_step:
            self._last_synced_step = step
            self.soft_sync_targets()

    def _should_log(self) -> bool:
        trainer = self._trainer
        if trainer is None:
            return True
        try:
            return bool(trainer._logger_connector.should_update_logs)
        except AttributeError:
            return True
