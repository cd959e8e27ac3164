"""The Agent LightningModule: TstepEncoder -> TrajEncoder -> actor + critic ensemble over all gammas.

One causal pass over each training sequence is shared by the actor and the critics (inventory
1.7). Losses live in :mod:`amago_pl.modules.losses`; this module wires the networks, target
copies, logging and the optimizer. Shapes: B batch, L observations (L-1 transitions), D width,
K sampled actions, C critics, G gammas, A action width.
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
from amago_pl.modules import losses
from amago_pl.modules.agent_step import SKIPPED_STEPS_CKPT_KEY, AgentStepMixin
from amago_pl.nets.actor_critic import Actor, NCritics
from amago_pl.nets.popart import PopArtLayer
from amago_pl.nets.traj_encoders import TrajEncoder
from amago_pl.nets.tstep_encoders import TstepEncoder

GIN_CKPT_KEY = "amago_pl_gin_config"

_AGENTS: dict[str, type[Agent]] = {}


def register_agent(name: str) -> Callable[[type], type]:
    """Class decorator: make an Agent subclass available as ``get_agent_cls(name)``."""

    def deco(cls: type) -> type:
        _AGENTS[name] = cls
        return cls

    return deco


def get_agent_cls(name: str) -> type[Agent]:
    try:
        return _AGENTS[name]
    except KeyError:
        raise ValueError(f"Unknown agent {name!r}; registered: {sorted(_AGENTS)}") from None


def list_registered_agents() -> list[str]:
    return sorted(_AGENTS)


@gin.configurable
class Multigammas:
    """Extra discount factors trained in parallel with ``Agent.gamma`` (inventory 4.6).

    Continuous critics run once per gamma, so long lists cost more there than for discrete ones.
    Used only when ``Agent.use_multigamma`` is True; ``Agent.gamma`` is always appended last, so
    the default run trains G = 7 discount factors.

    This class is gin-configurable: the Agent builds it as ``Multigammas()`` and both keywords keep
    their defaults unless gin binds them (``Multigammas.discrete = [0.9, 0.99]``).

    Args:
        discrete: extra discount factors used when the action space is Discrete.
            Defaults to (0.1, 0.9, 0.95, 0.97, 0.99, 0.995).
        continuous: extra discount factors used for every other action space.
            Defaults to (0.1, 0.9, 0.95, 0.97, 0.99, 0.995).
    """

    def __init__(
        self,
        discrete: Iterable[float] = (0.1, 0.9, 0.95, 0.97, 0.99, 0.995),
        continuous: Iterable[float] = (0.1, 0.9, 0.95, 0.97, 0.99, 0.995),
    ):
        self.discrete = [float(g) for g in discrete]
        self.continuous = [float(g) for g in continuous]


@register_agent("agent")
@gin.configurable
class Agent(AgentStepMixin, pl.LightningModule):
    """Off-policy actor-critic over sequences (AMAGO, Grigsby et al. 2024).

    Critic: PopArt-normalised MSE to REDQ TD targets, one head per gamma. Actor: online DPG through
    a frozen copy of the critics plus advantage-filtered BC. The last gamma is the one used to act.
    Structural arguments are positional; every keyword is a gin default (``Agent.gamma = 0.99``).
    The optimizer keywords are usually set by the Experiment.

    The total loss is ``actor + critic_loss_weight * critic``. The actor loss is
    ``-online_coeff * popart(min_C Q(s, a~pi)) - offline_coeff * f(A) * log pi(a_buffer | s)``,
    where ``f`` is ``fbc_filter_func`` and ``A = Q(s, a_buffer) - V(s)``.

    This class is gin-configurable: ``Experiment.start()`` builds it from the positional
    arguments below plus the three optimizer keywords, and every other keyword keeps its default
    unless gin binds it.

    Args:
        obs_space: the AMAGOEnv observation space (a ``gym.spaces.Dict``). Supplied by amago_pl
            from the env, not by gin.
        rl2_space: ``Box(1 + A)`` of [previous reward, previous action]. Supplied by amago_pl from
            the env, not by gin.
        action_space: the env's action space (Discrete, Box in [-1, 1], or MultiBinary). Supplied
            by amago_pl from the env, not by gin.
        max_seq_len: context length of training sequences and of the rollout memory. Supplied by
            the Experiment (``Experiment.max_seq_len``).
        tstep_encoder_type: the TstepEncoder class, built as ``cls(obs_space, rl2_space)``.
            Supplied by the Experiment (``Experiment.tstep_encoder_type``).
        traj_encoder_type: the TrajEncoder class, built as ``cls(tstep_dim, max_seq_len)``.
            Supplied by the Experiment (``Experiment.traj_encoder_type``).
        num_critics: size C of the critic ensemble. Defaults to 4.
        num_critics_td: per TD target, this many ensemble members are drawn at random (with
            replacement) and reduced with a min when ``online_coeff > 0``, a mean otherwise
            (REDQ-style). Defaults to 2.
        online_coeff: weight of the DPG term (maximise the critics' value of the policy's own
            action). Needs a policy distribution with differentiable actions; 0 disables it.
            Defaults to 1.0.
        offline_coeff: weight of the advantage-filtered behaviour-cloning term on replay actions.
            Defaults to 0.1.
        gamma: the main discount factor. It is always the last of the trained gammas and the one
            whose policy acts in the env. Defaults to 0.999.
        reward_multiplier: rewards are multiplied by this inside the loss only (not in the rl2
            inputs or the logged returns); value bounds such as ``NCriticsTwoHot.max_return`` are
            in these scaled units. Defaults to 10.0.
        tau: rate of the exponential moving average that moves the target critics and the target
            actor toward the online ones after every optimizer step. Defaults to 0.003.
        fake_filter: give every replay action weight 1 in the BC term (plain behaviour cloning);
            with ``online_coeff = 0`` the critics are then not evaluated at all. Defaults to False.
        num_actions_for_value_in_critic_loss: number K of next actions sampled from the (target)
            actor to estimate V(s') in the TD target. Continuous actions only (Discrete uses the
            exact probabilities). Defaults to 1.
        num_actions_for_value_in_actor_loss: number K of actions sampled from the actor to
            estimate V(s) for the advantage and the DPG term. Continuous actions only.
            Defaults to 1.
        fbc_filter_func: maps an advantage tensor to the BC weights (``binary_filter``,
            ``exp_filter``, ``leaky_relu_filter`` or any gin-bound function of the same form).
            Defaults to ``binary_filter``.
        popart: normalise value targets per gamma with ``PopArtLayer``; False makes it an
            identity. Defaults to True.
        use_target_actor: sample the TD target's next actions from the slow target actor (True)
            or from the online actor (False). Defaults to True.
        use_multigamma: also train the extra discount factors listed in ``Multigammas`` (from its
            ``discrete`` or ``continuous`` list, matching the action space). Defaults to True.
        n_step: length of the TD return (``n_step = 1`` is the one-step target); returns are cut
            at terminals and at the end of the sampled sequence. Defaults to 1.
        actor_type: the actor head class, built as ``cls(state_dim, action_dim, discrete,
            gammas)``. Defaults to ``Actor``.
        critic_type: the critic head class, built as ``cls(state_dim, action_dim, discrete,
            gammas, num_critics)``. Defaults to ``NCritics``.
        pass_obs_keys_to_actor: observation keys handed to the actor head unchanged (e.g. action
            masks for a custom head); the built-in heads ignore them. None passes none.
            Defaults to None.
        critic_loss_weight: the critic loss is multiplied by this before it is added to the actor
            loss. Defaults to 10.0.
        learning_rate: AdamW learning rate. The Experiment passes its own ``learning_rate``, so
            set ``Experiment.learning_rate`` instead. Defaults to 1e-4.
        lr_warmup_steps: optimizer steps of linear learning-rate warmup from 0, after which the
            rate stays constant. Passed by the Experiment (``Experiment.lr_warmup_steps``).
            Defaults to 500.
        l2_coeff: AdamW weight decay. Passed by the Experiment (``Experiment.l2_coeff``).
            Defaults to 1e-3.
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

        multigammas = Multigammas()
        extra = (multigammas.discrete if self.discrete else multigammas.continuous) if use_multigamma else []
        self.gammas_list = [*extra, float(gamma)]
        self.register_buffer(
            "gammas", torch.tensor(self.gammas_list, dtype=torch.float32), persistent=False
        )  # (G,)

        self.tstep_encoder = tstep_encoder_type(obs_space, rl2_space)
        self.traj_encoder = traj_encoder_type(self.tstep_encoder.emb_dim, max_seq_len)
        state_dim = self.traj_encoder.emb_dim
        self.actor = self.build_actor(actor_type, state_dim)
        self.critics = critic_type(state_dim, self.action_dim, self.discrete, self.gammas_list, num_critics)
        self.popart = PopArtLayer(len(self.gammas_list), enabled=popart)
        self.init_extra_networks()
        # Copies: EMA targets for the TD target, and a hard copy of the critics for the DPG term, so
        # the actor's gradient through Q reaches only the action (inventory 1.7.10).
        self.target_critics = self._frozen_copy(self.critics)
        self.target_actor = self._frozen_copy(self.actor)
        self.maximized_critics = self._frozen_copy(self.critics)
        self._check_config()
        self._last_synced_step: int | None = None

    # --------------------------------------------------------------------------- setup
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
        """Hook: build extra modules before the target copies are made."""

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

    # -------------------------------------------------------------------------- acting
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

    # --------------------------------------------------------------- loss-specific hooks
    def edit_actor_mask(self, batch, actor_loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hook: which actor-loss elements count toward ``loss_actor`` (amago/agent.py:440 at 2d85600).

        Called after the loss exists; the returned mask (same shape, bool or float weights) only
        decides which elements the mean covers. ``actor_loss`` is the per-element loss
        (B, L-1, G, 1), still in the autograd graph; ``mask`` (B, L-1, G, 1) bool marks real
        transitions and is a fresh tensor (editable in place). The default keeps ``mask``.
        """
        return mask

    def edit_critic_mask(self, batch, critic_loss: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """Hook: which critic-loss elements count toward ``loss_critic`` (amago/agent.py:456 at 2d85600).

        Called after the loss exists; the returned mask (same shape, bool or float weights) only
        decides which elements the mean covers: TD targets and PopArt statistics always use the
        real transitions. ``critic_loss`` is the per-element loss (B, L-1, C, G, 1) before
        ``critic_loss_weight``, or None when the critics are not evaluated (``fake_filter`` with
        ``online_coeff = 0``; the answer is then ignored) or an overridden ``critic_loss`` returns
        no ``critic_elements``. ``mask`` (B, L-1, C, G, 1) bool marks real transitions and is a
        fresh tensor. The default keeps ``mask``.
        """
        return mask

    def denormalize_values(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw critic values (..., G, 1) -> scaled-return units (PopArt: sigma * (w x + b) + mu)."""
        return self.popart(raw, normalized=False)

    def critic_loss(
        self, q_buffer_out: torch.Tensor, td_target: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """PopArt: MSE between normalised predictions and normalised targets (inventory 4.8)."""
        return losses.critic_loss_mse(
            self.popart(self.critics.values(q_buffer_out)), self.popart.normalize(td_target), mask
        )

    def dpg_value(self, q_agent_min: torch.Tensor) -> torch.Tensor:
        """Raw min_C Q(s, a~pi) (B, L-1, G, 1) -> the scale-free value the actor maximises."""
        return self.popart(q_agent_min)

    # -------------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        params = [p for m in self.trainable_modules.values() for p in m.parameters() if p.requires_grad]
        # The fused kernel replaces AdamW's per-parameter Python loop (5-17% of a small CPU update,
        # benchmarks/README.md); it needs floating-point parameters on CPU or CUDA. Lightning's
        # mixed-precision plugins refuse to clip gradients for optimizers that unscale internally
        # (fused ones), so mixed precision keeps the plain implementation.
        precision = str(self._trainer.precision) if self._trainer is not None else "32-true"
        fused = "mixed" not in precision and all(
            p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
        )
        opt = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.l2_coeff, fused=fused)
        warmup = self.lr_warmup_steps

        def warmup_then_constant(step: int) -> float:
            # transformers.get_constant_schedule_with_warmup, as in the original.
            return float(step) / float(max(1, warmup)) if step < warmup else 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_constant)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    @torch.no_grad()
    def hard_sync_targets(self) -> None:
        for online, target in self._target_pairs():
            target.load_state_dict(online.state_dict())
        self.maximized_critics.load_state_dict(self.critics.state_dict())

    @torch.no_grad()
    def soft_sync_targets(self) -> None:
        """EMA targets with rate tau; the DPG critic copy is a hard copy of the current critics."""
        for online, target in self._target_pairs():
            t_params = [p for p in target.parameters()]
            o_params = [p.detach() for p in online.parameters()]
            torch._foreach_lerp_(t_params, o_params, self.tau)
            for tb, ob in zip(target.buffers(), online.buffers()):
                tb.copy_(ob)
        for tp, op in zip(self.maximized_critics.parameters(), self.critics.parameters()):
            tp.copy_(op.detach())

    def _target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.critics, self.target_critics), (self.actor, self.target_actor)]

    # --------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Encoder keywords come from gin, not from the hyperparameters: keep the config with the weights.
        checkpoint[GIN_CKPT_KEY] = gin.config_str()
        # The total of skipped (non-finite) steps is a run statistic: a resumed run keeps counting.
        checkpoint[SKIPPED_STEPS_CKPT_KEY] = int(getattr(self, "skipped_steps", 0))

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path | IO,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = False,
        **kwargs: Any,
    ):
        """Rebuild the agent: re-parse the stored gin config (so encoder keywords match), then load.

        ``weights_only=False`` because the hyperparameters hold gym spaces and classes; only load
        checkpoints you trust.
        """
        if not hasattr(checkpoint_path, "read"):
            ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
            config = ckpt.get(GIN_CKPT_KEY)
            if config:
                with gin.unlock_config():
                    gin.parse_config(compat.rewrite_gin_text(config), skip_unknown=True)
        return super().load_from_checkpoint(
            checkpoint_path,
            map_location=map_location,
            hparams_file=hparams_file,
            strict=strict,
            weights_only=weights_only,
            **kwargs,
        )


# MultiTaskAgent lives in multitask_agent.py (a subclass cannot be defined before its base);
# the original's path amago/agent.py still serves it, through the alias table.
__getattr__ = compat.name_getattr(__name__)

__all__ = [  # noqa: F822 - MultiTaskAgent is served by __getattr__
    "Agent",
    "MultiTaskAgent",
    "Multigammas",
    "get_agent_cls",
    "list_registered_agents",
    "register_agent",
]
