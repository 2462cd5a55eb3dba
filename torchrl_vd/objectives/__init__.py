"""Losses: common.py (shared base), mixing.py (VDN/QMIX), qtran.py, maven.py."""

from torchrl_vd.objectives.common import Batch, ValueDecompositionLoss
from torchrl_vd.objectives.mixing import MixingQLoss

__all__ = ["Batch", "MixingQLoss", "ValueDecompositionLoss"]
