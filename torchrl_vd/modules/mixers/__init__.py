"""Mixers: one per file; all share :class:`Mixer`'s call shape (utilities [*B,n,1], state) -> [*B,1]."""

from torchrl_vd.modules.mixers.base import Mixer
from torchrl_vd.modules.mixers.maven import MavenMixer
from torchrl_vd.modules.mixers.qmix import QMixer
from torchrl_vd.modules.mixers.vdn import VDNMixer

__all__ = ["MavenMixer", "Mixer", "QMixer", "VDNMixer"]
