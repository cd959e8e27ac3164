"""Encoders written for the original's API run unchanged after the rename: a TstepEncoder whose
``inner_forward(obs, rl2s, log_dict=None)`` (amago/nets/tstep_encoders.py:113 at 2d85600) and a
TrajEncoder whose ``forward(seq, time_idxs, hidden_state=None, log_dict=None)`` takes
``time_idxs`` (B, L, 1) (amago/nets/traj_encoders.py:140)."""

from __future__ import annotations

import gin
import torch
from torch import nn

from amago_pl import TrajEncoder, TstepEncoder, register_traj_encoder
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive
from amago_pl.nets.utils import add_activation_log
from tests.porting.porting_helpers import tiny_run

SEEN: dict[str, list] = {"log_dict": [], "time_shape": []}


@gin.configurable
class OriginalStyleTstepEncoder(TstepEncoder):
    def __init__(self, obs_space, rl2_space, d_output: int = 16):
        super().__init__(obs_space=obs_space, rl2_space=rl2_space)
        d_in = obs_space["observation"].shape[0] + rl2_space.shape[0]
        self.net = nn.Linear(d_in, d_output)
        self._emb_dim = d_output

    def inner_forward(self, obs, rl2s, log_dict=None):
        SEEN["log_dict"].append(log_dict)
        assert obs["observation"].dim() == 3 and rl2s.shape[:2] == obs["observation"].shape[:2]
        out = self.net(torch.cat((obs["observation"].float(), rl2s), dim=-1))  # (B, L, d_output)
        add_activation_log("tstep", out, log_dict)
        return out

    @property
    def emb_dim(self):
        return self._emb_dim


@register_traj_encoder("original_style_gru")
class OriginalStyleGRU(TrajEncoder):
    def __init__(self, tstep_dim, max_seq_len, d_hidden: int = 16):
        super().__init__(tstep_dim, max_seq_len)
        self.rnn = nn.GRU(tstep_dim + 1, d_hidden, batch_first=True)
        self._emb_dim = d_hidden

    def init_hidden_state(self, batch_size, device):
        return torch.zeros(1, batch_size, self._emb_dim, device=device)

    def reset_hidden_state(self, hidden_state, dones):
        hidden_state[:, torch.as_tensor(dones, device=hidden_state.device)] = 0.0
        return hidden_state

    def forward(self, seq, time_idxs, hidden_state=None, log_dict=None):
        SEEN["time_shape"].append(tuple(time_idxs.shape))
        assert time_idxs.shape == (*seq.shape[:2], 1)  # the original's (B, L, 1)
        out, hidden_state = self.rnn(torch.cat((seq, time_idxs.float() / 10), dim=-1), hidden_state)
        return out, hidden_state

    @property
    def emb_dim(self):
        return self._emb_dim


def make_env():
    return AMAGOEnv(TMazeAltPassive(corridor_length=3), env_name="TMaze")


def test_original_style_tstep_encoder_gets_log_dict_not_the_mask(tmp_path):
    SEEN["log_dict"].clear()
    tiny_run(tmp_path, make_env, tstep_encoder_type=OriginalStyleTstepEncoder)
    assert SEEN["log_dict"] and all(d is None for d in SEEN["log_dict"])


def test_original_style_tstep_encoder_fills_a_given_log_dict():
    from gymnasium import spaces

    enc = OriginalStyleTstepEncoder(
        spaces.Dict({"observation": spaces.Box(-1, 1, (3,))}), spaces.Box(-1, 1, (5,))
    )
    log: dict = {}
    out = enc({"observation": torch.zeros(2, 4, 3)}, torch.zeros(2, 4, 5), log_dict=log)
    assert out.shape == (2, 4, 16) and set(log) == {
        f"activation-tstep-{s}" for s in ("max", "min", "std", "mean")
    }


def test_original_style_traj_encoder_gets_column_time_idxs(tmp_path):
    SEEN["time_shape"].clear()
    tiny_run(tmp_path, make_env, traj_encoder="original_style_gru")
    assert any(s[1] > 1 for s in SEEN["time_shape"]) and any(
        s[1] == 1 for s in SEEN["time_shape"]
    )  # train + act
