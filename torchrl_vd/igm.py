"""The Individual-Global-Max property as a tool (IGM: Son et al. 2019, Definition 1; Rashid et al. 2018, Eq. 4).

IGM holds when the greedy joint action of the centralized value equals the joint action made of
every agent's greedy local action::

    argmax_a Q(h, z, a) == (argmax_{a_1} Q(h_1, a_1), ..., argmax_{a_n} Q(h_n, a_n))

``check_igm`` enumerates the joint action space (or samples it when it is larger than
``max_joint_actions``), evaluates the centralized value of each joint action through the loss
module's own networks (Q_tot for VDN, QMIX, MAVEN, CW-/OW-QMIX and QPLEX, Q_jt for QTRAN and QTRAN-alt), and
compares. IQL learns no joint value, so the check does not apply to it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase


def all_joint_actions(n_agents: int, n_actions: int) -> torch.Tensor:
    """Every joint action, ``[n_actions ** n_agents, n_agents]``, in row-major (itertools.product) order."""
    return torch.tensor(list(itertools.product(range(n_actions), repeat=n_agents)), dtype=torch.long)


@dataclass
class IGMReport:
    """Result of :func:`check_igm`.

    Attributes:
        joint_q: centralized value of every joint action, ``[*B, |A_1|, ..., |A_n|]`` when enumerated,
            else ``[*B, K]`` for the ``joint_actions`` that were sampled.
        joint_actions: ``[K, n]`` the joint actions evaluated (row-major order when enumerated).
        joint_argmax: ``[*B, n]`` the greedy joint action of the centralized value.
        local_argmax: ``[*B, n]`` the per-agent greedy actions.
        holds: ``[*B]`` bool, IGM holds: the decentralized greedy action attains the centralized max
            (value comparison with ``atol``, so ties do not count as violations).
        gap: ``[*B]`` max_a Q(h,z,a) − Q(h,z,a_local) ≥ 0: how much decentralized execution loses.
        enumerated: whether every joint action was evaluated.
    """

    joint_q: torch.Tensor
    joint_actions: torch.Tensor
    joint_argmax: torch.Tensor
    local_argmax: torch.Tensor
    holds: torch.Tensor
    gap: torch.Tensor
    enumerated: bool

    @property
    def fraction(self) -> float:
        """Share of batch entries where IGM holds."""
        return self.holds.float().mean().item()


@torch.no_grad()
def check_igm(
    loss_module,
    td: TensorDictBase,
    max_joint_actions: int = 4096,
    *,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
) -> IGMReport:
    """Check the IGM property for ``loss_module``'s networks on the observations in ``td``.

    Args:
        loss_module: a :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss` (MixingQLoss,
            QTranLoss, MavenLoss, WeightedQMixLoss, QPlexLoss); its ``local_q_values`` and ``joint_q_values`` are used.
        td: tensordict with the agents' observations (and state, masks, hidden state as needed).
        max_joint_actions: enumerate all ``|A|^n`` joint actions up to this many; beyond, sample this many
            at random (plus the local greedy action), so ``holds`` is then a necessary check only.
        atol: tolerance of the value comparison.

    Examples:
        >>> import torch
        >>> from torchrl_vd import Mixer, MixingQLoss, MLPAgent, VDNMixer, check_igm
        >>> from torchrl_vd.testing import random_batch
        >>> td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=8)
        >>> report = check_igm(MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(2)), td)
        >>> report.joint_q.shape  # Q_tot of all 3 x 3 joint actions, for each of the 8 samples
        torch.Size([8, 3, 3])
        >>> report.fraction, torch.equal(report.joint_argmax, report.local_argmax)  # a sum keeps IGM
        (1.0, True)
        >>> class Negated(Mixer):  # Q_tot = -Σ_i Q_i: not monotonic
        ...     needs_state = False
        ...     def mix(self, utilities, state):
        ...         return -utilities.sum(-1, keepdim=True)
        >>> report = check_igm(MixingQLoss(MLPAgent(2, 3, 4), Negated(2)), td)
        >>> report.fraction, bool((report.gap > 0).all())  # the agents' greedy actions are Q_tot's worst
        (0.0, True)
    """
    q_local = loss_module.local_q_values(td)  # [*B, n, A] (illegal actions at -inf)
    batch, (n, A) = q_local.shape[:-2], q_local.shape[-2:]
    local_argmax = q_local.argmax(-1)  # [*B, n]
    total = A**n
    enumerated = total <= max_joint_actions
    if enumerated:
        joint_actions = all_joint_actions(n, A).to(q_local.device)  # [A^n, n]
    else:
        joint_actions = torch.randint(A, (max_joint_actions, n), generator=generator).to(q_local.device)
    jq = loss_module.joint_q_values(td, joint_actions)  # [*B, K]
    mask = loss_module.read_batch_for_eval(td).action_mask
    if mask is not None:  # illegal joint actions cannot be the greedy joint action
        legal = mask.bool().unsqueeze(-3).expand(*batch, joint_actions.shape[0], n, A)  # [*B, K, n, A]
        legal = legal.gather(-1, joint_actions.expand(*batch, *joint_actions.shape).unsqueeze(-1)).squeeze(-1).all(-1)
        jq = jq.masked_fill(~legal, -math.inf)  # [*B, K]
    # value of the decentralized greedy joint action
    q_at_local = loss_module.joint_q_values(td, local_argmax.unsqueeze(-2)).squeeze(-1)  # [*B, 1, n] -> [*B]
    best, best_idx = jq.max(-1)  # [*B]
    best = torch.maximum(best, q_at_local)  # sampled case: the local action may beat every sample
    joint_argmax = joint_actions[best_idx]  # [*B, n]
    gap = (best - q_at_local).clamp_min(0)
    holds = gap <= atol * (1 + best.abs())
    joint_q = jq.reshape(*batch, *([A] * n)) if enumerated else jq
    return IGMReport(joint_q, joint_actions, joint_argmax, local_argmax, holds, gap, enumerated)

