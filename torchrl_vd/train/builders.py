"""The algorithms' builders: each turns a ``TrainConfig`` and an ``EnvInfo`` into the algorithm's ``AlgoParts``.

The algorithm table (train/algos.py) names these functions by import path, so that reading the table imports
no torch; a run imports this module when it builds its algorithm.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import torch

from torchrl_vd.envs.registry import EnvInfo
from torchrl_vd.envs.transforms import NoiseTransform
from torchrl_vd.keys import GROUP
from torchrl_vd.modules.agents import ACTIVATIONS, AgentNet, MLPAgent
from torchrl_vd.modules.gru_agent import GRUAgent
from torchrl_vd.modules.maven_agent import MavenAgent
from torchrl_vd.modules.maven_discriminator import MavenDiscriminator
from torchrl_vd.modules.pqn_agent import PQNAgent, PQNRecurrentAgent
from torchrl_vd.modules.mixers import CentralQMixer, MavenMixer, QMixer, QPlexMixer, VDNMixer
from torchrl_vd.modules.qtran import QTranJointQ, QTranV
from torchrl_vd.modules.z_policy import make_z_policy
from torchrl_vd.objectives.iql import IQLLoss
from torchrl_vd.objectives.maven import MavenLoss
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.objectives.pqn import PQNVDNLoss
from torchrl_vd.objectives.qplex import QPlexLoss
from torchrl_vd.objectives.qtran import QTranLoss
from torchrl_vd.objectives.weighted import WeightedQMixLoss
from torchrl_vd.objectives.z_policy import ZPolicyTrainer
from torchrl_vd.train.algo_options import (
    IQLLossOptions,
    MavenMixerOptions,
    MavenOptions,
    NoOptions,
    PQNOptions,
    QMixerOptions,
    QPlexMixerOptions,
    QTranLossOptions,
    QTranNetOptions,
    TDLossOptions,
    WeightedQMixerOptions,
    WeightedQMixLossOptions,
)
from torchrl_vd.train.algos import AlgoParts, JointExtras
from torchrl_vd.train.population import SeedNets


def build_agent(cfg, info: EnvInfo) -> AgentNet:
    """The per-agent utility network that ``cfg.agent`` names, sized from the env."""
    obs_dim = int(torch.Size(info.obs_shape).numel())
    common = dict(share_params=cfg.share_params, agent_id=cfg.uses_agent_id, activation=ACTIVATIONS[cfg.activation])
    if cfg.agent == "gru":
        return GRUAgent(info.n_agents, info.n_actions, obs_dim, hidden=cfg.hidden, last_action=cfg.last_action,
                        **common)
    return MLPAgent(info.n_agents, info.n_actions, obs_dim, hidden=cfg.hidden, **common)


def td_loss_kwargs(cfg, loss_opts: TDLossOptions) -> dict:
    """The loss options every algorithm takes: ``double_q``/``burn_in`` from the config, the rest typed."""
    return dict(double_q=cfg.double_q, burn_in=cfg.burn_in, **dataclasses.asdict(loss_opts))


def build_iql(cfg, info: EnvInfo, mixer_opts: NoOptions, loss_opts: IQLLossOptions) -> AlgoParts:
    loss = IQLLoss(build_agent(cfg, info), **td_loss_kwargs(cfg, loss_opts))
    if info.group != GROUP:
        loss.use_group(info.group)
    return AlgoParts(loss)


def build_vdn(cfg, info: EnvInfo, mixer_opts: NoOptions, loss_opts: TDLossOptions) -> AlgoParts:
    return AlgoParts(MixingQLoss(build_agent(cfg, info), VDNMixer(info.n_agents), **td_loss_kwargs(cfg, loss_opts)))


def build_qmix(cfg, info: EnvInfo, mixer_opts: QMixerOptions, loss_opts: TDLossOptions) -> AlgoParts:
    mixer = QMixer(info.n_agents, info.state_shape, **dataclasses.asdict(mixer_opts))
    return AlgoParts(MixingQLoss(build_agent(cfg, info), mixer, **td_loss_kwargs(cfg, loss_opts)))


def build_pqn_vdn(cfg, info: EnvInfo, mixer_opts: NoOptions, opts: PQNOptions) -> AlgoParts:
    """PQN-VDN's parts: JaxMARL's QNetwork (``hidden``: the Dense widths; ``agent='gru'`` adds its GRU of the last
    width) and :class:`PQNVDNLoss`, whose last step of each window only bootstraps in the recurrent variant, as in
    JaxMARL's ``pqn_vdn_rnn``. The schedule is :mod:`torchrl_vd.train.pqn_learner`'s."""
    obs_dim = int(torch.Size(info.obs_shape).numel())
    common = dict(norm=opts.norm, norm_input=opts.norm_input, agent_id=cfg.uses_agent_id,
                  activation=ACTIVATIONS[cfg.activation], init=opts.init)
    if cfg.agent == "gru":
        agent = PQNRecurrentAgent(info.n_agents, info.n_actions, obs_dim, hidden=cfg.hidden,
                                  last_action=cfg.last_action, **common)
    else:
        agent = PQNAgent(info.n_agents, info.n_actions, obs_dim, hidden=cfg.hidden, **common)
    loss = PQNVDNLoss(agent, train_last_step=cfg.agent != "gru")
    if info.group != GROUP:
        loss.use_group(info.group)
    return AlgoParts(loss)


def _build_weighted_qmix(cfg, info: EnvInfo, mixer_opts: WeightedQMixerOptions, loss_opts: WeightedQMixLossOptions,
                         weighting: str) -> AlgoParts:
    """QMIX agents and mixer from ``cfg``; Q̂*'s own agents (same architecture, fresh weights) and mixer."""
    qmix = {f.name: getattr(mixer_opts, f.name) for f in dataclasses.fields(QMixerOptions)}
    mixer = QMixer(info.n_agents, info.state_shape, **qmix)
    central = CentralQMixer(info.n_agents, info.state_shape, embed_dim=mixer_opts.central_embed_dim)
    central_agent = build_agent(cfg, info) if mixer_opts.central_agent else None
    return AlgoParts(WeightedQMixLoss(build_agent(cfg, info), mixer, central, central_agent, weighting=weighting,
                                      **td_loss_kwargs(cfg, loss_opts)))


def build_cw_qmix(cfg, info, mixer_opts: WeightedQMixerOptions, loss_opts: WeightedQMixLossOptions) -> AlgoParts:
    return _build_weighted_qmix(cfg, info, mixer_opts, loss_opts, "cw")


def build_ow_qmix(cfg, info, mixer_opts: WeightedQMixerOptions, loss_opts: WeightedQMixLossOptions) -> AlgoParts:
    return _build_weighted_qmix(cfg, info, mixer_opts, loss_opts, "ow")


def build_qplex(cfg, info: EnvInfo, mixer_opts: QPlexMixerOptions, loss_opts: TDLossOptions) -> AlgoParts:
    mixer = QPlexMixer(info.n_agents, info.n_actions, info.state_shape, **dataclasses.asdict(mixer_opts))
    return AlgoParts(QPlexLoss(build_agent(cfg, info), mixer, **td_loss_kwargs(cfg, loss_opts)))


def _build_qtran(cfg, info: EnvInfo, net_opts: QTranNetOptions, loss_opts: QTranLossOptions, variant: str):
    """Agents from ``cfg``; Q_jt and V sized from the env and the chosen agent features."""
    agent = build_agent(cfg, info)
    feature_dim = QTranLoss.feature_dim(agent, loss_opts.features)
    joint_q = QTranJointQ(info.n_agents, info.n_actions, info.state_shape, feature_dim, **dataclasses.asdict(net_opts))
    v_net = QTranV(info.state_shape, embed_dim=joint_q.embed_dim)
    return AlgoParts(QTranLoss(agent, joint_q, v_net, variant=variant, **td_loss_kwargs(cfg, loss_opts)))


def build_qtran(cfg, info, mixer_opts: QTranNetOptions, loss_opts: QTranLossOptions) -> AlgoParts:
    return _build_qtran(cfg, info, mixer_opts, loss_opts, "base")


def build_qtran_alt(cfg, info, mixer_opts: QTranNetOptions, loss_opts: QTranLossOptions) -> AlgoParts:
    return _build_qtran(cfg, info, mixer_opts, loss_opts, "alt")


def build_maven(cfg, info: EnvInfo, mixer_opts: MavenMixerOptions, opts: MavenOptions) -> AlgoParts:
    """MAVEN's parts for ``train()``: MavenLoss, the NoiseTransform factory, the z-policy hook, the joint extras.

    The agent is the recurrent :class:`MavenAgent` (a GRU trunk sized by ``cfg.hidden``, with
    ``cfg.share_params``, ``cfg.agent_id`` and ``cfg.last_action``; the authors feed both the one-hot id
    and the last action: ``agent_id=None`` follows ``share_params`` as for every algorithm, and the
    preset turns ``last_action`` on).

    Greedy evaluation (``train()``'s ``evaluate`` runs under ``DETERMINISTIC`` exploration) plays the
    greedy agents with z drawn as ``eval_z`` says: uniform (the authors'), sampled from π_z, or π_z's
    mode argmax_z π_z(z | s_0) (the return of the committed mode the hierarchical policy prefers).
    """
    obs_dim = int(torch.Size(info.obs_shape).numel())
    state_dim = int(torch.Size(info.state_shape).numel())
    agent = MavenAgent(info.n_agents, info.n_actions, obs_dim, opts.noise_dim, hidden=cfg.hidden,
                       share_params=cfg.share_params, last_action=cfg.last_action, agent_id=cfg.uses_agent_id,
                       activation=ACTIVATIONS[cfg.activation])
    mixer = MavenMixer(info.n_agents, info.state_shape, opts.noise_dim, **dataclasses.asdict(mixer_opts))
    discriminator = MavenDiscriminator(info.n_agents, info.n_actions, state_dim, opts.noise_dim,
                                       hidden=opts.discrim_size, recurrent=opts.rnn_discrim, layers=opts.discrim_layers)
    loss = MavenLoss(agent, mixer, discriminator, noise_dim=opts.noise_dim, lambda_mi=opts.lambda_mi,
                     lambda_ql=opts.lambda_ql, temperature=opts.temperature, double_q=cfg.double_q,
                     burn_in=cfg.burn_in, loss_function=opts.loss_function)
    z_policy = make_z_policy(info.state_shape, opts.noise_dim, learned=opts.z_policy == "learned")
    trainer = ZPolicyTrainer(z_policy, lr=opts.z_lr, entropy_scaling=opts.entropy_scaling,
                             buffer_size=opts.z_buffer_size, batch_size=opts.z_batch_size, updates=opts.z_updates,
                             objective=opts.z_objective, loss_module=loss)
    if info.group != GROUP:
        loss.use_group(info.group)
    return AlgoParts(
        loss,
        # a partial, not a lambda: worker collectors (multi/ray, uniform z-policy) pickle the env factory
        env_transforms=[functools.partial(NoiseTransform, z_policy, opts.noise_dim, epsilon=opts.z_epsilon,
                                          eval_z=opts.eval_z)],
        extra_modules={"z_policy": z_policy},
        after_batch=trainer,
        metric_columns=("loss_rl", "z_entropy"),
        joint=functools.partial(maven_joint_extras, opts),
    )


def maven_joint_extras(opts: MavenOptions, seed_parts: list[AlgoParts]) -> JointExtras:
    """N seeds' z-policies drawing z for their own envs of the joint env batch (many seeds in one process).

    Each seed keeps its own z-policy and REINFORCE trainer (its ``after_batch`` on its own rows of the batch);
    the joint env's NoiseTransform reads a copy of seed 0's z-policy whose logits network runs every seed's
    network on that seed's rows (:class:`~torchrl_vd.train.population.SeedNets`), refreshed by ``sync`` after
    all seeds' trainers stepped. The uniform z-policy has no parameters: every seed's is the same module.
    """
    policies = [parts.extra_modules["z_policy"] for parts in seed_parts]
    joint, sync = policies[0], (lambda: None)
    if any(True for _ in joint.parameters()):
        joint = copy.deepcopy(policies[0])
        joint[0].module = SeedNets([policy[0].module for policy in policies])  # make_z_policy's logits network
        sync = joint[0].module.sync
    return JointExtras([functools.partial(NoiseTransform, joint, opts.noise_dim, epsilon=opts.z_epsilon,
                                          eval_z=opts.eval_z)], sync)


__all__ = ["build_agent", "build_cw_qmix", "build_iql", "build_maven", "build_ow_qmix", "build_pqn_vdn", "build_qmix",
           "build_qplex", "build_qtran",
           "build_qtran_alt", "build_vdn", "maven_joint_extras", "td_loss_kwargs"]
