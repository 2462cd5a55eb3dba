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


def _build_weighted_qmix(cfg, info: EnvInfo, weighting: str) -> AlgoParts:
    """QMIX agents and mixer from ``cfg``; Q̂*'s own agents (same architecture, fresh weights: the reference's
    ``central_rnn``) and ``CentralQMixer`` (``mixer_kwargs`` keys ``central_<option>``, e.g. central_embed_dim)."""
    from torchrl_vd.modules.mixers import CentralQMixer
    from torchrl_vd.objectives import WeightedQMixLoss

    qmix_kwargs = {k: v for k, v in cfg.mixer_kwargs.items() if not k.startswith("central_")}
    central_kwargs = {k[len("central_"):]: v for k, v in cfg.mixer_kwargs.items() if k.startswith("central_")}
    kwargs = loss_kwargs_from_config(cfg)
    if kwargs.setdefault("weighting", weighting) != weighting:
        raise ValueError(f"algo {cfg.algo!r} is {weighting.upper()}-QMIX; drop loss_kwargs.weighting={kwargs['weighting']!r}.")
    mixer = QMixer(info.n_agents, info.state_shape, **qmix_kwargs)
    central = CentralQMixer(info.n_agents, info.state_shape, **central_kwargs)
    return AlgoParts(WeightedQMixLoss(build_agent(cfg, info), mixer, central, build_agent(cfg, info), **kwargs))


@register_algo("cw-qmix", description="CW-QMIX: QMIX trained toward an unrestricted Q̂*, centrally weighted (Rashid et al. 2020)")
def build_cw_qmix(cfg, info: EnvInfo) -> AlgoParts:
    return _build_weighted_qmix(cfg, info, "cw")


@register_algo("ow-qmix", description="OW-QMIX: QMIX trained toward an unrestricted Q̂*, optimistically weighted (Rashid et al. 2020)")
def build_ow_qmix(cfg, info: EnvInfo) -> AlgoParts:
    return _build_weighted_qmix(cfg, info, "ow")


@register_algo("qplex", description="QPLEX: duplex dueling mixer, IGM-complete (Wang et al. 2021)")
def build_qplex(cfg, info: EnvInfo) -> AlgoParts:
    from torchrl_vd.modules.mixers import QPlexMixer
    from torchrl_vd.objectives import QPlexLoss

    mixer = QPlexMixer(info.n_agents, info.n_actions, info.state_shape, **cfg.mixer_kwargs)
    return AlgoParts(QPlexLoss(build_agent(cfg, info), mixer, **loss_kwargs_from_config(cfg)))


# Algorithms defined elsewhere register themselves on import.
for _mod in ("torchrl_vd.objectives.qtran", "torchrl_vd.objectives.maven"):
    try:
        importlib.import_module(_mod)
    except ModuleNotFoundError as err:  # module not written yet in this checkout
        if err.name != _mod:
            raise
