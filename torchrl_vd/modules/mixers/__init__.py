"""Mixers: one per file; all share :class:`Mixer`'s call shape (utilities [*B,n,1], state) -> [*B,1]."""

from torchrl_vd.modules.mixers.base import Mixer
from torchrl_vd.modules.mixers.maven import MavenAgent, MavenDiscriminator, MavenMixer, NoiseTransform, make_z_policy
from torchrl_vd.modules.mixers.qmix import QMixer
from torchrl_vd.modules.mixers.qtran import QTranJointQ, QTranV
from torchrl_vd.modules.mixers.vdn import VDNMixer
from torchrl_vd.modules.mixers.central import CentralQMixer  # Weighted QMIX's Q̂*
from torchrl_vd.modules.mixers.qplex import QPlexMixer

__all__ = [
    "MavenAgent",
    "MavenDiscriminator",
    "MavenMixer",
    "Mixer",
    "NoiseTransform",
    "QMixer",
    "QTranJointQ",
    "QTranV",
    "VDNMixer",
    "make_z_policy",
]
__all__ += ["CentralQMixer", "QPlexMixer"]
