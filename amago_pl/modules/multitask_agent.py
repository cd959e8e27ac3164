"""MultiTaskAgent: the AMAGO-2 update (two-hot classification critics and a filtered-BC actor).

Its own file keeps agent.py to one class. The original's path (amago/agent.py at 2d85600) still
serves it: ``amago_pl.modules.agent.MultiTaskAgent`` imports, and full-path gin keys under that
module are rewritten by the alias table (``amago_pl/compat.py``).
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
    [``Discrete.clip_prob_low``, ``Discrete.clip_prob_high``] and renormalised in the loss and in
    rollouts, as the original's Discrete head does before it is wrapped (amago/agent.py:1313 at
    2d85600). PopArt statistics are still tracked, but only normalise the optional DPG term.

    Same arguments as :class:`Agent` (gin binds them as ``MultiTaskAgent.*``; bindings on
    ``Agent.*`` do not apply). The defaults that differ, and why:

    Args:
        online_coeff: off, because the DPG term's scale depends on the size of the returns.
        offline_coeff: the filtered-BC term carries the whole actor update.
        num_actions_for_value_in_actor_loss: K sampled actions for the V(s) baseline of the
            advantage, Discrete included (through sampled one-hot actions).
        critic_type: a classification critic on scaled returns; a critic head without
            ``raw_vals_to_labels`` falls back to the Agent's PopArt MSE loss.
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
