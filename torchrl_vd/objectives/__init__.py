"""Losses: common.py (shared base), mixing.py (VDN/QMIX), qtran.py, maven.py."""

from torchrl_vd.objectives.common import Batch, ValueDecompositionLoss
from torchrl_vd.objectives.maven import MavenLoss, ZPolicyTrainer
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.objectives.qtran import QTranLoss
from torchrl_vd.objectives.qplex import QPlexLoss
from torchrl_vd.objectives.weighted import WeightedQMixLoss  # CW-QMIX / OW-QMIX

__all__ = ["Batch", "MavenLoss", "ZPolicyTrainer", "MixingQLoss", "QTranLoss", "ValueDecompositionLoss"]
__all__ += ["QPlexLoss", "WeightedQMixLoss"]
