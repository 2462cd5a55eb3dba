"""The algorithms' typed options: one dataclass per part (mixer, loss), a docstring under each field.

Filled from ``TrainConfig.mixer_kwargs`` / ``loss_kwargs`` (``--set mixer.NAME=VALUE`` / ``--set loss.NAME=VALUE``)
field by field, with close-match errors (train/options.py). Defaults are the reference implementations'
(pymarl for VDN/QMIX/QTRAN, oxwhirl/wqmix, wjh720/QPLEX, the MAVEN authors' code, JaxMARL's PQN-VDN). Pure
Python: the CLI's ``--help`` lists them without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class NoOptions:
    """This part takes no options."""


@dataclass
class TDLossOptions:
    """Options every value-decomposition loss takes (besides ``double_q`` / ``burn_in``, which are
    ``TrainConfig`` fields)."""

    loss_function: Literal["l2", "smooth_l1", "l1"] = "l2"
    """TD distance: ``l2`` (the squared TD error of VDN/QMIX; pymarl), ``smooth_l1`` or ``l1`` (|δ|; BenchMARL's
    ``loss_function`` offers the same three)."""


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
    observations, or their (detached) utility vectors. On the QTRAN matrix game ``obs`` finds the optimum where
    ``hidden`` can miss it (docs/PRESETS.md; the matrix preset of QTRAN uses ``obs``)."""


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

    The alternatives below (``z_epsilon``, ``z_objective="entropy"``, ``eval_z="mode"``) measured no better on the
    m-step game (benchmarks/RESULTS.md, MAVEN defaults), so the defaults stay the authors'."""

    noise_dim: int = 16
    """Number of latent values z (the authors' m-step config: 16; SMAC: 2)."""
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
    summed over the minibatch), ``entropy`` −mean[(R − mean R)·log π_z] − β·mean H(π_z) (a mean-baseline variant)."""
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
    by their EZ z-agent: 0)."""
    eval_z: Literal["uniform", "sample", "mode"] = "uniform"
    """z during greedy evaluation: ``uniform`` (authors' test-time z), ``sample`` (z ~ π_z) or ``mode``
    (argmax π_z(z|s_0): the return of the mode π_z commits to)."""


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


@dataclass
class IQLLossOptions(TDLossOptions):
    """Independent Q-learning's objective (EPyMARL ``QLearner`` with ``mixer: None``)."""

    rewards: Literal["team", "individual"] = "team"
    """Each agent learns from the team reward (EPyMARL's ``common_reward``) or from its own reward (XuanCe's IQL;
    the env must give per-agent rewards: VMAS, PettingZoo, SMAX, LBF, RWARE)."""


@dataclass
class PQNOptions:
    """PQN-VDN's network and schedule (FLAIROx/JaxMARL ``baselines/QLearning/pqn_vdn_rnn.py`` / ``pqn_vdn_ff.py``;
    defaults: the code's own, and its configs' common values). JaxMARL's other keys are ``TrainConfig`` fields:
    NUM_ENVS ``num_envs``, NUM_STEPS ``frames_per_batch / num_envs``, TOTAL_TIMESTEPS ``frames``, HIDDEN_SIZE and
    NUM_LAYERS ``hidden``, LR ``lr``, MAX_GRAD_NORM ``grad_clip``, GAMMA ``gamma``, LAMBDA ``td_lambda``, EPS_START /
    EPS_FINISH ``eps_start`` / ``eps_end``, REW_SCALE ``reward_scale``, the GRU variant ``agent='gru'``."""

    num_epochs: int = 4
    """Passes over each rollout (JaxMARL's NUM_EPOCHS; its SMAX and MPE configs: 4)."""
    num_minibatches: int = 16
    """Minibatches per pass (NUM_MINIBATCHES: 16): the recurrent variant splits the envs (``num_envs`` must be
    divisible by it), the feed-forward one the rollout's (step, env) pairs (``frames_per_batch`` must be)."""
    norm: Literal["layer_norm", "batch_norm", "none"] = "layer_norm"
    """The norm after each hidden Dense (NORM_TYPE; QNetwork's default ``layer_norm``; the SMAX config's
    ``batch_norm``)."""
    norm_input: bool = False
    """A BatchNorm on the input (NORM_INPUT: off by default, on in the SMAX config)."""
    eps_decay: float = 0.1
    """ε anneals linearly from ``eps_start`` to ``eps_end`` over this share of the updates (EPS_DECAY: 0.1), counted
    in updates (one per rollout), then holds."""
    lr_linear_decay: bool = False
    """The LR decays linearly from ``lr`` to 1e-10 over all the run's gradient steps (LR_LINEAR_DECAY: off by
    default, on in the SMAX config)."""
    memory_window: int = 0
    """Recurrent variant: each update trains on the last ``memory_window`` steps of the previous rollout (already
    trained on once) followed by the new rollout (MEMORY_WINDOW: 4 in the SMAX config)."""
    init: Literal["flax", "torch"] = "flax"
    """The network's initialisation: flax's defaults, as JaxMARL's (LeCun-normal Dense kernels, orthogonal GRU
    recurrent kernels, zero biases), or torch's."""
