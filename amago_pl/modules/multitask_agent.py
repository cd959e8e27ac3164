"""MultiTaskAgent: the AMAGO-2 update (two-hot classification critics and a filtered-BC actor).

Defined apart from ``agent.py`` to keep each file to one agent. The original's path
(``amago/agent.py``) still serves it: ``amago_pl.modules.agent.MultiTaskAgent`` imports, and full-path
gin keys under that module are rewritten here by the alias table (``amago_pl/compat.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import gin
import gymnasium as gym
import torch
from torch import nn

from amago_pl.modules import losses
from amago_pl.modules.agent import Agent, register_agent
from amago_pl.nets.actor_critic import Actor, NCriticsTwoHot
from amago_pl.nets.policy_dists import DiscreteLikeContinuous
from amago_pl.nets.traj_encoders import TrajEncoder
from amago_pl.nets.tstep_encoders import TstepEncoder


@register_agent("multitask")
@gin.configurable
class MultiTaskAgent(Agent):
    """The AMAGO-2 update: classification (two-hot) critics on raw scaled returns and a filtered-BC actor.

    Discrete actions use :class:`DiscreteLikeContinuous` (one-hot actions into an (s, a) critic),
    so the advantage baseline averages K sampled actions. Its probabilities are clipped to
    [``Discrete.clip_prob_low``, ``Discrete.clip_prob_high``] (0.001, 0.99) and renormalised in the
    loss and in rollouts, as the original's Discrete head does before it is wrapped
    (amago/agent.py:1313 at 2d85600). PopArt statistics are still tracked, but
    only normalise the optional DPG term.

    Same keywords as :class:`Agent`; only the defaults of ``online_coeff``, ``offline_coeff``,
    ``num_actions_for_value_in_actor_loss`` and ``critic_type`` differ. With a critic head that
    is not a classification critic (no ``raw_vals_to_labels``) the PopArt MSE loss of ``Agent``
    is used instead.

    This class is gin-configurable: select it with ``Experiment.agent_type = @MultiTaskAgent``;
    ``Experiment.start()`` builds it from the positional arguments below plus the three optimizer
    keywords, and every other keyword keeps its default unless gin binds it
    (``MultiTaskAgent.num_critics = 6``; bindings on ``Agent.*`` do not apply to it).

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
        online_coeff: weight of the DPG term; off by default because its scale depends on the
            size of the returns. Defaults to 0.0.
        offline_coeff: weight of the advantage-filtered behaviour-cloning term. Defaults to 1.0.
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
            estimate the V(s) baseline of the advantage (Discrete included, through sampled
            one-hot actions). Defaults to 3.
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
            For Discrete spaces it is built with ``discrete_dist_type=DiscreteLikeContinuous``.
        critic_type: the critic head class. Defaults to ``NCriticsTwoHot`` (a classification
            critic on scaled returns).
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
        online_coeff: float = 0.0,
        offline_coeff: float = 1.0,
        gamma: float = 0.999,
        reward_multiplier: float = 10.0,
        tau: float = 0.003,
        fake_filter: bool = False,
        num_actions_for_value_in_critic_loss: int = 1,
        num_actions_for_value_in_actor_loss: int = 3,
        fbc_filter_func: Callable = losses.binary_filter,
        popart: bool = True,
        use_target_actor: bool = True,
        use_multigamma: bool = True,
        n_step: int = 1,
        actor_type: type[nn.Module] = Actor,
        critic_type: type[nn.Module] = NCriticsTwoHot,
        pass_obs_keys_to_actor: Iterable[str] | None = None,
        critic_loss_weight: float = 10.0,
        learning_rate: float = 1e-4,
        lr_warmup_steps: int = 500,
        l2_coeff: float = 1e-3,
    ):
        kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__(**kwargs)

    def build_actor(self, actor_type: type[nn.Module], state_dim: int) -> nn.Module:
        if not self.discrete:
            return super().build_actor(actor_type, state_dim)
        # One-hot samples feed the (s, a) two-hot critic; the K-sample baseline needs rsample.
        return actor_type(
            state_dim,
            self.action_dim,
            self.discrete,
            self.gammas_list,
            discrete_dist_type=DiscreteLikeContinuous,
        )

    def denormalize_values(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float()  # two-hot critics already predict scaled returns

    def critic_loss(
        self, q_buffer_out: torch.Tensor, td_target: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if not hasattr(self.critics, "raw_vals_to_labels"):
            return super().critic_loss(q_buffer_out, td_target, mask)
        return losses.critic_loss_twohot(q_buffer_out, self.critics.raw_vals_to_labels(td_target), mask)

    def dpg_value(self, q_agent_min: torch.Tensor) -> torch.Tensor:
        return self.popart.normalize(q_agent_min)
