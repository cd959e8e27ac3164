"""The Agent LightningModule: TstepEncoder -> TrajEncoder -> actor + critic ensemble over all gammas.

In Lightning's order: construction, acting, the training step and its overridable loss parts,
validation/test steps, training hooks (target sync, non-finite-step guard), the optimizer and the
checkpoint hooks. The update's parts are in :mod:`amago_pl.modules.update`, the loss formulas in
:mod:`amago_pl.modules.losses`, the checkpoint keys in :mod:`amago_pl.modules.checkpoint`. Shapes:
B batch, L observations (L-1 transitions), D width, K sampled actions, C critics, G gammas, A action width.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import gin
import gymnasium as gym
import lightning.pytorch as pl
import torch
from torch import nn

from amago_pl import compat
from amago_pl.modules import checkpoint as ckpt
from amago_pl.modules import hparams as hparams_mod
from amago_pl.modules import losses, update
from amago_pl.modules.agent_registry import get_agent_cls, list_registered_agents, register_agent
from amago_pl.modules.gammas import Multigammas, trained_gammas
from amago_pl.modules.nonfinite import NonFiniteGuard
from amago_pl.nets.actor_critic import Actor, NCritics
from amago_pl.nets.popart import PopArtLayer
from amago_pl.nets.traj_encoders import TrajEncoder
from amago_pl.nets.tstep_encoders import TstepEncoder
from amago_pl.types import Batch

# ``train/loss`` goes to the progress bar every this many batches (and on every logging step).
PROGRESS_LOG_EVERY = 10


@register_agent("agent")
@gin.configurable
class Agent(pl.LightningModule):
    """Off-policy actor-critic over sequences (AMAGO, Grigsby et al. 2024).

    Critic: PopArt-normalised MSE to REDQ TD targets, one head per gamma. Actor: online DPG through
    a frozen copy of the critics plus advantage-filtered BC. The last gamma is the one used to act.
    The total loss is ``actor + critic_loss_weight * critic``, with the actor loss
    ``-online_coeff * popart(min_C Q(s, a~pi)) - offline_coeff * f(A) * log pi(a_buffer | s)``,
    ``f = fbc_filter_func`` and ``A = Q(s, a_buffer) - V(s)``. The six positional arguments come
    from the env and the run settings, the rest from gin (docs/configuration.md).

    Args:
        obs_space: the AMAGOEnv observation space (a ``gym.spaces.Dict``).
        rl2_space: ``Box(1 + A)`` of [previous reward, previous action].
        action_space: Discrete, Box in [-1, 1], or MultiBinary.
        max_seq_len: context length of training sequences and of the rollout memory.
        tstep_encoder_type: built as ``cls(obs_space, rl2_space)``.
        traj_encoder_type: built as ``cls(tstep_dim, max_seq_len)``.
        num_critics: size C of the critic ensemble.
        num_critics_td: members drawn (with replacement) per TD target, then min (DPG on) or mean.
        online_coeff: weight of the DPG term; needs a distribution with differentiable actions.
        offline_coeff: weight of the advantage-filtered behaviour-cloning term.
        gamma: the main discount factor: the last trained gamma and the one that acts.
        reward_multiplier: scales rewards inside the loss only; ``NCriticsTwoHot.max_return`` is
            in these scaled units.
        tau: EMA rate moving the target critics and actor after every optimizer step.
        fake_filter: weight every replay action 1 (plain BC; no critics at ``online_coeff = 0``).
        num_actions_for_value_in_critic_loss: K actions for V(s') in the TD target (not Discrete).
        num_actions_for_value_in_actor_loss: K actions for V(s) in the advantage and DPG term (not Discrete).
        fbc_filter_func: advantages (B, L-1, G, 1) -> BC weights of the same shape.
        popart: normalise value targets per gamma with ``PopArtLayer`` (False: identity).
        use_target_actor: sample the TD target's next actions from the target actor (else online).
        use_multigamma: also train the ``Multigammas`` list matching the action space.
        n_step: length of the TD return, cut at terminals and at the end of the real sequence.
        actor_type: built as ``cls(state_dim, action_dim, discrete, gammas)``.
        critic_type: built as ``cls(state_dim, action_dim, discrete, gammas, num_critics)``.
        pass_obs_keys_to_actor: observation keys handed unchanged to the actor head (e.g. action
            masks for a custom head).
        critic_loss_weight: multiplies the critic loss before it is added to the actor loss.
        learning_rate: AdamW learning rate.
        lr_warmup_steps: optimizer steps of linear warmup from 0, then constant.
        l2_coeff: AdamW weight decay.
    """

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        rl2_space: gym.spaces.Box,
        action_space: gym.spaces.Space,
        max_seq_len: int,
        tstep_encoder_type: type[TstepEncoder],
        traj_encoder_type: type[TrajEncoder],
        num_critics: int = 4,
        num_critics_td: int = 2,
        online_coeff: float = 1.0,
        offline_coeff: float = 0.1,
        gamma: float = 0.999,
        reward_multiplier: float = 10.0,
        tau: float = 0.003,
        fake_filter: bool = False,
        num_actions_for_value_in_critic_loss: int = 1,
        num_actions_for_value_in_actor_loss: int = 1,
        fbc_filter_func: Callable = losses.binary_filter,
        popart: bool = True,
        use_target_actor: bool = True,
        use_multigamma: bool = True,
        n_step: int = 1,
        actor_type: type[nn.Module] = Actor,
        critic_type: type[nn.Module] = NCritics,
        pass_obs_keys_to_actor: Iterable[str] | None = None,
        critic_loss_weight: float = 10.0,
        learning_rate: float = 1e-4,
        lr_warmup_steps: int = 500,
        l2_coeff: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        # Checkpoints and hparams.yaml get the arguments as plain data (spaces as dicts, classes as
        # import paths: modules/hparams.py), so torch.load(weights_only=True) and yaml.safe_load read them.
        self.save_hyperparameters(hparams_mod.encode_hparams(self.hparams))
        self.obs_space, self.rl2_space, self.action_space = obs_space, rl2_space, action_space
        self.max_seq_len = max_seq_len
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.multibinary = isinstance(action_space, gym.spaces.MultiBinary)
        self.action_dim = (
            int(action_space.n) if self.discrete else int(torch.tensor(action_space.shape).prod())
        )
        self.num_critics, self.num_critics_td = num_critics, num_critics_td
        self.online_coeff, self.offline_coeff = online_coeff, offline_coeff
        self.gamma, self.reward_multiplier, self.tau = gamma, reward_multiplier, tau
        self.fake_filter = fake_filter
        self.num_actions_for_value_in_critic_loss = num_actions_for_value_in_critic_loss
        self.num_actions_for_value_in_actor_loss = num_actions_for_value_in_actor_loss
        self.fbc_filter_func = fbc_filter_func
        self.use_target_actor = use_target_actor
        self.n_step = n_step
        self.pass_obs_keys_to_actor = list(pass_obs_keys_to_actor or [])
        self.critic_loss_weight = critic_loss_weight
        self.learning_rate, self.lr_warmup_steps, self.l2_coeff = learning_rate, lr_warmup_steps, l2_coeff

        self.gammas_list = trained_gammas(gamma, self.discrete, use_multigamma)
        gammas = torch.tensor(self.gammas_list, dtype=torch.float32)  # (G,)
        self.register_buffer("gammas", gammas, persistent=False)

        self.tstep_encoder = tstep_encoder_type(obs_space, rl2_space)
        self.traj_encoder = traj_encoder_type(self.tstep_encoder.emb_dim, max_seq_len)
        state_dim = self.traj_encoder.emb_dim
        self.actor = self.build_actor(actor_type, state_dim)
        self.critics = critic_type(state_dim, self.action_dim, self.discrete, self.gammas_list, num_critics)
        self.popart = PopArtLayer(len(self.gammas_list), enabled=popart)
        self.init_extra_networks()
        # EMA targets for the TD target, and a hard copy of the critics for the DPG term, so the
        # actor's gradient through Q reaches only the action (amago/agent.py:681, 711-716 at 2d85600).
        self.target_critics = self._frozen_copy(self.critics)
        self.target_actor = self._frozen_copy(self.actor)
        self.maximized_critics = self._frozen_copy(self.critics)
        self._check_config()
        # Training state: the global step the targets last followed, and the non-finite-step guard.
        self._last_synced_step: int | None = None
        self.nonfinite_guard = NonFiniteGuard()

    # ----------------------------------------------------------------------------- build
    @staticmethod
    def _frozen_copy(module: nn.Module) -> nn.Module:
        out = copy.deepcopy(module)
        out.requires_grad_(False)
        return out

    def _check_config(self) -> None:
        dist = self.policy_dist
        if self.online_coeff > 0 and not dist.actions_differentiable:
            raise ValueError(
                f"{type(dist).__name__} actions are not differentiable, so the DPG term needs "
                f"online_coeff=0 (got {self.online_coeff}); bind `Agent.online_coeff = 0.0`."
            )
        if self.multibinary and type(dist).__name__ != "Multibinary":
            raise ValueError("MultiBinary action spaces need `Actor.continuous_dist_type = @Multibinary`.")
        if self.discrete != dist.discrete:
            raise ValueError(f"{type(dist).__name__} does not match action space {self.action_space}")

    def build_actor(self, actor_type: type[nn.Module], state_dim: int) -> nn.Module:
        return actor_type(state_dim, self.action_dim, self.discrete, self.gammas_list)

    def init_extra_networks(self) -> None:
        """Hook: build extra modules before the target copies are made (amago/agent.py:687 at 2d85600)."""

    @property
    def policy_dist(self):
        return self.actor.policy_dist

    @property
    def trainable_modules(self) -> dict[str, nn.Module]:
        return {
            "actor": self.actor,
            "critics": self.critics,
            "traj_encoder": self.traj_encoder,
            "tstep_encoder": self.tstep_encoder,
        }

    @property
    def skipped_steps(self) -> int:
        """Optimizer steps skipped for a non-finite loss or gradients in this run (checkpointed)."""
        return self.nonfinite_guard.skipped_steps

    # ---------------------------------------------------------------------------- acting
    def forward(
        self,
        obs: dict[str, torch.Tensor],
        rl2s: torch.Tensor,
        time_idxs: torch.Tensor,
        hidden_state: Any = None,
    ):
        """obs each (B, L, ...), rl2s (B, L, 1+A), time_idxs (B, L) -> (dist over (B, L, G, A), hidden)."""
        emb = self.tstep_encoder(obs, rl2s)  # (B, L, D_tstep)
        state, hidden_state = self.traj_encoder(emb, time_idxs, hidden_state)  # (B, L, D)
        return self.actor(state, self._obs_for_actor(obs)), hidden_state

    @torch.no_grad()
    def get_actions(
        self,
        obs: dict[str, torch.Tensor],
        rl2s: torch.Tensor,
        time_idxs: torch.Tensor,
        hidden_state: Any,
        sample: bool = True,
    ):
        """Length-1 inputs (N, 1, ...) -> (actions, new hidden state) at the rollout (last) gamma.

        Actions: (N,) int64 indices for Discrete, (N, A) float32 otherwise.
        """
        dist, hidden_state = self(obs, rl2s, time_idxs, hidden_state)
        actions = self.policy_dist.env_action(dist, sample)  # (N, 1, G) or (N, 1, G, A)
        actions = actions[:, -1, -1]
        actions = actions.long() if self.discrete else actions.float()
        return actions, hidden_state

    def init_hidden_state(self, n: int, device: torch.device | str) -> Any:
        return self.traj_encoder.init_hidden_state(n, device)

    def reset_hidden_state(self, hidden_state: Any, dones: torch.Tensor) -> Any:
        return self.traj_encoder.reset_hidden_state(hidden_state, dones)

    def _obs_for_actor(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        return {k: obs[k] for k in self.pass_obs_keys_to_actor} or None

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, batch: Batch, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        """All loss parts (``loss_*``, summed by ``training_step``) and, if asked, dashboard scalars.

        See :func:`amago_pl.modules.update.compute_loss` for the order of the parts.
        """
        return update.compute_loss(self, batch, diagnostics)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        log_now = self._should_log()
        parts = self.compute_loss(batch, diagnostics=log_now)
        loss = sum(v for k, v in parts.items() if k.startswith("loss_"))
        bs = batch.batch_size
        self.nonfinite_guard.note_loss(loss)  # checked, on all ranks at once, before the optimizer step
        # A self.log call costs ~1 ms, 1-3% of a small update (benchmarks/README.md): log on logging
        # steps (the only ones loggers write) and every PROGRESS_LOG_EVERY batches for the progress bar.
        if log_now or batch_idx % PROGRESS_LOG_EVERY == 0:
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        if log_now:
            metrics = {f"train/{k}": v.detach().float() for k, v in parts.items()}
            metrics["gradient_steps"] = torch.tensor(float(self.global_step))
            self.log_dict(metrics, batch_size=bs)
        return loss

    # Overridable parts of the loss (called by amago_pl.modules.update).
    def edit_actor_mask(self, batch: Batch, actor_loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hook: which actor-loss elements count toward ``loss_actor`` (amago/agent.py:440 at 2d85600).

        The returned mask (same shape, bool or float weights) only decides what the mean covers.
        ``actor_loss``: per-element loss (B, L-1, G, 1), in the autograd graph; ``mask``: a fresh
        (B, L-1, G, 1) bool tensor of real transitions (editable in place).
        """
        return mask

    def edit_critic_mask(
        self, batch: Batch, critic_loss: torch.Tensor | None, mask: torch.Tensor
    ) -> torch.Tensor:
        """Hook: which critic-loss elements count toward ``loss_critic`` (amago/agent.py:456 at 2d85600).

        As ``edit_actor_mask``, with (B, L-1, C, G, 1) shapes; TD targets and PopArt statistics
        always use the real transitions. ``critic_loss`` is before ``critic_loss_weight``, or None
        when the critics are not evaluated (``fake_filter`` with ``online_coeff = 0``; the answer is
        then ignored) or an overridden ``critic_loss`` returns no ``critic_elements``.
        """
        return mask

    def denormalize_values(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw critic values (..., G, 1) -> scaled-return units (PopArt: sigma * (w x + b) + mu)."""
        return self.popart(raw, normalized=False)

    def critic_loss(
        self, q_buffer_out: torch.Tensor, td_target: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """MSE between PopArt-normalised predictions and targets (amago/agent.py:1000 at 2d85600).

        q_buffer_out (B, L-1, C, G, P), td_target (B, L-1, 1, G, 1) -> ``loss_critic`` and
        ``critic_elements`` (B, L-1, C, G, 1).
        """
        return losses.critic_loss_mse(
            self.popart(self.critics.values(q_buffer_out)), self.popart.normalize(td_target), mask
        )

    def dpg_value(self, q_agent_min: torch.Tensor) -> torch.Tensor:
        """Raw min_C Q(s, a~pi) (B, L-1, G, 1) -> the scale-free value the actor maximises."""
        return self.popart(q_agent_min)

    # ------------------------------------------------------------------ validation / test
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Evaluation is env rollouts, run by ``EvalCallback`` at the end of the validation epoch;
        this step only lets Lightning's loop (and ``Trainer.validate``) run."""

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """See ``validation_step``: ``Trainer.test`` runs the test ``EvalCallback``."""

    # ----------------------------------------------------------------------------- hooks
    def on_train_start(self) -> None:
        self._last_synced_step = self.trainer.global_step
        self.nonfinite_guard.start()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.nonfinite_guard.skip_step(optimizer, self._trainer, self.device):
            self.log("train/skipped_steps", float(self.skipped_steps))
            return
        if self._should_log():
            metrics = update.grad_norms(self.trainable_modules)
            metrics["train/learning_rate"] = torch.tensor(float(optimizer.param_groups[0]["lr"]))
            metrics["train/skipped_steps"] = torch.tensor(float(self.skipped_steps))
            self.log_dict(metrics)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Once per optimizer step (global_step advances only when one happened, so accumulation is
        # handled), after the update: targets trail the online weights by one EMA step.
        step = self.trainer.global_step
        if self._last_synced_step is None:
            self._last_synced_step = step
        elif step != self._last_synced_step:
            self._last_synced_step = step
            self.soft_sync_targets()

    def hard_sync_targets(self) -> None:
        """Copy the online actor and critics into every target copy."""
        update.copy_targets(self)

    def soft_sync_targets(self) -> None:
        """EMA targets with rate tau; the DPG critic copy is a hard copy of the current critics."""
        update.ema_targets(self, self.tau)

    def _should_log(self) -> bool:
        # Lightning's "loggers write at this step" flag (no public accessor); True outside a Trainer.
        connector = getattr(self._trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    # ------------------------------------------------------------------------ optimizer
    def configure_optimizers(self):
        """AdamW (weight decay ``l2_coeff``) with a linear LR warmup over ``lr_warmup_steps`` optimizer
        steps, stepped every optimizer step (``update.build_optimizer``)."""
        return update.build_optimizer(self)

    def to_torchscript(self, *args: Any, **kwargs: Any) -> Any:
        """Refused with the export to use: Lightning's version scripts the training forward (whole
        sequences, no memory inputs) and failed inside InputNorm with TorchScript's own error."""
        raise NotImplementedError(
            "Agent.to_torchscript is not a deployment path for an agent with memory. Export the acting "
            "step, with its KV cache or RNN state as explicit inputs and outputs: from amago_pl.policy.export "
            "import export_torchscript; export_torchscript(Policy.from_agent(agent), 'step.ts', num_envs=N) "
            "(docs/policy.md, 'Export')."
        )

    # ---------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ckpt.save_agent_keys(checkpoint, self.skipped_steps, type(self))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Before the weights are restored: refuse a checkpoint written with another configuration.

        Lists every differing hyperparameter and model gin binding. Set the environment variable
        ``AMAGO_PL_ALLOW_CONFIG_CHANGE=1`` to continue anyway (the differences are logged).
        A checkpoint whose hyperparameters are not plain data (pickled, written before checkpoints
        held plain data) or name an unregistered class is refused, naming the file or the path.
        """
        self.nonfinite_guard.skipped_steps = ckpt.skipped_steps_of(checkpoint)
        ckpt.check_plain(checkpoint, getattr(self._trainer, "ckpt_path", None) or "the checkpoint")
        ckpt.check_agent_config(checkpoint, self.hparams)

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path | IO,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ):
        """Rebuild the agent from the checkpoint alone: its gin config, its plain hyperparameters
        (classes resolved against the registered ones: ``amago_pl.modules.hparams``), its weights.

        Lightning's arguments; the file is read with ``weights_only=True`` (always; False is ignored),
        and a checkpoint written before plain-data checkpoints is refused with the conversion command.
        """
        return ckpt.load_agent(
            cls, checkpoint_path, map_location, hparams_file, strict, weights_only, **kwargs
        )


# MultiTaskAgent lives in multitask_agent.py (a subclass cannot be defined before its base), the
# non-finite-step names in nonfinite.py and the checkpoint keys in checkpoint.py; their old paths
# here and in the former agent_step.py are served through the alias table (amago_pl/compat.py).
__getattr__ = compat.name_getattr(__name__)

__all__ = [  # noqa: F822 - MultiTaskAgent is served by __getattr__
    "Agent",
    "MultiTaskAgent",
    "Multigammas",
    "get_agent_cls",
    "list_registered_agents",
    "register_agent",
]
