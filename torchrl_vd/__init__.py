"""torchrl_vd: cooperative multi-agent value decomposition (VDN, QMIX, QTRAN, MAVEN) for TorchRL.

See docs/CONTRACT.md for the public contract; the seed formulas are cited in each function's docstring.
"""

from torchrl_vd.envs import EnvInfo, describe_env, make_env
from torchrl_vd.envs.transforms import LastAction, NoiseTransform, StackedObsState, TeamReward, agent_transforms
from torchrl_vd.igm import IGMReport, check_igm
from torchrl_vd.modules.agents import AgentNet, MLPAgent
from torchrl_vd.modules.gru_agent import GRUAgent
from torchrl_vd.modules.interop import WrappedAgent, WrappedMixer, as_agent_net, as_mixer
from torchrl_vd.modules.maven_agent import MavenAgent
from torchrl_vd.modules.maven_discriminator import MavenDiscriminator
from torchrl_vd.modules.mixers import CentralQMixer, MavenMixer, Mixer, QMixer, QPlexMixer, VDNMixer
from torchrl_vd.modules.policies import make_agent_policies
from torchrl_vd.modules.qtran import QTranJointQ, QTranV
from torchrl_vd.modules.z_policy import make_z_policy
from torchrl_vd.objectives import (
    MavenLoss,
    MixingQLoss,
    QPlexLoss,
    QTranLoss,
    ValueDecompositionLoss,
    WeightedQMixLoss,
    ZPolicyTrainer,
)
from torchrl_vd.train import AlgoParts, SeedsResult, TrainConfig, TrainResult, evaluate, register_algo, train
from torchrl_vd.train.checkpoint import config_for_resume as train_config_for_resume

__version__ = "0.2.0.dev0"

__all__ = [
    "AgentNet",
    "CentralQMixer",
    "QPlexLoss",
    "QPlexMixer",
    "WeightedQMixLoss",
    "AlgoParts",
    "TrainConfig",
    "SeedsResult",
    "TrainResult",
    "register_algo",
    "train",
    "train_config_for_resume",
    "EnvInfo",
    "GRUAgent",
    "LastAction",
    "IGMReport",
    "MLPAgent",
    "MavenAgent",
    "MavenDiscriminator",
    "MavenLoss",
    "MavenMixer",
    "Mixer",
    "MixingQLoss",
    "NoiseTransform",
    "QMixer",
    "QTranJointQ",
    "QTranLoss",
    "QTranV",
    "StackedObsState",
    "TeamReward",
    "VDNMixer",
    "WrappedAgent",
    "WrappedMixer",
    "as_agent_net",
    "as_mixer",
    "ZPolicyTrainer",
    "agent_transforms",
    "make_z_policy",
    "ValueDecompositionLoss",
    "check_igm",
    "describe_env",
    "evaluate",
    "make_agent_policies",
    "make_env",
]
