"""torchrl_vd: cooperative multi-agent value decomposition for TorchRL.

VDN, QMIX, QTRAN (base and alt), MAVEN, Weighted QMIX (CW, OW), QPLEX and PQN-VDN as torchrl ``LossModule``s, mixers
and per-agent Q modules, tied by the Individual-Global-Max property (``check_igm``), with independent Q-learners (IQL)
as the baseline without a joint value; environment adapters behind one ``make_env``; a trainer
(``train(TrainConfig(...))``). docs/CONTRACT.md has the public contract.

Names are imported on first use (PEP 562), so ``import torchrl_vd`` is instant and loads torch, torchrl and the
simulators only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0.dev0"

_EXPORTS = {
    # environments
    "EnvInfo": "torchrl_vd.envs.registry", "describe_env": "torchrl_vd.envs.registry",
    "make_env": "torchrl_vd.envs.registry",
    "LastAction": "torchrl_vd.envs.transforms", "NoiseTransform": "torchrl_vd.envs.transforms",
    "StackedObsState": "torchrl_vd.envs.transforms", "TeamReward": "torchrl_vd.envs.transforms",
    "agent_transforms": "torchrl_vd.envs.transforms",
    # networks
    "AgentNet": "torchrl_vd.modules.agents", "GRUAgent": "torchrl_vd.modules.gru_agent",
    "MLPAgent": "torchrl_vd.modules.agents", "make_agent_policies": "torchrl_vd.modules.policies",
    "WrappedAgent": "torchrl_vd.modules.interop", "WrappedMixer": "torchrl_vd.modules.interop",
    "as_agent_net": "torchrl_vd.modules.interop", "as_mixer": "torchrl_vd.modules.interop",
    "PQNAgent": "torchrl_vd.modules.pqn_agent", "PQNRecurrentAgent": "torchrl_vd.modules.pqn_agent",
    "MavenAgent": "torchrl_vd.modules.maven_agent", "MavenDiscriminator": "torchrl_vd.modules.maven_discriminator",
    "CentralQMixer": "torchrl_vd.modules.mixers", "MavenMixer": "torchrl_vd.modules.mixers",
    "Mixer": "torchrl_vd.modules.mixers", "QMixer": "torchrl_vd.modules.mixers", "QPlexMixer": "torchrl_vd.modules.mixers",
    "VDNMixer": "torchrl_vd.modules.mixers",
    "QTranJointQ": "torchrl_vd.modules.qtran", "QTranV": "torchrl_vd.modules.qtran",
    "make_z_policy": "torchrl_vd.modules.z_policy",
    # losses
    "IQLLoss": "torchrl_vd.objectives", "MavenLoss": "torchrl_vd.objectives", "MixingQLoss": "torchrl_vd.objectives",
    "PQNVDNLoss": "torchrl_vd.objectives", "QPlexLoss": "torchrl_vd.objectives",
    "QTranLoss": "torchrl_vd.objectives", "ValueDecompositionLoss": "torchrl_vd.objectives",
    "WeightedQMixLoss": "torchrl_vd.objectives", "ZPolicyTrainer": "torchrl_vd.objectives",
    # IGM
    "IGMReport": "torchrl_vd.igm", "check_igm": "torchrl_vd.igm",
    # training
    "AlgoParts": "torchrl_vd.train.algos", "register_algo": "torchrl_vd.train.algos",
    "TrainConfig": "torchrl_vd.train.config", "evaluate": "torchrl_vd.train.evaluation",
    "SeedsResult": "torchrl_vd.train.result", "TrainResult": "torchrl_vd.train.result",
    "train_config_for_resume": "torchrl_vd.train.resume:config_for_resume",
}

if TYPE_CHECKING:
    from torchrl_vd.envs.registry import EnvInfo, describe_env, make_env
    from torchrl_vd.envs.transforms import LastAction, NoiseTransform, StackedObsState, TeamReward, agent_transforms
    from torchrl_vd.igm import IGMReport, check_igm
    from torchrl_vd.modules.agents import AgentNet, MLPAgent
    from torchrl_vd.modules.gru_agent import GRUAgent
    from torchrl_vd.modules.policies import make_agent_policies
    from torchrl_vd.modules.interop import WrappedAgent, WrappedMixer, as_agent_net, as_mixer
    from torchrl_vd.modules.maven_agent import MavenAgent
    from torchrl_vd.modules.pqn_agent import PQNAgent, PQNRecurrentAgent
    from torchrl_vd.modules.maven_discriminator import MavenDiscriminator
    from torchrl_vd.modules.mixers import CentralQMixer, MavenMixer, Mixer, QMixer, QPlexMixer, VDNMixer
    from torchrl_vd.modules.qtran import QTranJointQ, QTranV
    from torchrl_vd.modules.z_policy import make_z_policy
    from torchrl_vd.objectives import (IQLLoss, MavenLoss, MixingQLoss, PQNVDNLoss, QPlexLoss, QTranLoss,
                                       ValueDecompositionLoss, WeightedQMixLoss, ZPolicyTrainer)
    from torchrl_vd.train.algos import AlgoParts, register_algo
    from torchrl_vd.train.resume import config_for_resume as train_config_for_resume
    from torchrl_vd.train.config import TrainConfig
    from torchrl_vd.train.evaluation import evaluate
    from torchrl_vd.train.result import SeedsResult, TrainResult


# The subpackage torchrl_vd.train is imported first (it is cheap: its names load lazily too), so that the name
# `train` below, the function, is not replaced by the subpackage when some module imports torchrl_vd.train.x later.
import torchrl_vd.train  # noqa: E402,F401


def train(cfg: TrainConfig) -> TrainResult | SeedsResult:
    """Train ``cfg.algo`` on ``cfg.env`` (:func:`torchrl_vd.train.loop.train`, which this calls)."""
    from torchrl_vd.train.loop import train as train_

    return train_(cfg)


def __getattr__(name: str):
    if name in _EXPORTS:
        module, _, attr = _EXPORTS[name].partition(":")
        value = getattr(importlib.import_module(module), attr or name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted([*_EXPORTS, "train"])
