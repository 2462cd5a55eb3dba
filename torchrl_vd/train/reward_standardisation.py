"""Standardising the team reward the losses learn from (``TrainConfig.standardise_rewards``).

Two conventions of reference code, each equal to its source on identical rewards (tests/test_reward_standardisation.py):
EPyMARL's running statistics (:class:`RunningRewardStats`) and MARLlib's per-minibatch ones
(:class:`BatchRewardStandardiser`). Both keep separate statistics per leading dimension (``lead``: N seeds).
"""

from __future__ import annotations

import torch


class RunningRewardStats:
    """Running mean and variance of the sampled team rewards, and the rewards standardised by them.

    EPyMARL's ``standardise_rewards`` (uoe-agents/epymarl src/components/standarize_stream.py, its
    ``RunningMeanStd``, from semitable/fast-marl; used in src/learners/q_learner.py): before each gradient step
    the statistics absorb the minibatch's rewards (Chan et al.'s parallel update: count starts at 1e-4, mean at
    0, var at 1; the batch variance is torch's unbiased ``var``), then the step uses ``(r - mean) / sqrt(var)``.
    EPyMARL's minibatches of whole episodes also count the zero rewards of the padding after an episode ends;
    the transitions and sequences stored here have no padding.

    ``lead``: leading dimensions with their own statistics (``(N,)``: N vectorized seeds, one each).
    """

    def __init__(self, lead: tuple[int, ...] = (), device=None):
        self.mean = torch.zeros(*lead, 1, device=device)  # [*lead, 1]
        self.var = torch.ones(*lead, 1, device=device)  # [*lead, 1]
        self.count = 1e-4
        self.lead = len(lead)

    def __call__(self, reward: torch.Tensor) -> torch.Tensor:
        """Update with ``reward`` ``[*lead, *rows, 1]``, then return it standardised (same shape)."""
        rows = reward.reshape(*reward.shape[:self.lead], -1)  # [*lead, R]: every sampled reward of each lead
        batch_mean, batch_var, n = rows.mean(-1, keepdim=True), rows.var(-1, keepdim=True), rows.shape[-1]
        delta = batch_mean - self.mean  # [*lead, 1]
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total
        view = (*self.mean.shape[:-1], *[1] * (reward.ndim - self.lead))  # broadcast over the rows
        return (reward - self.mean.reshape(view)) / self.var.sqrt().reshape(view)

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        """Restore on this object's device (a checkpoint is read onto the CPU; the run may resume on a GPU)."""
        device = self.mean.device
        self.mean, self.var = state["mean"].to(device, copy=True), state["var"].to(device, copy=True)
        self.count = float(state["count"])

    def seed_state_dict(self, k: int) -> dict:
        """Lead ``k``'s statistics in a single run's format (vectorized seed k's own checkpoint)."""
        return {"mean": self.mean[k].clone(), "var": self.var[k].clone(), "count": self.count}

    @staticmethod
    def stack_states(states: list[dict]) -> dict:
        """N single runs' states as one state with a leading seed dimension (the inverse of seed_state_dict)."""
        return {"mean": torch.stack([s["mean"] for s in states]), "var": torch.stack([s["var"] for s in states]),
                "count": states[0]["count"]}  # [N, 1] each; every seed has seen the same number of rewards


class BatchRewardStandardiser:
    """Each sampled minibatch's team rewards standardised by that minibatch's own mean and std.

    MARLlib's ``reward_standardize`` (Replicable-MARL/MARLlib marllib/marl/algos/core/VD/iql_vdn_qmix.py,
    ``JointQLoss``; on in its MPE VDN/QMIX runs): ``r <- (r - r.mean()) / (r.std() + 1e-5)`` over every element of
    the sampled ``[B, T, n_agents]`` reward tensor, where MARLlib's cooperative wrapper gives each of the ``n``
    agents the same copy of the team reward. Here the team reward is stored once per step ``[*rows, 1]``; the std
    is torch's unbiased one taken as over ``copies`` identical copies of every reward (``copies = n_agents``
    gives MARLlib's value exactly): var = copies · Σ (r − mean)² / (copies · R − 1) for R rewards. No state.

    ``lead``: leading dimensions standardised separately (``(N,)``: N vectorized seeds).
    """

    EPS = 1e-5

    def __init__(self, lead: tuple[int, ...] = (), copies: int = 1):
        self.lead, self.copies = len(lead), int(copies)

    def __call__(self, reward: torch.Tensor) -> torch.Tensor:
        """``reward`` ``[*lead, *rows, 1]`` standardised by its own statistics per lead (same shape)."""
        rows = reward.reshape(*reward.shape[:self.lead], -1)  # [*lead, R]: every sampled reward of each lead
        mean = rows.mean(-1, keepdim=True)  # [*lead, 1]
        var = (rows - mean).square().sum(-1, keepdim=True) * self.copies / (self.copies * rows.shape[-1] - 1)
        view = (*mean.shape[:-1], *[1] * (reward.ndim - self.lead))  # broadcast over the rows
        return (reward - mean.reshape(view)) / (var.sqrt().reshape(view) + self.EPS)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass  # stateless: nothing to restore

    def seed_state_dict(self, k: int) -> dict:
        return {}

    @staticmethod
    def stack_states(states: list[dict]) -> dict:
        return {}


def reward_standardiser(cfg, lead: tuple[int, ...], n_agents: int):
    """The standardiser ``cfg.standardise_rewards`` names, or None when it is off: ``"running"`` (or ``True``)
    EPyMARL's running statistics, ``"batch"`` MARLlib's per-minibatch ones."""
    kind = "running" if cfg.standardise_rewards is True else cfg.standardise_rewards
    if not kind:
        return None
    if kind == "batch":
        return BatchRewardStandardiser(lead, copies=n_agents)
    return RunningRewardStats(lead, device=cfg.device)


__all__ = ["BatchRewardStandardiser", "RunningRewardStats", "reward_standardiser"]
