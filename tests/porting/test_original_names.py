"""Every public name of the original AMAGO (3.3.0 at 2d85600) imports from its renamed path.

The list was read off the original's modules (top-level classes, functions and constants whose
names do not start with "_"), plus the names its packages re-export (amago/__init__.py,
amago/envs/__init__.py, amago/nets/__init__.py). Each is imported exactly as a ported script
would, ``from amago_pl.<module> import <name>`` in a fresh interpreter per module group (so no
earlier import can make a name appear).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ORIGINAL_NAMES = {
    "amago_pl.agent": "register_agent get_agent_cls list_registered_agents Multigammas get_action_dim_and_type "
    "binary_filter leaky_relu_filter exp_filter nstep_return BaseAgent Agent MultiTaskAgent",
    "amago_pl.cli_utils": "add_common_cli switch_tstep_encoder switch_agent switch_exploration switch_traj_encoder "
    "use_config create_experiment_from_cli make_experiment_learn_only make_experiment_collect_only switch_async_mode",
    "amago_pl.envs.amago_env": "AMAGOEnv ReturnHistory SpecialMetricHistory AMAGO_ENV_LOG_PREFIX SequenceWrapper "
    "EnvCreator",
    "amago_pl.envs.builtin.alchemy": "SymbolicAlchemy",
    "amago_pl.envs.builtin.ale_retro": "ALEAction AtariGame ALE AtariAMAGOWrapper RetroArcade RetroAMAGOWrapper",
    "amago_pl.envs.builtin.babyai": "BANNED_BABYAI_TASKS ALL_BABYAI_TASKS MultitaskMetaBabyAI",
    "amago_pl.envs.builtin.gymnax_envs": "GymnaxCompatibility",
    "amago_pl.envs.builtin.half_cheetah_v4_vel": "HalfCheetahV4LogVelocity HalfCheetahV4_MetaVelocity",
    "amago_pl.envs.builtin.mazerunner": "random_maze MazeRunnerGymEnv RelabelInfoWrapper MazeRunnerAMAGOEnv",
    "amago_pl.envs.builtin.metaworld_ml": "Metaworld KEpisodeMetaworld",
    "amago_pl.envs.builtin.popgym_envs": "POPGym POPGymAMAGO MultiDomainPOPGym MultiDomainPOPGymAMAGO",
    "amago_pl.envs.builtin.procgen_envs": "ProcgenAMAGO ALL_PROCGEN_GAMES TwoAttemptMTProcgen",
    "amago_pl.envs.builtin.tmaze": "TMazeAlt TMazeAltPassive TMazeAltActive",
    "amago_pl.envs.builtin.toy_gym": "MetaFrozenLake RoomKeyDoor",
    "amago_pl.envs.builtin.xland_minigrid": "XLandMinigridVectorizedGym",
    "amago_pl.envs.env_utils": "extend_box_obs_space_by AlreadyVectorizedEnv DummyAsyncVectorEnv space_convert "
    "DiscreteActionWrapper ContinuousActionWrapper MultiBinaryActionWrapper",
    "amago_pl.envs.exploration": "register_exploration get_exploration_cls list_registered_explorations "
    "ExplorationWrapper BilevelEpsilonGreedy EpsilonGreedy",
    "amago_pl.experiment": "Experiment",
    "amago_pl.hindsight": "Timestep split_batched_timestep FrozenTraj Trajectory Relabeler NoOpRelabeler",
    "amago_pl.loading": "RLData MAGIC_PAD_VAL pad Batch RLData_pad_collate RLDataset MixtureOfDatasets "
    "load_traj_from_disk get_path_to_trajs DiskTrajDataset DoNothingDataset",
    "amago_pl.nets.actor_critic": "BaseActorHead Actor ResidualActor gammas_as_input_seq BaseCriticHead NCritics "
    "NCriticsTwoHot PopArtLayer",
    "amago_pl.nets.cnn": "weight_init CNN DrQv2Aug DrQCNN GridworldCNN NatureishCNN IMPALAishCNN",
    "amago_pl.nets.ff": "Normalization SimNorm FFBlock MLP",
    "amago_pl.nets.goal_embedders": "FFGoalEmb TokenGoalEmb",
    "amago_pl.nets.policy_dists": "PolicyOutput Discrete DiscreteLikeContinuous tanh_bounded_positive "
    "softplus_bounded_positive StdActivation TanhGaussian GMM Beta Multibinary",
    "amago_pl.nets.traj_encoders": "register_traj_encoder get_traj_encoder_cls list_registered_traj_encoders "
    "TrajEncoder IdentityTrajEncoder FFTrajEncoder GRUTrajEncoder TformerTrajEncoder MambaTrajEncoder",
    "amago_pl.nets.transformer": "SelfAttention VanillaAttention FlashAttention FlexAttention VanillaFlexAttention "
    "SlidingWindowFlexAttention ClippedSlidingSinkAttention SigmaReparam AttentionLayer TransformerLayer Cache "
    "TformerHiddenState FixedPosEmb LearnablePosEmb RotaryPosEmb Transformer",
    "amago_pl.nets.tstep_encoders": "register_tstep_encoder get_tstep_encoder_cls list_registered_tstep_encoders "
    "TstepEncoder FFTstepEncoder CNNTstepEncoder",
    "amago_pl.nets.utils": "symlog symexp add_activation_log InputNorm SlowAdaptiveRational activation_switch",
    "amago_pl.utils": "AmagoWarning amago_warning AdamWRel stack_list_array_dicts split_dict split_batch "
    "avg_over_accelerate sum_over_accelerate masked_avg get_constant_schedule_with_warmup call_async_env "
    "count_params gin_as_wandb_config get_grad_norm retry_load_checkpoint",
}

# What the original's packages re-export at their top level.
PACKAGE_EXPORTS = {
    "amago_pl": "Experiment Agent register_agent get_agent_cls list_registered_agents TstepEncoder TrajEncoder "
    "register_tstep_encoder get_tstep_encoder_cls list_registered_tstep_encoders register_traj_encoder "
    "get_traj_encoder_cls list_registered_traj_encoders ExplorationWrapper register_exploration "
    "get_exploration_cls list_registered_explorations envs nets cli_utils",
    "amago_pl.envs": "AMAGOEnv SequenceWrapper SpecialMetricHistory ReturnHistory EnvCreator AMAGO_ENV_LOG_PREFIX "
    "ExplorationWrapper register_exploration get_exploration_cls list_registered_explorations builtin",
    "amago_pl.nets": "traj_encoders tstep_encoders TstepEncoder register_tstep_encoder get_tstep_encoder_cls "
    "list_registered_tstep_encoders TrajEncoder register_traj_encoder get_traj_encoder_cls "
    "list_registered_traj_encoders actor_critic goal_embedders",
}


def test_the_list_has_every_public_name_of_the_original():
    # 174 module-level names (each module's own definitions) at 2d85600.
    assert sum(len(v.split()) for v in ORIGINAL_NAMES.values()) == 174


def _import_lines(table: dict[str, str]) -> str:
    return "\n".join(f"from {mod} import {', '.join(names.split())}" for mod, names in table.items())


@pytest.mark.parametrize("table", [ORIGINAL_NAMES, PACKAGE_EXPORTS], ids=["modules", "package_exports"])
def test_every_name_imports_from_its_renamed_path(table):
    code = _import_lines(table) + "\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_old_paths_of_moved_names_are_the_same_objects():
    from amago_pl import agent, hindsight, loading
    from amago_pl.datamodules import DiskTrajDataset, RLDataset
    from amago_pl.modules import losses
    from amago_pl.nets import registry, traj_encoders, transformer, tstep_encoders

    assert agent.binary_filter is losses.binary_filter and agent.exp_filter is losses.exp_filter
    assert loading.DiskTrajDataset is DiskTrajDataset and loading.RLDataset is RLDataset
    assert tstep_encoders.register_tstep_encoder is registry.register_tstep_encoder
    assert traj_encoders.get_traj_encoder_cls is registry.get_traj_encoder_cls
    assert transformer.RotaryPosEmb is transformer.RotaryEmb and transformer.Cache is transformer.KVCache
    assert sorted(hindsight.__all__) == sorted(ORIGINAL_NAMES["amago_pl.hindsight"].split())
    assert sorted(loading.__all__) == sorted(ORIGINAL_NAMES["amago_pl.loading"].split())


def test_experiment_device_is_a_property():
    import torch

    from amago_pl import Experiment

    assert isinstance(Experiment.DEVICE, property)
    exp = Experiment.__new__(Experiment)  # no fields needed before start()
    exp.trainer = None
    assert exp.DEVICE == torch.device("cpu")
