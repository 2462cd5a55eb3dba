"""Losses: common.py (shared base), batch.py (reading and checking a batch), mixing.py (VDN/QMIX), iql.py (IQL),
pqn.py (PQN-VDN), weighted.py (CW/OW-QMIX), qplex.py, qtran.py, maven.py, z_policy.py (MAVEN's L_RL)."""

from torchrl_vd.objectives.batch import Batch
from torchrl_vd.objectives.common import ValueDecompositionLoss
from torchrl_vd.objectives.iql import IQLLoss
from torchrl_vd.objectives.maven import MavenLoss
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.objectives.pqn import PQNVDNLoss
from torchrl_vd.objectives.qplex import QPlexLoss
from torchrl_vd.objectives.qtran import QTranLoss
from torchrl_vd.objectives.weighted import WeightedQMixLoss
from torchrl_vd.objectives.z_policy import ZPolicyTrainer

__all__ = ["Batch", "IQLLoss", "MavenLoss", "MixingQLoss", "PQNVDNLoss", "QPlexLoss", "QTranLoss", "ValueDecompositionLoss",
           "WeightedQMixLoss", "ZPolicyTrainer"]
