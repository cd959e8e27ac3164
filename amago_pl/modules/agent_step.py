"""The Agent's training step: the loss computation and the Lightning training hooks.

Kept apart from ``agent.py`` (construction, acting, optimizer, checkpoints) so each file reads on
its own. Shapes: B batch, L observations (L-1 transitions), D width, K sampled actions, C critics,
G gammas, A action width, P critic outputs per (critic, gamma).
"""

from __future__ import annotations

import logging
from typing import Any

import gin
import torch

from amago_pl.modules import checkpoint as ckpt_compat
from amago_pl.modules import losses
from amago_pl.types import Batch

log = logging.getLogger(__name__)

# ``train/loss`` goes to the progress bar every this many batches (and on every logging step).
PROGRESS_LOG_EVERY = 10


SKIPPED_STEPS_CKPT_KEY = "amago_pl_skipped_steps"


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive optimizer steps had a non-finite loss or gradients."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's hyperparameters or model gin bindings differ from the agent resuming it."""


@gin.configurable
def nonfinite_step_limit(max_consecutive: int = 20) -> int:
    """How many consecutive skipped (non-finite) optimizer steps stop training.

    An optimizer step whose loss or gradients are not finite is skipped (the weights stay
    unchanged); this many skips in a row raise ``NonFiniteTrainingError``.

    This function is gin-configurable: the Agent calls it with no arguments when training starts,
    so ``max_consecutive`` keeps its default unless gin binds it
    (``nonfinite_step_limit.max_consecutive = 50``).

    Args:
        max_consecutive: number of consecutive skipped steps that stops training; at least 1.
            Defaults to 20.

    Returns:
        The limit, as an int.
    """
    if int(max_consecutive) < 1:
        raise ValueError(f"nonfinite_step_limit.max_consecutive must be >= 1, got {max_consecutive}")
    return int(max_consecutive)


class AgentStepMixin:
    """Mixed into :class:`amago_pl.modules.agent.Agent` (needs its networks and hyperparameters)."""

    def compute_loss(self, batch: Batch, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        """All loss parts (``loss_*``, summed by ``training_step``) and optional diagnostics.

        Masks follow the original (amago/agent.py:857-890 at 2d85600): the n-step TD target and
        the PopArt statistics use the real-transition mask; the per-element critic loss
        (B, L-1, C, G, 1) and actor loss (B, L-1, G, 1) are then handed with that mask, broadcast
        to their shapes, to ``edit_critic_mask`` / ``edit_actor_mask``, and the masks those return
        only decide which elements the two means average over.
        """
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
        critic_elements = None
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
                # Real transitions only: the edit_*_mask hooks never reach the target or PopArt.
                td = losses.nstep_return(
                    rews, dones, q_next, self.gammas, tmask, self.n_step
                )  # (B, L-1, 1, G, 1)
                # A non-finite target would poison the running statistics for good; the step
                # itself is skipped in on_before_optimizer_step.
                if self.training and bool(torch.isfinite(td).all()):
                    self.popart.update_stats(td, tmask)

            # 5. Critic loss (after the PopArt update, as in the original); averaged in step 7.
            crit = self.critic_loss(q_buf_out, td, tmask)
            critic_elements = crit.pop("critic_elements", None)  # (B, L-1, C, G, 1)
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
            tmask,
            self.online_coeff,
            self.offline_coeff,
            dpg,
            self.fbc_filter_func,
            self.fake_filter,
        )
        actor_elements = act.pop("actor_elements")  # (B, L-1, G, 1)
        out.update(act)

        # 7. The user's mask hooks see the per-element losses and only change the averaging.
        out.update(self._apply_mask_hooks(batch, tmask, actor_elements, critic_elements))
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

    def _apply_mask_hooks(
        self,
        batch: Batch,
        tmask: torch.Tensor,
        actor_elements: torch.Tensor,
        critic_elements: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Re-average the losses with the masks the ``edit_*_mask`` hooks return.

        tmask: (B, L-1) bool; actor_elements: (B, L-1, G, 1); critic_elements: (B, L-1, C, G, 1),
        or None when the critic is not evaluated (the hook is still called, as in the original,
        and its answer ignored). Returns the re-averaged ``loss_actor`` / ``loss_critic``.
        """
        B, T = tmask.shape
        G, C = len(self.gammas_list), self.num_critics
        # Copies, not views, so a hook may edit its mask in place.
        actor_mask = tmask.reshape(B, T, 1, 1).expand(B, T, G, 1).clone()  # (B, L-1, G, 1)
        critic_mask = tmask.reshape(B, T, 1, 1, 1).expand(B, T, C, G, 1).clone()  # (B, L-1, C, G, 1)
        actor_mask = self.edit_actor_mask(batch, actor_elements, actor_mask)
        critic_mask = self.edit_critic_mask(batch, critic_elements, critic_mask)
        out = {"loss_actor": losses.masked_mean(actor_elements, actor_mask)}
        if critic_elements is not None:
            out["loss_critic"] = self.critic_loss_weight * losses.masked_mean(critic_elements, critic_mask)
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
        # Remembered without a device sync; checked (on all ranks at once) before the optimizer step.
        bad = ~torch.isfinite(loss.detach())
        self._nonfinite_loss = (
            bad if getattr(self, "_nonfinite_loss", None) is None else self._nonfinite_loss | bad
        )
        # A self.log call costs about a millisecond (Lightning's result collection), 1-3% of a small
        # update: log the loss on logging steps (the only ones loggers write) and every
        # PROGRESS_LOG_EVERY batches for the progress bar (benchmarks/README.md).
        if log_now or batch_idx % PROGRESS_LOG_EVERY == 0:
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
        if self._skip_nonfinite_step(optimizer):
            return
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
        norms["train/skipped_steps"] = torch.tensor(float(getattr(self, "skipped_steps", 0)))
        self.log_dict(norms)

    def _skip_nonfinite_step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Drop this update if the loss or any gradient is non-finite on any rank.

        Runs after backward (and the DDP gradient all-reduce), before clipping and the optimizer.
        The flag is summed over ranks so every rank takes the same decision and none waits in a
        collective another skipped. Skipping sets the gradients to None: AdamW then leaves weights
        and moments untouched. ``nonfinite_step_limit`` consecutive skips raise
        ``NonFiniteTrainingError`` (no checkpoint is written for the failing epoch).
        """
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        bad = torch.zeros((), device=self.device)
        if grads:
            bad = (~torch.isfinite(torch.stack(torch._foreach_norm(grads)))).any().float()
        if getattr(self, "_nonfinite_loss", None) is not None:
            bad = torch.maximum(bad, self._nonfinite_loss.float().to(bad.device))
        self._nonfinite_loss = None
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="sum")
        if float(bad) == 0.0:
            self._consecutive_skips = 0
            return False
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        self.skipped_steps = getattr(self, "skipped_steps", 0) + 1
        self._consecutive_skips = getattr(self, "_consecutive_skips", 0) + 1
        self.log("train/skipped_steps", float(self.skipped_steps))
        step = trainer.global_step if trainer is not None else -1
        log.warning(
            "non-finite loss or gradients at global step %d: update skipped (%d in a row, %d in total)",
            step,
            self._consecutive_skips,
            self.skipped_steps,
        )
        limit = getattr(self, "_max_consecutive_skips", None) or nonfinite_step_limit()
        if self._consecutive_skips >= limit:
            ckpt = getattr(getattr(trainer, "checkpoint_callback", None), "last_model_path", "") or "none yet"
            raise NonFiniteTrainingError(
                f"training stopped at global step {step}: {self._consecutive_skips} consecutive optimizer steps "
                f"had a non-finite loss or gradients (limit: nonfinite_step_limit.max_consecutive = {limit}). "
                f"No weights were updated by them; the last checkpoint is kept unchanged: {ckpt}. Usual causes: "
                "a learning rate that is too high, non-finite rewards, or reward_multiplier too large."
            )
        return True

    def on_train_start(self) -> None:
        self._last_synced_step = self.trainer.global_step
        self._max_consecutive_skips = nonfinite_step_limit()
        self._consecutive_skips = 0
        self._nonfinite_loss = None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Before the weights are restored: refuse a checkpoint written with another configuration.

        Lists every differing hyperparameter and model gin binding. Set the environment variable
        ``AMAGO_PL_ALLOW_CONFIG_CHANGE=1`` to continue anyway (the differences are logged).
        """
        self.skipped_steps = int(checkpoint.get(SKIPPED_STEPS_CKPT_KEY, 0))
        diffs = ckpt_compat.config_differences(checkpoint, self.hparams)
        saved_version = checkpoint.get(ckpt_compat.VERSION_KEY)
        if not diffs:
            if saved_version is not None and saved_version != ckpt_compat.amago_pl_version():
                log.warning(
                    "checkpoint written by amago_pl %s, loading into %s (same configuration)",
                    saved_version,
                    ckpt_compat.amago_pl_version(),
                )
            return
        message = ckpt_compat.describe_mismatch("the checkpoint", checkpoint, diffs)
        if ckpt_compat.allow_config_change():
            log.warning("%s\nContinuing because %s is set.", message, ckpt_compat.ALLOW_ENV_VAR)
            return
        raise CheckpointMismatchError(
            f"{message}\nResume with the configuration the run was started with, or set "
            f"{ckpt_compat.ALLOW_ENV_VAR}=1 to load it anyway (only if the state-dict shapes still match)."
        )

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
