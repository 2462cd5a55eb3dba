"""Losses: common.py (shared base), mixing.py (VDN/QMIX), weighted.py (CW/OW-QMIX), qplex.py, qtran.py,
maven.py, z_policy.py (MAVEN's L_RL)."""

from torchrl_vd.objectives.common import Batch, ValueDecompositionLoss
from torchrl_vd.objectives.maven import MavenLoss
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.objectives.qplex import QPlexLoss
from torchrl_vd.objectives.qtran import QTranLoss
from torchrl_vd.objectives.weighted import WeightedQMixLoss
from torchrl_vd.objectives.z_policy import ZPolicyTrainer

__all__ = ["Batch", "MavenLoss", "MixingQLoss", "QPlexLoss", "QTranLoss", "ValueDecompositionLoss",
           "WeightedQMixLoss", "ZPolicyTrainer"]
