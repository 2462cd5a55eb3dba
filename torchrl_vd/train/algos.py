"""The algorithm table: for each algorithm its typed options, its builder and what it supports.

One entry per algorithm, registered here (or by a user with :func:`register_algo`); ``train()``, the
CLI's ``list`` / ``--help`` and the tests iterate this one table, so a new algorithm is trained end to
end and documented for free. Losses and networks import nothing from this layer: a builder composes
them from a :class:`~torchrl_vd.train.config.TrainConfig` and an
:class:`~torchrl_vd.envs.registry.EnvInfo`.

Each algorithm has two typed option dataclasses, filled from ``TrainConfig.mixer_kwargs`` and
``TrainConfig.loss_kwargs`` (``--set mixer.NAME=VALUE`` / ``--set loss.NAME=VALUE``; the old spelling
``mixer_kwargs.NAME`` works too), checked field by field with close-match errors before any work starts.
Defaults are the reference implementations' (pymarl for VDN/QMIX/QTRAN, the MAVEN authors' code).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import nn

from torchrl_vd.envs.registry import EnvInfo
from torchrl_vd.envs.transforms import NoiseTransform
from torchrl_vd.modules.agents import ACTIVATIONS, AgentNet, MLPAgent
from torchrl_vd.modules.gru_agent import GRUAgent
from torchrl_vd.modules.maven_agent import MavenAgent
from torchrl_vd.modules.maven_discriminator import MavenDiscriminator
from torchrl_vd.modules.mixers import CentralQMixer, MavenMixer, QMixer, QPlexMixer, VDNMixer
from torchrl_vd.modules.qtran import QTranJointQ, QTranV
from torchrl_vd.modules.z_policy import make_z_policy
from torchrl_vd.objectives.maven import MavenLoss
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.objectives.qplex import QPlexLoss
from torchrl_vd.objectives.qtran import QTranLoss
from torchrl_vd.objectives.weighted import WeightedQMixLoss
from torchrl_vd.objectives.z_policy import ZPolicyTrainer
from torchrl_vd.train.options import build_options

COLLECTORS = ("single", "async", "multi", "ray")


# ---------------------------------------------------------------------------------------------- options
@dataclass
class NoOptions:
    """This part takes no options."""


@dataclass
class TDLossOptions:
    """Options every value-decomposition loss takes (besides ``double_q`` / ``burn_in``, which are
    ``TrainConfig`` fields)."""

    loss_function: Literal["l2", "smooth_l1"] = "l2"
    """TD distance: ``l2`` (seed: squared TD error; pymarl) or ``smooth_l1``."""


@dataclass
class QMixerOptions:
    """QMIX's hypernetwork mixer (pymarl ``qmix.yaml``)."""

    mixing_embed_dim: int = 32
    """Width of the mixing layer (pymarl: 32)."""
    hypernet_layers: int = 2
    """Layers per weight hypernetwork: 1 or 2 (pymarl's qmix.yaml: 2)."""
    hypernet_embed: int = 64
    """Hidden width of 2-layer hypernetworks (pymarl: 64)."""
    init_scale: float | None = None
    """None: torch's default initialisation (pymarl's); a number: orthogonal hypernetwork weights of that gain
    and zero biases (JaxMARL's MIXER_INIT_SCALE, 0.001 in the smax preset)."""


@dataclass
class QTranNetOptions:
    """QTRAN's joint action-value Q_jt and value V (pymarl ``qtran_paper`` networks)."""

    embed_dim: int = 64
    """Width of Q_jt's encoder/head and of V (pymarl's mixing_embed_dim for QTRAN: 64)."""
    agent_id: bool = True
    """Append a one-hot agent id to each agent's encoder input (tells (x, y) from (y, x)); pymarl: none (its
    agents' hidden features carry the id they were fed)."""
    encoder_dim: int | None = None
    """Width of Q_jt's per-agent action encoder (None: ``embed_dim``; pymarl: its input width H + A)."""


@dataclass
class QTranLossOptions(TDLossOptions):
    """QTRAN's objective L_td + λ_opt·L_opt + λ_nopt·L_nopt (pymarl's qtran.yaml weights)."""

    lambda_opt: float = 1.0
    """Weight of L_opt (pymarl opt_loss: 1)."""
    lambda_nopt: float = 0.1
    """Weight of L_nopt (pymarl nopt_min_loss: 0.1)."""
    features: Literal["hidden", "obs", "utilities"] = "hidden"
    """Agents' h_i fed to Q_jt: their hidden features with gradient (pymarl; L_td trains the agents too), their
    observations (the earlier default), or their (detached) utility vectors. Measured on the QTRAN matrix game
    (uniform data, Adam 2e-3, seed 0): ``obs`` finds the optimum 8, ``hidden`` missed it with IGM violated
    (tests/test_qtran.py ``MATRIX_QTRAN``, tutorial 03 use ``obs``)."""


@dataclass
class MavenMixerOptions(QMixerOptions):
    """MAVEN's mixer: QMIX on [s, z] (the authors' ``noise_mix.py``: one-layer hypernetworks, width 32)."""

    hypernet_layers: int = 1
    """Layers per weight hypernetwork: the authors' mixer has 1 (QMIX's pymarl default is 2)."""


@dataclass
class MavenOptions(TDLossOptions):
    """MAVEN's latent space, MI objective and hierarchical z-policy: the authors' m-step config
    (AnujMahajanOxf/MAVEN @be975c5, ``noise_qmix_parallel.yaml`` + ``plot_keys/nstep_matrix_noisemix_bandit.py``,
    the run their paper plots: noise_dim 16, rnn_discrim, mi_loss 1, bandit_iters 100).

    ``z_epsilon``, ``z_objective="entropy"``, ``z_lr=1e-3``, ``eval_z="mode"``, ``discrim_layers=1`` and
    ``mixer.hypernet_layers=2`` give this library's earlier defaults. Measured beside the authors' (the m-step
    game, m = 10, 105k frames, 5 seeds, GRU discriminator; benchmarks/RESULTS.md §11): median greedy return 10
    (the trap) for both, one seed of five at the optimum 13 for each, so no deviation is kept."""

    noise_dim: int = 16
    """Number of latent values z (REFERENCE m-step config: 16; SMAC: 2)."""
    lambda_mi: float = 1.0
    """Weight λ_MI of the variational MI term (authors' mi_loss)."""
    lambda_ql: float = 1.0
    """Weight λ_QL of the z-conditioned TD term."""
    temperature: float = 1.0
    """τ of the Boltzmann policies softmax(Q_i / τ) the discriminator reads."""
    discrim_size: int = 32
    """Discriminator width (authors' discrim_size; their rnn_agg_size is 32 too)."""
    discrim_layers: int = 2
    """Hidden layers of the discriminator's MLP (authors' m-step discrim_layers: 2)."""
    rnn_discrim: bool = True
    """GRU over the trajectory scored at episode ends (authors' rnn_discrim), else per step."""
    z_policy: Literal["learned", "uniform"] = "learned"
    """``learned``: hierarchical π_z(z|s_0) trained by REINFORCE; ``uniform``: z uniform at every reset."""
    z_lr: float = 5e-4
    """π_z's Adam learning rate (authors: their lr, 5e-4)."""
    z_objective: Literal["authors", "entropy"] = "authors"
    """π_z's REINFORCE loss: ``authors`` −Σ (R − β)·log π_z(z|s_0) (a constant baseline β = entropy_scaling,
    summed over the minibatch), ``entropy`` −mean[(R − mean R)·log π_z] − β·mean H(π_z) (our earlier one)."""
    entropy_scaling: float = 1e-3
    """β of the z-policy loss (authors' entropy_scaling): the constant baseline or the entropy weight."""
    z_buffer_size: int = 512
    """Episodes kept for π_z's updates (authors' bandit_buffer)."""
    z_batch_size: int = 64
    """Episodes per π_z minibatch (authors' bandit_batch)."""
    z_updates: int = 100
    """π_z gradient steps per collected batch (authors' bandit_iters: 100 per episode)."""
    z_epsilon: float = 0.0
    """Probability of a uniform z at a reset while collecting (the authors' bandit_epsilon is stored but unused
    by their EZ z-agent: 0; our earlier default 0.5)."""
    eval_z: Literal["uniform", "sample", "mode"] = "uniform"
    """z during greedy evaluation: ``uniform`` (authors' test-time z), ``sample`` (z ~ π_z) or ``mode``
    (argmax π_z(z|s_0): the return of the mode π_z commits to; our earlier default)."""


@dataclass
class WeightedQMixerOptions(QMixerOptions):
    """QMIX's monotonic mixer plus Weighted QMIX's unrestricted Q̂* (oxwhirl/pymarl ``ow_qmix.yaml`` /
    ``cw_qmix.yaml``: ``central_mixer: "ff"``, ``central_agent: "central_rnn"``)."""

    central_embed_dim: int = 256
    """Width of Q̂*'s feed-forward mixer (reference central_mixing_embed_dim: 256)."""
    central_agent: bool = True
    """Q̂* has its own agent network, same architecture as the QMIX agents (reference ``central_rnn``);
    False: Q̂* mixes the QMIX agents' detached utilities."""


@dataclass
class WeightedQMixLossOptions(TDLossOptions):
    """Weighted QMIX's objective λ_qmix·L_td(w) + λ_central·L_central (reference max_q_learner)."""

    alpha: float = 0.1
    """Weight α of the samples where the condition fails (reference ``w: 0.1`` for both CW and OW)."""
    lambda_qmix: float = 1.0
    """Weight of QMIX's weighted TD loss (reference qmix_loss: 1)."""
    lambda_central: float = 1.0
    """Weight of Q̂*'s TD loss (reference central_loss: 1)."""


@dataclass
class QPlexMixerOptions:
    """QPLEX's duplex dueling mixer with multi-head attention λ_i(τ, u) (wjh720/QPLEX ``qplex.yaml``)."""

    hypernet_embed: int = 64
    """Hidden width of the transformation's w(s), b(s) networks (64)."""
    num_kernel: int = 10
    """Attention heads K of λ (10)."""
    adv_hypernet_layers: int = 3
    """Layers of each key / agent / action network of λ (3)."""
    adv_hypernet_embed: int = 64
    """Hidden width of those networks (64)."""
    weighted_head: bool = True
    """Apply the transformation w_i(s) Q_i + b_i(s) (True)."""
    is_minus_one: bool = True
    """Weigh the advantages by λ_i − 1 (True) or λ_i."""


# ---------------------------------------------------------------------------------------------- table
@dataclass
class AlgoParts:
    """What an algorithm contributes to the shared training loop.

    Attributes:
        loss_module: the ValueDecompositionLoss (its ``agent_net`` drives the policies).
        env_transforms: callables ``() -> Transform`` appended to the train and eval envs (e.g. MAVEN's
            per-episode latent z); picklable (functools.partial), since worker collectors rebuild the env.
        extra_modules: other trainable modules (not part of the loss) saved in checkpoints.
        after_batch: optional hook ``(collected_td, frames) -> dict of metrics``, called once per
            collected batch (e.g. MAVEN's z-policy REINFORCE update); its metrics reach
            ``TrainResult.metrics`` and TensorBoard.
        metric_columns: names among the ``after_batch`` metrics that also get a metrics.csv column
            (the file keeps a fixed header, so it must know them before the first row).
    """

    loss_module: Any
    env_transforms: list[Callable[[], Any]] = field(default_factory=list)
    extra_modules: dict[str, nn.Module] = field(default_factory=dict)
    after_batch: Callable[..., dict] | None = None
    metric_columns: tuple[str, ...] = ()


@dataclass
class AlgoSpec:
    """One row of the algorithm table.

    Attributes:
        name: the ``--algo`` name.
        build: ``build(cfg, info, mixer_options, loss_options) -> AlgoParts``.
        description: one line for ``torchrl-vd list``.
        mixer_options / loss_options: the typed option dataclasses filled from ``mixer_kwargs`` /
            ``loss_kwargs``.
        presets: ``TrainConfig`` fields this algorithm sets by default (e.g. MAVEN: a GRU agent).
        agents: agent kinds it supports (``mlp``, ``gru``).
        collectors: collectors it supports.
        check: optional ``check(cfg, loss_options) -> list of error strings`` for cross-field rules.
        vectorized_seeds: whether ``TrainConfig.seeds`` can train several seeds of it in one process
            (train/seeds.py stacks the loss module's networks, runs each seed's ``after_batch`` on that
            seed's data and its extra modules on its own envs, which fits MAVEN's z-policy; an algorithm
            whose extra parts cannot be split so registers False and is refused with the fix).
    """

    name: str
    build: Callable[..., AlgoParts]
    description: str
    mixer_options: type = NoOptions
    loss_options: type = TDLossOptions
    presets: dict[str, Any] = field(default_factory=dict)
    agents: tuple[str, ...] = ("mlp", "gru")
    collectors: tuple[str, ...] = COLLECTORS
    check: Callable[..., list[str]] | None = None
    vectorized_seeds: bool = True

    def options(self, cfg) -> tuple[Any, Any]:
        """``(mixer_options, loss_options)`` from ``cfg.mixer_kwargs`` / ``cfg.loss_kwargs``, checked field by field."""
        return (build_options(self.mixer_options, cfg.mixer_kwargs, f"{self.name} mixer"),
                build_options(self.loss_options, cfg.loss_kwargs, f"{self.name} loss"))

    def parts(self, cfg, info: EnvInfo) -> AlgoParts:
        """The algorithm's parts for ``cfg`` on an env described by ``info`` (its typed options resolved first)."""
        return self.build(cfg, info, *self.options(cfg))

    def problems(self, cfg) -> list[str]:
        """What in ``cfg`` this algorithm cannot run (empty when all is well)."""
        errors = []
        try:
            _, loss_opts = self.options(cfg)
        except ValueError as err:
            return [str(err).rstrip(".")]
        if cfg.agent not in self.agents:
            errors.append(f"algo {self.name!r} supports agent in {list(self.agents)}, got agent={cfg.agent!r}: set "
                          f"agent={self.agents[0]!r} (TrainConfig.preset and the CLI apply the algorithm's presets)")
        if cfg.collector not in self.collectors:
            errors.append(f"algo {self.name!r} supports collector in {list(self.collectors)}, got "
                          f"collector={cfg.collector!r}: set collector={self.collectors[0]!r}")
        if self.check is not None:
            errors += self.check(cfg, loss_opts)
        return errors


ALGOS: dict[str, AlgoSpec] = {}


def register_algo(name: str, *, description: str, mixer_options: type = NoOptions,
                  loss_options: type = TDLossOptions, presets: dict[str, Any] | None = None, **supports):
    """Decorator adding ``build(cfg, info, mixer_options, loss_options) -> AlgoParts`` to the table as ``name``.

    ``supports``: ``agents=``, ``collectors=``, ``check=``, ``vectorized_seeds=`` (see :class:`AlgoSpec`).
    """

    def deco(build):
        ALGOS[name] = AlgoSpec(name, build, description, mixer_options, loss_options, dict(presets or {}), **supports)
        return build

    return deco


def algorithms() -> dict[str, AlgoSpec]:
    """The algorithm table (name -> :class:`AlgoSpec`)."""
    return dict(ALGOS)


def get_algo(name: str) -> AlgoSpec:
    """The table row of ``name``; a close-match error for an unknown name."""
    if name not in ALGOS:
        close = difflib.get_close_matches(name, list(ALGOS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown algo {name!r}.{hint} Registered: {', '.join(sorted(ALGOS))}.")
    return ALGOS[name]


# ---------------------------------------------------------------------------------------------- builders
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


@register_algo("vdn", description="VDN: Q_tot = Σ_i Q_i (Sunehag et al. 2018)")
def build_vdn(cfg, info: EnvInfo, mixer_opts: NoOptions, loss_opts: TDLossOptions) -> AlgoParts:
    return AlgoParts(MixingQLoss(build_agent(cfg, info), VDNMixer(info.n_agents), **td_loss_kwargs(cfg, loss_opts)))


@register_algo("qmix", description="QMIX: monotonic hypernetwork mixer on the state (Rashid et al. 2018)",
               mixer_options=QMixerOptions)
def build_qmix(cfg, info: EnvInfo, mixer_opts: QMixerOptions, loss_opts: TDLossOptions) -> AlgoParts:
    mixer = QMixer(info.n_agents, info.state_shape, **dataclasses.asdict(mixer_opts))
    return AlgoParts(MixingQLoss(build_agent(cfg, info), mixer, **td_loss_kwargs(cfg, loss_opts)))


def _build_weighted_qmix(cfg, info: EnvInfo, mixer_opts: WeightedQMixerOptions, loss_opts: WeightedQMixLossOptions,
                         weighting: str) -> AlgoParts:
    """QMIX agents and mixer from ``cfg``; Q̂*'s own agents (same architecture, fresh weights) and mixer."""
    qmix = {f.name: getattr(mixer_opts, f.name) for f in dataclasses.fields(QMixerOptions)}
    mixer = QMixer(info.n_agents, info.state_shape, **qmix)
    central = CentralQMixer(info.n_agents, info.state_shape, embed_dim=mixer_opts.central_embed_dim)
    central_agent = build_agent(cfg, info) if mixer_opts.central_agent else None
    return AlgoParts(WeightedQMixLoss(build_agent(cfg, info), mixer, central, central_agent, weighting=weighting,
                                      **td_loss_kwargs(cfg, loss_opts)))


@register_algo("cw-qmix", description="CW-QMIX: QMIX projected toward an unrestricted Q̂*, centrally weighted "
               "(Rashid et al. 2020)", mixer_options=WeightedQMixerOptions, loss_options=WeightedQMixLossOptions)
def build_cw_qmix(cfg, info, mixer_opts: WeightedQMixerOptions, loss_opts: WeightedQMixLossOptions) -> AlgoParts:
    return _build_weighted_qmix(cfg, info, mixer_opts, loss_opts, "cw")


@register_algo("ow-qmix", description="OW-QMIX: QMIX projected toward an unrestricted Q̂*, optimistically "
               "weighted (Rashid et al. 2020)", mixer_options=WeightedQMixerOptions, loss_options=WeightedQMixLossOptions)
def build_ow_qmix(cfg, info, mixer_opts: WeightedQMixerOptions, loss_opts: WeightedQMixLossOptions) -> AlgoParts:
    return _build_weighted_qmix(cfg, info, mixer_opts, loss_opts, "ow")


@register_algo("qplex", description="QPLEX: duplex dueling mixer with attention, IGM-complete (Wang et al. 2021)",
               mixer_options=QPlexMixerOptions)
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


@register_algo("qtran", description="QTRAN-base: unrestricted Q_jt + V with L_opt/L_nopt (Son et al. 2019)",
               mixer_options=QTranNetOptions, loss_options=QTranLossOptions)
def build_qtran(cfg, info, mixer_opts: QTranNetOptions, loss_opts: QTranLossOptions) -> AlgoParts:
    return _build_qtran(cfg, info, mixer_opts, loss_opts, "base")


@register_algo("qtran-alt", description="QTRAN-alt: counterfactual L_nopt-min (Son et al. 2019, Sec. 3)",
               mixer_options=QTranNetOptions, loss_options=QTranLossOptions)
def build_qtran_alt(cfg, info, mixer_opts: QTranNetOptions, loss_opts: QTranLossOptions) -> AlgoParts:
    return _build_qtran(cfg, info, mixer_opts, loss_opts, "alt")


def _check_maven(cfg, opts: MavenOptions) -> list[str]:
    if opts.z_policy == "learned" and cfg.collector != "single":
        return [f"MAVEN's learned z-policy is updated in this process and read by the NoiseTransform of the env it "
                f"collects from; collector={cfg.collector!r} would run stale copies in its workers. Use "
                "collector='single' or loss_kwargs.z_policy='uniform'"]
    return []


@register_algo("maven", description="MAVEN: z-conditioned QMIX, variational MI, hierarchical z-policy (Mahajan et al. 2019)",
               mixer_options=MavenMixerOptions, loss_options=MavenOptions,
               presets={"agent": "gru", "last_action": True}, agents=("gru",), check=_check_maven)
def build_maven(cfg, info: EnvInfo, mixer_opts: MavenMixerOptions, opts: MavenOptions) -> AlgoParts:
    """MAVEN's parts for ``train()``: MavenLoss, the NoiseTransform factory and the z-policy hook.

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
    if info.group != "agents":
        loss.use_group(info.group)
    return AlgoParts(
        loss,
        # a partial, not a lambda: worker collectors (multi/ray, uniform z-policy) pickle the env factory
        env_transforms=[functools.partial(NoiseTransform, z_policy, opts.noise_dim, epsilon=opts.z_epsilon,
                                          eval_z=opts.eval_z)],
        extra_modules={"z_policy": z_policy},
        after_batch=trainer,
        metric_columns=("loss_rl", "z_entropy"),
    )


__all__ = ["AlgoParts", "AlgoSpec", "algorithms", "build_agent", "get_algo", "register_algo"]
