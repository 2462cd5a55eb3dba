"""Mixers: one per file; all share :class:`Mixer`'s call shape (utilities ``[*B,n,1]``, state) -> ``[*B,1]``
(QPLEX's mixer also reads the greedy utilities and the actions)."""

from torchrl_vd.modules.mixers.base import Mixer
from torchrl_vd.modules.mixers.central import CentralQMixer
from torchrl_vd.modules.mixers.maven import MavenMixer
from torchrl_vd.modules.mixers.qmix import QMixer
from torchrl_vd.modules.mixers.qplex import QPlexMixer
from torchrl_vd.modules.mixers.vdn import VDNMixer

__all__ = ["CentralQMixer", "MavenMixer", "Mixer", "QMixer", "QPlexMixer", "VDNMixer"]
