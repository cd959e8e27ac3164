"""The Agent under Lightning's Trainer: fits per action space and distribution, target updates,
gradient accumulation, bf16-mixed on CPU and checkpoint round trips."""

from __future__ import annotations

import copy
import warnings

import gin
import gymnasium as gym
import lightning.pytorch as pl
import pytest
import torch

from amago_pl.modules.agent import Agent, MultiTaskAgent
from amago_pl.nets.policy_dists import GMM, Beta, Multibinary, TanhGaussian
from amago_pl.nets.traj_encoders import GRUTrajEncoder, TformerTrajEncoder
from amago_pl.nets.tstep_encoders import FFTstepEncoder
from amago_pl.testing.batches import SyntheticBatches, batch_loader, bind_tiny, spaces_for

DISCRETE = gym.spaces.Discrete(3)
BOX = gym.spaces.Box(-1.0, 1.0, (2,))


@pytest.fixture(autouse=True)
def tiny_gin():
    gin.clear_config()
    bind_tiny()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    yield
    gin.clear_config()


def make(cls=Agent, space=DISCRETE, traj=GRUTrajEncoder, **kw) -> Agent:
    torch.manual_seed(0)
    obs, rl2 = spaces_for(3, space)
    return cls(obs, rl2, space, 6, FFTstepEncoder, traj, **kw)


def trainer(steps: int, **kw) -> pl.Trainer:
    kw.setdefault("logger", False)
    return pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **kw,
    )


def fit(agent: Agent, steps: int = 3, **kw) -> pl.Trainer:
    t = trainer(steps, **kw)
    t.fit(
        agent,
        batch_loader(SyntheticBatches(agent.obs_space, agent.action_space, 3, 5, num_batches=steps * 4)),
    )
    return t


CASES = [
    (Agent, DISCRETE, None, {}),
    (Agent, BOX, TanhGaussian, {}),
    (Agent, BOX, Beta, {}),
    (Agent, BOX, GMM, {"online_coeff": 0.0}),
    (Agent, gym.spaces.MultiBinary(3), Multibinary, {"online_coeff": 0.0}),
    (MultiTaskAgent, DISCRETE, None, {}),
    (MultiTaskAgent, BOX, TanhGaussian, {"online_coeff": 0.5}),
    (MultiTaskAgent, gym.spaces.MultiBinary(3), Multibinary, {}),
]


@pytest.mark.parametrize(
    "cls,space,dist,kw",
    CASES,
    ids=[f"{c[0].__name__}-{type(c[1]).__name__}-{getattr(c[2], '__name__', 'default')}" for c in CASES],
)
def test_fit_each_action_space(cls, space, dist, kw):
    if dist is not None:
        gin.bind_parameter("Actor.continuous_dist_type", dist)
    agent = make(cls, space, **kw)
    t = fit(agent, steps=2)
    assert t.global_step == 2
    assert torch.isfinite(t.callback_metrics["train/loss"])
    assert "train/grad_norm_actor" in t.callback_metrics and "train/learning_rate" in t.callback_metrics


class _Recorder(pl.Callback):
    """Snapshots around the first optimizer step."""

    def on_before_optimizer_step(self, trainer, module, optimizer):
        if trainer.global_step == 0:
            self.target_before = copy.deepcopy(module.target_critics.state_dict())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        # Callbacks run before the LightningModule hook: the optimizer step has happened, the EMA not yet.
        if trainer.global_step == 1 and not hasattr(self, "target_after_step"):
            self.target_after_step = copy.deepcopy(module.target_critics.state_dict())
            self.online_after_step = copy.deepcopy(module.critics.state_dict())


def test_targets_move_by_tau_after_the_update_only():
    agent = make(Agent, DISCRETE, lr_warmup_steps=0, tau=0.1)
    rec = _Recorder()
    fit(agent, steps=1, callbacks=[rec])
    for k, before in rec.target_before.items():
        assert torch.equal(rec.target_after_step[k], before), (
            "targets must not move on the optimizer step itself"
        )
        expected = 0.9 * before + 0.1 * rec.online_after_step[k]
        assert torch.allclose(agent.target_critics.state_dict()[k], expected, atol=1e-6)
    assert not torch.equal(rec.online_after_step["net.net.0.weight"], rec.target_before["net.net.0.weight"])
    for k, v in agent.critics.state_dict().items():
        assert torch.equal(agent.maximized_critics.state_dict()[k], v), "DPG copy is a hard copy"


def test_gradient_accumulation_syncs_once_per_optimizer_step(monkeypatch):
    agent = make(Agent, DISCRETE)
    calls = []
    real = agent.soft_sync_targets
    monkeypatch.setattr(agent, "soft_sync_targets", lambda: (calls.append(1), real())[1])
    t = trainer(2, accumulate_grad_batches=3)
    t.fit(agent, batch_loader(SyntheticBatches(agent.obs_space, agent.action_space, 3, 5, num_batches=6)))
    assert t.global_step == 2 and len(calls) == 2


def test_bf16_mixed_on_cpu():
    agent = make(Agent, BOX, traj=TformerTrajEncoder)
    t = fit(agent, steps=2, precision="bf16-mixed", gradient_clip_val=1.0)
    assert torch.isfinite(t.callback_metrics["train/loss"])
    assert agent.popart.mu.dtype == torch.float32
    obs = {"observation": torch.randn(2, 1, 3)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actions, _ = agent.get_actions(
            obs, torch.zeros(2, 1, 3), torch.zeros(2, 1, dtype=torch.long), agent.init_hidden_state(2, "cpu")
        )
    assert actions.dtype == torch.float32


@pytest.mark.parametrize("cls", [Agent, MultiTaskAgent])
def test_load_from_checkpoint_rebuilds_policy(tmp_path, cls):
    gin.bind_parameter("FFTstepEncoder.d_output", 24)  # a gin-only encoder keyword the checkpoint must carry
    agent = make(cls, DISCRETE, traj=TformerTrajEncoder, gamma=0.98)
    t = fit(agent, steps=2)
    path = tmp_path / "agent.ckpt"
    t.save_checkpoint(path)
    gin.clear_config()  # a fresh process knows nothing of the run's bindings
    loaded = cls.load_from_checkpoint(path)
    assert loaded.tstep_encoder.emb_dim == 24 and loaded.gamma == 0.98
    for m in (agent, loaded):
        m.eval()
    obs = {"observation": torch.randn(4, 1, 3)}
    rl2s, ts = torch.zeros(4, 1, 4), torch.zeros(4, 1, dtype=torch.long)
    out = []
    for m in (agent, loaded):
        torch.manual_seed(7)
        out.append(m.get_actions(obs, rl2s, ts, m.init_hidden_state(4, "cpu"), sample=True)[0])
    assert torch.equal(out[0], out[1])
    for k, v in agent.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
