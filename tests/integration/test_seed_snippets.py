"""The code of the seed document (reference/configure.txt), adapted only by the env and the
rename amago -> amago_pl, runs end to end for two tiny epochs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.envs import AMAGOEnv

pytestmark = pytest.mark.integration


class ImageMemoryEnv(gym.Env):
    """A pixel memory task: the first frame shows which side is rewarded, later frames are blank."""

    observation_space = gym.spaces.Box(0, 255, (40, 40, 3), dtype=np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.goal, self.t = int(self.np_random.integers(2)), 0
        return self._frame(), {}

    def _frame(self):
        img = np.zeros((40, 40, 3), dtype=np.uint8)
        if self.t == 0:
            img[:, : 20 if self.goal == 0 else 40, :] = 255
        return img

    def step(self, action):
        self.t += 1
        done = self.t >= 3
        reward = float(done and int(action) == self.goal)
        return self._frame(), reward, done, False, {}


def make_env():
    return AMAGOEnv(ImageMemoryEnv(), env_name="ImageMemory")


def build_experiment(tmp_path, tstep_encoder_type, traj_encoder_type, agent_type, exploration_wrapper_type):
    # The seed's general script shape: callables, not instances.
    return Experiment(
        run_name="seed",
        ckpt_base_dir=str(tmp_path),
        max_seq_len=4,
        dataset=DiskTrajDataset(dset_root=str(tmp_path), dset_name="seed", dset_max_size=100),
        make_train_env=make_env,
        make_val_env=make_env,
        tstep_encoder_type=tstep_encoder_type,
        traj_encoder_type=traj_encoder_type,
        agent_type=agent_type,
        exploration_wrapper_type=exploration_wrapper_type,
        val_timesteps_per_epoch=4,
        parallel_actors=2,
        env_mode="sync",
        epochs=2,
        train_timesteps_per_epoch=4,
        train_batches_per_epoch=2,
        batch_size=2,
        val_interval=1,
        dloader_workers=0,
        verbose=False,
        traj_save_len=5,
    )


def test_use_config_with_cnn_and_sliding_window_transformer(tmp_path):
    from amago_pl.cli_utils import use_config
    from amago_pl.envs import EpsilonGreedy
    from amago_pl.modules.agent import Agent
    from amago_pl.nets.cnn import IMPALAishCNN
    from amago_pl.nets.traj_encoders import TformerTrajEncoder
    from amago_pl.nets.transformer import SlidingWindowFlexAttention
    from amago_pl.nets.tstep_encoders import CNNTstepEncoder

    config = {
        "amago_pl.nets.tstep_encoders.CNNTstepEncoder.cnn_type": IMPALAishCNN,
        "IMPALAishCNN.cnn_block_depths": [32, 64, 64],
        "TformerTrajEncoder.n_heads": 16,
        "TformerTrajEncoder.d_model": 512,
        "TformerTrajEncoder.d_ff": 2048,
        "TformerTrajEncoder.attention_type": SlidingWindowFlexAttention,
        "SlidingWindowFlexAttention.window_size": 128,
    }
    use_config(config)
    experiment = build_experiment(tmp_path, CNNTstepEncoder, TformerTrajEncoder, Agent, EpsilonGreedy)
    experiment.start()
    experiment.learn()
    experiment.evaluate_test(make_env, timesteps=4)

    cnn = experiment.agent.tstep_encoder.cnn
    assert isinstance(cnn, IMPALAishCNN)
    traj = experiment.agent.traj_encoder
    assert traj.emb_dim == 512
    config_txt = (tmp_path / "seed" / "config.txt").read_text()
    assert "cnn_block_depths = [32, 64, 64]" in config_txt
    assert "SlidingWindowFlexAttention.window_size = 128" in config_txt


def test_switch_helpers_as_in_the_seed(tmp_path):
    from amago_pl.cli_utils import (
        switch_agent,
        switch_exploration,
        switch_step_encoder,
        switch_traj_encoder,
        use_config,
    )
    from amago_pl.modules.agent import MultiTaskAgent
    from amago_pl.nets.cnn import IMPALAishCNN
    from amago_pl.nets.transformer import SlidingWindowFlexAttention

    config = {
        "amago_pl.nets.transformer.SlidingWindowFlexAttention.window_size": 128,
        "amago_pl.nets.cnn.IMPALAishCNN.cnn_block_depths": [32, 64, 64],
    }
    tstep_encoder_type = switch_step_encoder(config, arch="cnn", cnn_type=IMPALAishCNN)
    traj_encoder_type = switch_traj_encoder(
        config,
        arch="transformer",
        d_model=512,
        d_ff=2048,
        n_heads=16,
        attention_type=SlidingWindowFlexAttention,
    )
    exploration_wrapper_type = switch_exploration(
        config, strategy="egreedy", eps_start=1.0, eps_end=0.01, steps_anneal=200_000
    )
    agent_type = switch_agent(config, agent="multitask", num_critics=6, gamma=0.998)
    use_config(config)

    assert agent_type is MultiTaskAgent
    experiment = build_experiment(
        tmp_path, tstep_encoder_type, traj_encoder_type, agent_type, exploration_wrapper_type
    )
    experiment.start()
    experiment.learn()
    agent = experiment.agent
    assert agent.num_critics == 6 and agent.gamma == 0.998
    assert agent.traj_encoder.emb_dim == 512
    rollout = next(cb for cb in experiment.trainer.callbacks if type(cb).__name__ == "RolloutCallback")
    assert rollout.exploration.eps_end == 0.01 and rollout.exploration.steps_anneal == 200_000
