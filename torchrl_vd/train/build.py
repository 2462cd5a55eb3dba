"""Builders of the registered algorithms (VDN, QMIX here; QTRAN and MAVEN register in their modules)."""

from __future__ import annotations

import importlib

from torchrl_vd.envs.registry import EnvInfo
from torchrl_vd.modules.agents import AgentNet, MLPAgent
from torchrl_vd.modules.mixers import QMixer, VDNMixer
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.train.registry import AlgoParts, register_algo


def build_agent(cfg, info: EnvInfo) -> AgentNet:
    """The per-agent utility network that ``cfg.agent`` names, sized from the env."""
    obs_dim = int(info.obs_shape[-1]) if len(info.obs_shape) == 1 else int(__import__("math").prod(info.obs_shape))
    common = dict(share_params=cfg.share_params, agent_id=cfg.agent_id)
    if cfg.agent == "gru":
        from torchrl_vd.modules.agents import GRUAgent

        return GRUAgent(info.n_agents, info.n_actions, obs_dim, hidden=cfg.hidden, last_action=cfg.last_action,
                        **common)
    return MLPAgent(info.n_agents, info.n_actions, obs_dim, hidden=cfg.hidden, **common)


def loss_kwargs_from_config(cfg) -> dict:
    """The loss options every algorithm takes from the config (double Q, burn-in) plus ``cfg.loss_kwargs``."""
    return dict(double_q=cfg.double_q, burn_in=cfg.burn_in, **cfg.loss_kwargs)


@register_algo("vdn", description="VDN: Q_tot = Σ_i Q_i (Sunehag et al. 2018)")
def build_vdn(cfg, info: EnvInfo) -> AlgoParts:
    mixer = VDNMixer(info.n_agents, **cfg.mixer_kwargs)
    return AlgoParts(MixingQLoss(build_agent(cfg, info), mixer, **loss_kwargs_from_config(cfg)))


@register_algo("qmix", description="QMIX: monotonic hypernetwork mixer on the state (Rashid et al. 2018)")
def build_qmix(cfg, info: EnvInfo) -> AlgoParts:
    mixer = QMixer(info.n_agents, info.state_shape, **cfg.mixer_kwargs)
    return AlgoParts(MixingQLoss(build_agent(cfg, info), mixer, **loss_kwargs_from_config(cfg)))


# Algorithms defined elsewhere register themselves on import.
for _mod in ("torchrl_vd.objectives.qtran", "torchrl_vd.objectives.maven"):
    try:
        importlib.import_module(_mod)
    except ModuleNotFoundError as err:  # module not written yet in this checkout
        if err.name != _mod:
            raise
