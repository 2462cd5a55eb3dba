"""PQN's Q-network (Gallici et al. 2025, "Simplifying Deep Temporal Difference Learning"): JaxMARL's ``QNetwork``.

FLAIROx/JaxMARL ``baselines/QLearning/pqn_vdn_ff.py`` / ``pqn_vdn_rnn.py`` (``QNetwork``): one network shared by all
agents, reading each agent's observation with its one-hot id appended (JaxMARL's ``CTRolloutManager`` appends it),

    x → [BatchNorm] → (Dense(H) → norm → ReLU) × L → [GRU(H), reset at episode starts] → Dense(A) = Q_i(h_i, ·),

the norm after each Dense and before its ReLU being LayerNorm, BatchNorm or none (``norm``), the input BatchNorm
optional (``norm_input``). PQN needs no target network because of these normalisations (the paper's Sec. 4).

BatchNorm follows flax's ``nn.BatchNorm`` as JaxMARL uses it: the statistics of the batch (biased variance,
ε 1e-5) in the gradient steps, whose forward also moves the running averages, m ← 0.99 m + 0.01 batch (flax's
``momentum=0.99``; torch's ``BatchNorm1d`` would be ``momentum=0.01`` with an *unbiased* running variance), and the
running averages everywhere else (acting, greedy evaluation: JaxMARL's ``train=False``). The mode is not torch's
``module.training``: only :func:`batch_statistics` (the PQN loss, around its forward) switches it, so no
``.train()`` / ``.eval()`` elsewhere can flip it. Inside, the statistics are taken over the rows a ``valid`` mask
keeps (padding does not shift them; PQN's rollouts have none, so every row counts, as in JaxMARL).

Initialisation (``init="flax"``, the default): flax's defaults, as JaxMARL leaves them: Dense kernels LeCun normal
(truncated at ±2σ, variance 1/fan_in), biases zero; the GRU's input kernels LeCun normal, its recurrent kernels
orthogonal per gate, biases zero (torch's ``nn.GRU`` has two redundant hidden biases for r and z that flax's
``GRUCell`` lacks: they start at zero and train along); norms scale 1, bias 0. ``init="torch"`` keeps torch's.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal, Sequence

import torch
from torch import nn

from torchrl_vd.modules.agents import AgentNet, MLPAgent
from torchrl_vd.modules.gru_agent import GRUAgent

NORMS = ("layer_norm", "batch_norm", "none")
FLAX_BATCH_NORM_MOMENTUM = 0.99  # flax nn.BatchNorm's default: running = 0.99 running + 0.01 batch
FLAX_BATCH_NORM_EPS = 1e-5
FLAX_LAYER_NORM_EPS = 1e-6
_TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2] (flax's variance_scaling)


class BatchNorm(nn.Module):
    """Flax's ``nn.BatchNorm`` over the last dimension of ``[..., C]`` (every leading row is a sample).

    Running averages unless :func:`batch_statistics` switched :attr:`batch_stats` on; then the (valid) rows'
    mean and biased variance, and the running averages move: r ← 0.99 r + 0.01 s (in place, so that stacked
    seeds under ``torch.vmap`` update their own slice).
    """

    def __init__(self, features: int, *, momentum: float = FLAX_BATCH_NORM_MOMENTUM, eps: float = FLAX_BATCH_NORM_EPS):
        super().__init__()
        self.features, self.momentum, self.eps = int(features), float(momentum), float(eps)
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.batch_stats = False  # set by batch_statistics() only
        self.row_mask: torch.Tensor | None = None  # [*rows] bool, set with batch_stats

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.batch_stats:
            mean, var = self.running_mean, self.running_var
        else:
            mean, var = self._batch_moments(x)
            with torch.no_grad():  # flax: ra = momentum * ra + (1 - momentum) * batch statistic
                m = self.momentum
                self.running_mean.copy_(m * self.running_mean + (1 - m) * mean.detach())
                self.running_var.copy_(m * self.running_var + (1 - m) * var.detach())
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def _batch_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance ``[C]`` over the rows of ``x`` that :attr:`row_mask` keeps (all without one)."""
        rows = x.reshape(-1, x.shape[-1])  # [R, C]
        if self.row_mask is None:
            mean = rows.mean(0)
            return mean, (rows - mean).square().mean(0)
        mask = self.row_mask
        mask = mask.reshape(*mask.shape, *[1] * (x.ndim - 1 - mask.ndim)).expand(x.shape[:-1])  # [*rows]
        w = mask.reshape(-1, 1).to(x.dtype)  # [R, 1]
        count = w.sum().clamp_min(1.0)
        mean = (rows * w).sum(0) / count
        return mean, ((rows - mean).square() * w).sum(0) / count

    def extra_repr(self) -> str:
        return f"{self.features}, momentum={self.momentum}, eps={self.eps}"


def make_norm(kind: str, features: int) -> nn.Module:
    """The normalisation after a hidden Dense: flax's ``LayerNorm`` (ε 1e-6), :class:`BatchNorm` or none."""
    if kind == "layer_norm":
        return nn.LayerNorm(features, eps=FLAX_LAYER_NORM_EPS)
    if kind == "batch_norm":
        return BatchNorm(features)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {list(NORMS)}, got {kind!r}.")


class NormMLP(nn.Module):
    """JaxMARL's QNetwork body: ``[BatchNorm(x)] → (Linear(H) → norm → activation) × len(hidden)`` on ``[..., F]``."""

    def __init__(self, in_features: int, hidden: Sequence[int], *, norm: str = "layer_norm", norm_input: bool = False,
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"The PQN network needs at least one positive hidden size, got {hidden}.")
        self.input_norm = BatchNorm(in_features) if norm_input else nn.Identity()
        layers: list[nn.Module] = []
        for a, b in zip((in_features, *hidden[:-1]), hidden):
            layers += [nn.Linear(a, b), make_norm(norm, b), activation()]  # the norm after the Dense, before ReLU
        self.layers = nn.Sequential(*layers)
        self.out_features = hidden[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.input_norm(x))


# ---------------------------------------------------------------------------------------------- modes and init
def batch_norms(module: nn.Module) -> list[BatchNorm]:
    """The :class:`BatchNorm` layers inside ``module``."""
    return [m for m in module.modules() if isinstance(m, BatchNorm)]


@contextlib.contextmanager
def batch_statistics(module: nn.Module, valid: torch.Tensor | None = None):
    """Inside, ``module``'s :class:`BatchNorm` layers normalise by the batch's statistics over the rows ``valid``
    keeps (``[*B]``, broadcast over the agents; None: all rows) and move their running averages: flax's
    ``train=True``, as JaxMARL's gradient steps run the network. A no-op for networks without BatchNorm."""
    norms = batch_norms(module)
    for bn in norms:
        bn.batch_stats, bn.row_mask = True, valid
    try:
        yield
    finally:
        for bn in norms:
            bn.batch_stats, bn.row_mask = False, None


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """flax's ``lecun_normal``: N(0, 1) truncated to [-2, 2], times sqrt(1 / fan_in) / 0.8796 (so that the variance is
    1 / fan_in); torch weights are ``[out, in]``, fan_in = in."""
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0)
        return weight.mul_(math.sqrt(1.0 / weight.shape[-1]) / _TRUNCATED_STD)


def flax_init_(module: nn.Module) -> None:
    """flax's default initialisation of every Linear, GRU and norm inside ``module`` (see the module docstring)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            lecun_normal_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GRU):
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):
                    lecun_normal_(p)  # the three gates' input kernels [3H, E]: each gate's fan_in is E
                elif name.startswith("weight_hh"):
                    for gate in p.detach().chunk(3, dim=0):  # r, z, n: one orthogonal [H, H] kernel each
                        nn.init.orthogonal_(gate)
                else:
                    nn.init.zeros_(p)
        elif isinstance(m, (nn.LayerNorm, BatchNorm)):
            m.reset_parameters()


def init_(module: nn.Module, init: str) -> None:
    """Initialise every layer of ``module``: flax's defaults (:func:`flax_init_`) or torch's (each layer's own
    ``reset_parameters``)."""
    if init == "flax":
        flax_init_(module)
        return
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()


# ---------------------------------------------------------------------------------------------- the agents
class PQNAgent(AgentNet):
    """JaxMARL's feed-forward ``QNetwork`` (``pqn_vdn_ff.py``) as an :class:`AgentNet`: ``[*B, n, F] -> [*B, n, A]``.

    Args:
        n_agents, n_actions, obs_dim: sizes.
        hidden: the Dense widths (JaxMARL: ``NUM_LAYERS`` × ``HIDDEN_SIZE``).

    Keyword Args:
        norm: ``"layer_norm"`` (JaxMARL's default, its MPE configs), ``"batch_norm"`` (its SMAX config) or ``"none"``.
        norm_input: a BatchNorm on the input (JaxMARL's ``NORM_INPUT``).
        agent_id: append the one-hot agent id to the input (JaxMARL always does).
        activation: the hidden activation (JaxMARL: ReLU).
        init: ``"flax"`` (JaxMARL's) or ``"torch"``.

    Examples:
        >>> import torch
        >>> agent = PQNAgent(2, 3, 4, hidden=(8, 8), norm="batch_norm", norm_input=True)
        >>> obs = torch.randn(5, 2, 4)
        >>> agent(obs).shape
        torch.Size([5, 2, 3])
        >>> with batch_statistics(agent):  # the gradient steps' mode: batch statistics, running averages move
        ...     q_train = agent(obs)
        >>> bool(agent.norm_layers()[0].running_mean.abs().sum() > 0)
        True
    """

    vmappable = False  # many seeds in one process set it (train/population.py): the PQN loss then avoids
    # data-dependent shapes

    def __init__(self, n_agents: int, n_actions: int, obs_dim: int, hidden: Sequence[int] = (256, 256), *,
                 norm: Literal["layer_norm", "batch_norm", "none"] = "layer_norm", norm_input: bool = False,
                 agent_id: bool = True, activation: type[nn.Module] = nn.ReLU, init: Literal["flax", "torch"] = "flax"):
        super().__init__(n_agents, n_actions, obs_dim)
        self.agent_id, self.norm, self.init = bool(agent_id), norm, init
        self.body = NormMLP(obs_dim + (n_agents if agent_id else 0), hidden, norm=norm, norm_input=norm_input,
                            activation=activation)
        self.head = nn.Linear(self.body.out_features, n_actions)
        self.feature_size = self.body.out_features
        self.register_buffer("_eye", torch.eye(n_agents), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation ``init`` names, of every layer (:func:`init_`)."""
        init_(self, self.init)

    def norm_layers(self) -> list[BatchNorm]:
        return batch_norms(self)

    _inputs = MLPAgent._inputs  # the checked observation with the one-hot agent id appended, as the MLP agent's

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``[*B, n, obs_dim] -> [*B, n, n_actions]``."""
        return self.head(self.body(self._inputs(obs)))

    def trunk(self, obs: torch.Tensor) -> torch.Tensor:
        """The last hidden layer ``[*B, n, feature_size]``."""
        return self.body(self._inputs(obs))

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)


class PQNRecurrentAgent(GRUAgent):
    """JaxMARL's recurrent ``QNetwork`` (``pqn_vdn_rnn.py``): the :class:`PQNAgent` body, then a GRU of the last
    hidden width reset at episode starts (JaxMARL resets where the previous step was done; here at ``is_init``),
    then a linear head. A :class:`~torchrl_vd.modules.gru_agent.GRUAgent` (stored hidden state, unrolls, the
    cell-by-cell GRU many seeds run under vmap) whose input MLP is JaxMARL's normalised one.

    ``hidden=(512, 512)`` is JaxMARL's SMAX network: two Dense-BatchNorm-ReLU layers of 512, a 512-unit GRU (where
    ``GRUAgent``'s last entry *is* the GRU: its ``(512, 512)`` has one input layer).

    Examples:
        >>> import torch
        >>> agent = PQNRecurrentAgent(2, 3, 4, hidden=(8, 8), norm="batch_norm", norm_input=True)
        >>> obs = torch.randn(5, 7, 2, 4)  # [B, T, n, F]
        >>> q, h = agent.unroll(obs)
        >>> q.shape, h.shape
        (torch.Size([5, 7, 2, 3]), torch.Size([5, 7, 2, 8]))
    """

    def __init__(self, n_agents: int, n_actions: int, obs_dim: int, hidden: Sequence[int] = (512, 512), *,
                 norm: Literal["layer_norm", "batch_norm", "none"] = "batch_norm", norm_input: bool = False,
                 agent_id: bool = True, last_action: bool = False, activation: type[nn.Module] = nn.ReLU,
                 init: Literal["flax", "torch"] = "flax"):
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"The PQN network needs at least one positive hidden size, got {hidden}.")
        super().__init__(n_agents, n_actions, obs_dim, hidden=(*hidden, hidden[-1]), agent_id=agent_id,
                         last_action=last_action, activation=activation)
        in_f = obs_dim + (n_actions if last_action else 0) + (n_agents if agent_id else 0)
        self.encoder = NormMLP(in_f, hidden, norm=norm, norm_input=norm_input, activation=activation)
        self.norm, self.init = norm, init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation ``init`` names, of every layer (:func:`init_`)."""
        init_(self, self.init)

    def norm_layers(self) -> list[BatchNorm]:
        return batch_norms(self)


__all__ = ["NORMS", "BatchNorm", "NormMLP", "PQNAgent", "PQNRecurrentAgent", "batch_norms", "batch_statistics",
           "flax_init_", "init_", "lecun_normal_", "make_norm"]
