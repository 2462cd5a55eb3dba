"""torchrl_vd: cooperative multi-agent value decomposition (VDN, QMIX, QTRAN, MAVEN) for TorchRL.

See DESIGN.md for the public contract; the seed formulas are cited in each function's docstring.
"""

from torchrl_vd.envs import EnvInfo, describe_env, make_env
from torchrl_vd.igm import IGMReport, check_igm
from torchrl_vd.modules.agents import AgentNet, GRUAgent, LastAction, MLPAgent, make_agent_policies
from torchrl_vd.modules.mixers import (
    MavenAgent,
    MavenDiscriminator,
    MavenMixer,
    Mixer,
    NoiseTransform,
    QMixer,
    QTranJointQ,
    QTranV,
    VDNMixer,
)
from torchrl_vd.objectives import MavenLoss, MixingQLoss, QTranLoss, ValueDecompositionLoss
from torchrl_vd.modules.mixers import CentralQMixer, QPlexMixer
from torchrl_vd.objectives import QPlexLoss, WeightedQMixLoss
from torchrl_vd.train import AlgoParts, TrainConfig, TrainResult, evaluate, register_algo, train
from torchrl_vd.train.checkpoint import config_for_resume as train_config_for_resume

__version__ = "0.1.0"

__all__ = [
    "AgentNet",
    "AlgoParts",
    "TrainConfig",
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
    "VDNMixer",
    "ValueDecompositionLoss",
    "check_igm",
    "describe_env",
    "evaluate",
    "make_agent_policies",
    "make_env",
]
__all__ += ["CentralQMixer", "QPlexLoss", "QPlexMixer", "WeightedQMixLoss"]
