"""MAVEN's hierarchical z-policy objective L_RL (Mahajan et al. 2019, Sec. 4), trained by REINFORCE.

π_z(z | s_0) is trained apart from the value networks (parameter freezing: no Q network in the graph), on
the episodes the collector finishes, so this is an optimizer-owning hook rather than a ``LossModule``.
"""

from __future__ import annotations

from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler

from torchrl_vd.keys import DONE, EPISODE_REWARD, NEXT, NOISE, NOISE_STATE0
from torchrl_vd.modules.z_policy import ZPolicyNet
from torchrl_vd.objectives.maven import MavenLoss


class ZPolicyTrainer:
    """REINFORCE on the hierarchical z-policy π_z(z | s_0) (seed: L_RL, Q side frozen).

    Used as ``AlgoParts.after_batch``: from each collected batch [num_envs, T] it takes the episodes
    that ended in it — (s_0, z, return) read at the done steps from ``"noise_state0"``, ``"noise"`` and
    ``("next", "episode_reward")`` (torchrl's ``RewardSum``, which ``train()`` adds) — pushes them into
    a FIFO replay buffer (authors: 512 episodes), then takes ``updates`` gradient steps on minibatches
    (authors: 64 episodes, 100 steps on the m-step game) of L_RL, one of two objectives:

    - ``objective="authors"`` (default; the authors' ``EZ_agent.update_returns`` @be975c5: minus the dot
      product of log-probabilities and returns, plus ``entropy_scaling`` times the summed log-probabilities)::

          L_RL = −Σ_e (R_e − β) · log π_z(z_e | s_0,e)

      plain REINFORCE summed over the minibatch with a constant baseline β = ``entropy_scaling``
      (authors: 0.001; the term is named "entropy" in their code but is β · Σ log π, not an entropy);
    - ``objective="entropy"`` (this library's earlier default)::

          L_RL = −mean_e[(R_e − b) · log π_z(z_e | s_0,e)] − β · mean_e[H(π_z(· | s_0,e))]

      with b the minibatch's mean return (``baseline=True``) and a true entropy bonus of weight β.

    Only π_z's parameters are in the optimizer and in the graph, so the agents, mixer and
    discriminator are untouched.

    Args:
        z_policy: π_z from :func:`make_z_policy` (its ``get_dist`` gives the distribution).

    Keyword Args:
        lr: Adam learning rate of π_z (authors: the agents' lr, 5e-4).
        entropy_scaling: β (authors: 0.001): the constant baseline (``authors``) or the entropy weight.
        buffer_size / batch_size: episode buffer and minibatch sizes.
        updates: gradient steps per collected batch (once the buffer holds ``batch_size`` episodes).
        objective: ``"authors"`` or ``"entropy"`` (above).
        baseline: ``objective="entropy"`` only: subtract the minibatch mean return.
        loss_module: a :class:`MavenLoss` whose ``loss_rl`` output should report the last L_RL.
    """

    def __init__(
        self,
        z_policy,
        *,
        lr: float = 5e-4,
        entropy_scaling: float = 1e-3,
        buffer_size: int = 512,
        batch_size: int = 64,
        updates: int = 1,
        objective: Literal["authors", "entropy"] = "authors",
        baseline: bool = True,
        loss_module: MavenLoss | None = None,
        noise_key: NestedKey = NOISE,
        state0_key: NestedKey = NOISE_STATE0,
        return_key: NestedKey = (NEXT, EPISODE_REWARD),
        done_key: NestedKey = (NEXT, DONE),
    ):
        self.z_policy = z_policy
        self.params = [p for p in z_policy.parameters() if p.requires_grad]
        net = getattr(z_policy[0], "module", None) if hasattr(z_policy, "__getitem__") else None
        self._logits_net = net if isinstance(net, ZPolicyNet) else None  # make_z_policy's logits network
        self.optim = torch.optim.Adam(self.params, lr=lr, foreach=True) if self.params else None
        if objective not in ("authors", "entropy"):
            raise ValueError(f"ZPolicyTrainer: objective is 'authors' or 'entropy', got {objective!r}.")
        self.entropy_scaling, self.updates, self.baseline = float(entropy_scaling), int(updates), bool(baseline)
        self.objective = objective
        self.batch_size = int(batch_size)
        self.buffer = TensorDictReplayBuffer(  # on the device of the first episodes pushed (torchrl's default: CPU)
            storage=LazyTensorStorage(int(buffer_size), device="auto"), sampler=RandomSampler(),
            batch_size=self.batch_size,
        )
        self.loss_module = loss_module
        self.noise_key, self.state0_key, self.return_key, self.done_key = noise_key, state0_key, return_key, done_key

    def loss(self, episodes: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_RL, mean entropy)`` on episodes: ``state0_key`` ``[E, *S]``, ``noise_key`` [E, Z], ``"return"`` [E]."""
        z = episodes.get(self.noise_key).argmax(-1)  # [E]
        return self._loss(episodes.get(self.state0_key), z, episodes.get("return"))

    def _log_probs(self, s0: torch.Tensor) -> torch.Tensor:
        """log π_z(· | s_0) [E, Z]. The logits network is called directly when π_z comes from
        :func:`make_z_policy` (skips the tensordict/distribution plumbing of each step; the authors take
        100 steps per episode); any other probabilistic z-policy goes through its ``get_dist``."""
        if self._logits_net is not None:
            return torch.log_softmax(self._logits_net(s0), dim=-1)  # [E, Z]
        dist = self.z_policy.get_dist(TensorDict({self.z_policy.in_keys[0]: s0}, batch_size=s0.shape[:1]))
        return torch.log_softmax(dist.logits, dim=-1)  # a categorical over z: [E, Z]

    def _loss(self, s0: torch.Tensor, z: torch.Tensor, ret: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L_RL on tensors ``[E, *S]``, [E], [E] (``authors``: ``−Σ (R − β) log π_z(z | s_0)``; ``entropy``:
        ``−mean[(R − b) · log π_z(z | s_0)] − β · mean[H(π_z(· | s_0))]``) and the mean entropy of π_z."""
        log_p = self._log_probs(s0)  # [E, Z]
        log_prob = log_p.gather(-1, z.unsqueeze(-1)).squeeze(-1)  # [E]
        ret = ret.to(log_prob.dtype)
        entropy = -(log_p.exp() * log_p).sum(-1)  # H(π_z(· | s_0)) [E]
        if self.objective == "authors":
            return -((ret - self.entropy_scaling) * log_prob).sum(), entropy.mean().detach()
        advantage = ret - ret.mean() if self.baseline else ret
        return -(advantage * log_prob).mean() - self.entropy_scaling * entropy.mean(), entropy.mean().detach()

    def push(self, batch: TensorDictBase) -> int:
        """Add the episodes that end in ``batch`` to the buffer; returns how many."""
        done = batch.get(self.done_key).reshape(batch.shape).bool()  # [*B]
        if not done.any():
            return 0
        ret = batch.get(self.return_key, None)
        if ret is None:
            raise KeyError(
                f"ZPolicyTrainer needs the episode return at {self.return_key!r}: add torchrl's "
                "RewardSum(in_keys=['reward'], out_keys=['episode_reward']) to the env (train() does)."
            )
        episodes = TensorDict(
            {
                self.state0_key: batch.get(self.state0_key)[done],  # [E, *S]
                self.noise_key: batch.get(self.noise_key)[done],  # [E, Z]
                "return": ret.reshape(*batch.shape, -1)[done][:, 0],  # [E]
            },
            batch_size=[int(done.sum())],
        )
        self.buffer.extend(episodes)
        return episodes.batch_size[0]

    def update(self) -> dict:
        """``updates`` REINFORCE steps on minibatches from the buffer (none until it holds a minibatch)."""
        n = len(self.buffer)
        if self.optim is None or n < self.batch_size:
            return {}
        # The buffer holds a few hundred small rows: read it once, then sample indices on plain tensors
        # (uniform with replacement, as torchrl's RandomSampler) for each of the ``updates`` steps.
        stored = self.buffer[:n]
        s0, z, ret = stored.get(self.state0_key), stored.get(self.noise_key).argmax(-1), stored.get("return")  # [n, *S], [n], [n]
        for _ in range(self.updates):
            idx = torch.randint(n, (self.batch_size,), device=s0.device)  # [E]
            loss, entropy = self._loss(s0[idx], z[idx], ret[idx])
            self.optim.zero_grad(set_to_none=True)
            loss.backward()
            self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        if self.loss_module is not None:
            self.loss_module.last_loss_rl.fill_(loss.item())
        return {"loss_rl": loss.item(), "z_entropy": entropy.item()}

    def __call__(self, batch: TensorDictBase, frames: int | None = None) -> dict:
        """The ``after_batch`` hook: push the episodes that ended in ``batch``, then :meth:`update`."""
        return self.update() if self.push(batch) else {}


__all__ = ["ZPolicyTrainer"]
