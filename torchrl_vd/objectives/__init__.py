"""Losses: common.py (shared base), mixing.py (VDN/QMIX), qtran.py, maven.py, z_policy.py (MAVEN's L_RL)."""

from torchrl_vd.objectives.common import Batch, ValueDecompositionLoss
from torchrl_vd.objectives.maven import MavenLoss
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.objectives.qtran import QTranLoss
from torchrl_vd.objectives.z_policy import ZPolicyTrainer

__all__ = ["Batch", "MavenLoss", "MixingQLoss", "QTranLoss", "ValueDecompositionLoss", "ZPolicyTrainer"]
