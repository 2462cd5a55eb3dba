"""The learner: replay buffer, optimizer, target updates, minibatching, input validation and ε.

Built from torchrl parts: a ``TensorDictReplayBuffer`` over ``LazyTensorStorage`` (transitions, or
fixed-length sequences for recurrent agents) with a ``RandomSampler``, ``SoftUpdate`` (fused,
objectives/utils.py) / ``HardUpdate`` target updaters and the loss's ``make_value_estimator``.
Written here: the ε schedule (:class:`EpsilonSchedule`, a function of the frame count so that it is
exact and resumable, where ``EGreedyModule.step`` anneals once per call) and the chunked minibatch draw.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler
from torchrl.objectives import HardUpdate
from torchrl.objectives.utils import ValueEstimators

from torchrl_vd.keys import NEXT, REWARD, TERMINATED, TRUNCATED
from torchrl_vd.objectives.common import total_loss
from torchrl_vd.objectives.utils import FusedSoftUpdate
from torchrl_vd.train.guards import NonFiniteUpdate, describe_non_finite
from torchrl_vd.train.reward_standardisation import reward_standardiser


TEAM_REWARD = (NEXT, REWARD)  # the team reward of a stored transition [*B, 1]
NEXT_TERMINATED = (NEXT, TERMINATED)  # [*B, 1]: the TD target does not bootstrap past it
NEXT_TRUNCATED = (NEXT, TRUNCATED)  # [*B, 1]: the episode was cut by a time limit


class EpsilonSchedule:
    """ε(frames): linear from ``start`` to ``end`` over ``frames`` frames, then ``end``.

    The one owner of ε: the trainer writes ε(frames) into the collection policy's ``EGreedyModule``
    (and the async/multi collectors' workers) after every batch; the module's own annealing
    (``EGreedyModule.step``) is never called.

    Examples:
        >>> eps = EpsilonSchedule(start=1.0, end=0.05, frames=1000)
        >>> [round(eps(f), 4) for f in (0, 250, 500, 1000, 5000)]
        [1.0, 0.7625, 0.525, 0.05, 0.05]
        >>> eps(1000) == 0.05  # exactly the end value once annealed
        True
        >>> EpsilonSchedule(1.0, 0.05, frames=0)(0)  # no annealing: ε = end from the start
        0.05
    """

    def __init__(self, start: float, end: float, frames: int):
        self.start, self.end, self.frames = float(start), float(end), int(frames)

    @classmethod
    def from_config(cls, cfg) -> "EpsilonSchedule":
        return cls(cfg.eps_start, cfg.eps_end, cfg.eps_frames)

    def __call__(self, frames: int) -> float:
        if frames >= self.frames:  # also frames=0 schedules; exactly `end`, not start + 1.0 * (end - start)
            return self.end
        return self.start + frames / self.frames * (self.end - self.start)


def time_limits_as_terminal(batch: TensorDictBase) -> TensorDictBase:
    """``batch`` with ``("next", "terminated")`` set where an episode was terminated *or* truncated, so that the
    TD target does not bootstrap past a time limit (``TrainConfig.bootstrap_time_limits=False``). A shallow copy
    (every level's structure, no tensor): the collector's batch keeps the env's flags."""
    if NEXT_TRUNCATED not in batch.keys(include_nested=True):
        raise ValueError("bootstrap_time_limits=False needs the env's ('next', 'truncated') flag, which this batch "
                         "lacks: use an env that reports time limits as truncation, or bootstrap_time_limits=True.")
    batch = batch.clone(recurse=False)
    batch.set(NEXT_TERMINATED, batch.get(NEXT_TERMINATED) | batch.get(NEXT_TRUNCATED))
    return batch


class Learner:
    """Owns what the gradient steps need: buffer, optimizer, target updater, validation, update count.

    Args:
        cfg: the run's ``TrainConfig`` (lr, optimizer, grad_clip, gamma, td_lambda, target_update,
            buffer_size, batch_size, seq_len, device).
        loss: the algorithm's loss module.
        extra_modules: other trainable modules (their parameters join the optimizer).
        time_steps: time steps per collected batch (``frames_per_batch // num_envs``): recurrent
            agents store sequences of ``cfg.seq_len or time_steps`` steps.
    """

    def __init__(self, cfg, loss, extra_modules: dict | None = None, *, time_steps: int):
        self.loss = loss
        self.recurrent = bool(loss.agent_net.is_recurrent)
        self.seq_len = (cfg.seq_len or time_steps) if self.recurrent else 1
        if cfg.td_lambda is not None:
            loss.make_value_estimator(ValueEstimators.TDLambda, gamma=cfg.gamma, lmbda=cfg.td_lambda)
        else:
            loss.make_value_estimator(ValueEstimators.TD0, gamma=cfg.gamma)
        self.updater = (FusedSoftUpdate(loss, tau=cfg.target_update) if cfg.target_update < 1
                        else HardUpdate(loss, value_network_update_interval=int(cfg.target_update)))
        self.params = list(loss.parameters()) + [p for m in (extra_modules or {}).values() for p in m.parameters()]
        self.optimizer = make_optimizer(cfg, self.params)
        self.grad_clip, self.lr = float(cfg.grad_clip), float(cfg.lr)
        self.epsilon = EpsilonSchedule.from_config(cfg)  # ε(frames) of the collection policy
        self.replay_buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(max(1, cfg.buffer_size // self.seq_len), device=cfg.device),
            sampler=RandomSampler(),
            batch_size=max(1, cfg.batch_size // self.seq_len),
        )
        self.updates = 0
        self.skipped_updates = 0  # minibatches dropped for a non-finite loss or gradient (on_non_finite="skip")
        self.on_non_finite = cfg.on_non_finite
        self.reward_stats = reward_standardiser(cfg, self.stat_lead(), loss.agent_net.n_agents)
        self.reward_scale = float(cfg.reward_scale)
        self.bootstrap_time_limits = bool(cfg.bootstrap_time_limits)

    def stat_lead(self) -> tuple[int, ...]:
        """Leading dimensions of a minibatch that keep their own reward statistics (none for one run)."""
        return ()

    def add(self, batch: TensorDictBase) -> None:
        """Store a collected batch ``[1, num_envs, T]`` (one seed), validating each transition once as it enters
        (when the loss checks its inputs), so that the minibatches drawn from it need no check."""
        stored = _to_storage(self.storable(batch.squeeze(0)), self.recurrent, self.seq_len)  # [1, E, T] -> [E, T] -> ...
        if self.loss.check_inputs:
            self.loss.read_batch(stored)
        self.replay_buffer.extend(stored)

    def storable(self, batch: TensorDictBase) -> TensorDictBase:
        """What of a collected batch the buffer keeps: time limits made terminal when asked
        (``bootstrap_time_limits=False``), and without the recurrent agents' *next* hidden state
        ``("next", group, "rnn_hidden")``, which no loss reads (they unroll from the stored state at each
        sequence start): half the buffer and checkpoint of a GRU run (a 5000-episode MPE buffer with GRU 256:
        889 MB before)."""
        if not self.bootstrap_time_limits:
            batch = time_limits_as_terminal(batch)
        if self.recurrent:
            batch = batch.exclude(self.next_hidden_key)
        return batch

    @property
    def next_hidden_key(self) -> tuple:
        return (NEXT, *_as_tuple(self.loss.tensor_keys.rnn_hidden))

    def update(self, n: int) -> list[torch.Tensor]:
        """``n`` gradient steps on uniform minibatches; returns the detached losses.

        Every step is guarded: a non-finite loss or gradient (one fused check of the loss and the gradient norm
        the clipping computes anyway) is never applied. With ``on_non_finite="stop"`` it raises
        :class:`~torchrl_vd.train.guards.NonFiniteUpdate` naming the step and the quantity; with ``"skip"`` the
        minibatch is dropped and counted in :attr:`skipped_updates` (many seeds: the step is dropped for all).
        """
        losses = []
        with _validated_inputs(self.loss):  # every stored transition was validated by add()
            for sample in self.minibatches(n):
                loss = self.objective(self.prepare(sample))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward(torch.ones_like(loss))  # (many seeds: [N] losses, each reaching only its own slice)
                norm = self.clip_grads() if self.grad_clip else self.grad_norms()  # [N] or [] before clipping
                if not bool(torch.isfinite(loss).all() & torch.isfinite(norm).all()):
                    if self.on_non_finite == "stop":
                        raise NonFiniteUpdate(describe_non_finite(self, loss.detach(), norm, sample))
                    self.optimizer.zero_grad(set_to_none=True)
                    self.skipped_updates += 1
                    continue
                self.step()
                self.updates += 1
                losses.append(loss.detach())
        return losses

    def prepare(self, sample: TensorDictBase) -> TensorDictBase:
        """A minibatch as the loss learns from it: its rewards scaled / standardised (:meth:`learning_rewards`)."""
        if self.reward_stats is not None or self.reward_scale != 1.0:
            return self.learning_rewards(sample)
        return sample

    def step(self) -> None:
        """Apply the clipped gradients: the optimizer's step, then the target networks' update."""
        self.optimizer.step()
        self.updater.step()

    def learning_rewards(self, sample: TensorDictBase) -> TensorDictBase:
        """``sample`` with the team reward the loss learns from: times ``reward_scale``, then standardised
        (``standardise_rewards``: running or per-minibatch statistics). A new entry in a shallow copy: the buffer
        keeps the env's rewards."""
        reward = sample.get(TEAM_REWARD) * self.reward_scale
        if self.reward_stats is not None:
            reward = self.reward_stats(reward)
        sample = sample.clone(recurse=False)
        sample.set(TEAM_REWARD, reward)
        return sample

    def minibatches(self, n: int):
        """``n`` uniform minibatches from the replay buffer."""
        return _minibatches(self.replay_buffer, n)

    def objective(self, sample: TensorDictBase) -> torch.Tensor:
        """The loss to minimise on ``sample``: the sum of its ``loss*`` terms (torchrl's convention)."""
        return total_loss(self.loss(sample))

    def clip_grads(self) -> torch.Tensor:
        """Clip the global gradient norm at ``grad_clip``; returns the norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)

    def grad_norms(self) -> torch.Tensor:
        """The global gradient norm (no clipping)."""
        return torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Networks (online and target), optimizer, the filled part of the buffer, counters."""
        return {
            "loss_module": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay_buffer": _buffer_state(self.replay_buffer),
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
            "updater_counter": getattr(self.updater, "counter", None),
            "reward_stats": None if self.reward_stats is None else self.reward_stats.state_dict(),
        }

    def seed_state_dict(self, k: int) -> dict:
        """Seed ``k``'s part of :meth:`state_dict` in a single run's format: for one seed, all of it."""
        return self.state_dict()

    def load_seed_states(self, states: list[dict]) -> None:
        """Restore from every seed's single-run learner state (:func:`~torchrl_vd.train.checkpoint.learner_state`)."""
        self.load_state_dict(states[0])

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # lr may change on resume (train/resume.py)
            group["lr"] = self.lr
        if state["replay_buffer"] is not None:
            drop = self.next_hidden_key if self.recurrent else None  # buffers saved before it was dropped
            _restore_buffer(self.replay_buffer, state["replay_buffer"], drop)
        self.updates = int(state["updates"])
        self.skipped_updates = int(state.get("skipped_updates", 0))
        if state["updater_counter"] is not None:
            self.updater.counter = state["updater_counter"]
        if self.reward_stats is not None and state.get("reward_stats") is not None:
            self.reward_stats.load_state_dict(state["reward_stats"])


# ---------------------------------------------------------------------------------------------- many seeds
def seed_grad_norms(params: list[torch.Tensor]) -> torch.Tensor:
    """Each seed's global gradient norm over its slice of every stacked gradient ``[N, ...]``: ``[N]``."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()  # [N]


def clip_grad_norm_per_seed_(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for each seed of stacked parameters ``[N, ...]``: seed k's global norm
    is taken over its slice of every gradient, and only its slice is scaled. Returns the norms ``[N]``."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = seed_grad_norms(params)  # [N]
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # [N], clip_grad_norm_'s formula
    torch._foreach_mul_(grads, [coef.reshape(-1, *[1] * (g.ndim - 1)) for g in grads])  # [N, 1, ...] each
    return norms


class StackedSeeds:
    """What every learner of N stacked seeds (train/population.py ``SeedStack`` at ``self.stack``) does alike: the
    vmapped loss ``[N]``, each seed's own gradient-norm clip and reward statistics, and a seed's state in a lone
    run's format. Mixed in before the learner it stacks (:class:`SeedLearner`, PQN's ``PQNSeedLearner``)."""

    stack: Any

    def stat_lead(self) -> tuple[int, ...]:
        return (self.stack.n,)  # each seed standardises its rewards by its own statistics

    def objective(self, sample: TensorDictBase) -> torch.Tensor:
        return self.stack.loss(sample)  # [N]

    def clip_grads(self) -> torch.Tensor:
        return clip_grad_norm_per_seed_(self.params, self.grad_clip)

    def grad_norms(self) -> torch.Tensor:
        return seed_grad_norms(self.params)

    def seed_state(self, k: int, buffer: dict | None) -> dict:
        """Seed ``k``'s learner state in a lone run's format, with ``buffer`` (its part of the stored data)."""
        return {
            "loss_module": self.stack.seed_state_dict(k),
            "optimizer": seed_optimizer_state(self.optimizer.state_dict(), k),
            "replay_buffer": buffer,
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
            "updater_counter": getattr(self.updater, "counter", None),
            "reward_stats": None if self.reward_stats is None else self.reward_stats.seed_state_dict(k),
        }


class SeedLearner(StackedSeeds, Learner):
    """The :class:`Learner` of N stacked seeds (train/population.py ``SeedStack``): the same buffer, optimizer and
    target updater (built on the template's stacked parameters), with each seed's transitions in its own column
    of the buffer (``[capacity, N]``), per-seed minibatches, the vmapped loss and per-seed clipping.

    Independence: every seed draws its own uniform indices (with replacement) into its own column; the summed
    loss Σ_k L_k gives each seed's slice exactly ∇L_k; the global grad-norm clip is taken per seed, over that
    seed's slice of every parameter; Adam/RMSprop and the Polyak / hard target updates are elementwise, so one
    optimizer / updater over stacked tensors equals N independent ones."""

    def __init__(self, cfg, stack, *, time_steps: int):  # stack: population.SeedStack
        self.stack = stack
        super().__init__(cfg, stack.template, time_steps=time_steps)

    def add(self, batch: TensorDictBase) -> None:
        """Store a collected batch ``[N, num_envs, T]`` as ``[num_envs*T, N]`` (sequences ``[num_envs*T/L, N, L]``)."""
        batch = self.storable(batch)
        stored = torch.stack([_to_storage(batch[k], self.recurrent, self.seq_len) for k in range(self.stack.n)],
                             dim=1)  # [M, N(, L)]
        if self.loss.check_inputs:
            self.loss.read_batch(stored.reshape(-1, *stored.shape[2:]))  # [M*N(, L)]
        self.replay_buffer.extend(stored)

    def minibatches(self, n: int, chunk: int = 32):
        """``n`` minibatches ``[N, B(, L)]``, every seed with its own uniform draw (with replacement) of its own
        transitions, ``chunk`` draws per gather as in :func:`_minibatches`.

        Hand-written: torchrl's samplers draw one index vector per call (N calls per minibatch); one
        ``randint [N, chunk*B]`` + one gather is the same per-seed uniform sampling."""
        data = self.replay_buffer.storage._storage  # [capacity, N(, L)]
        size, b = len(self.replay_buffer), self.replay_buffer.batch_size
        seeds = torch.arange(self.stack.n, device=data.device).unsqueeze(1)  # [N, 1]
        while n > 0:
            k = min(n, chunk)
            idx = torch.randint(size, (self.stack.n, k * b), device=data.device)  # [N, k*B]
            yield from data[idx, seeds].split(b, dim=1)  # k x [N, B(, L)]
            n -= k

    def seed_state_dict(self, k: int) -> dict:
        """Seed ``k``'s part of :meth:`state_dict`, in a single run's format (its own checkpoint)."""
        n = len(self.replay_buffer)
        return self.seed_state(k, {"data": self.replay_buffer.storage._storage[:n, k].clone() if n else None,
                                   "writer": self.replay_buffer._writer.state_dict()})

    def load_seed_states(self, states: list[dict]) -> None:
        """Restore from N single-run learner states (:func:`~torchrl_vd.train.checkpoint.learner_state`)."""
        data = [s["replay_buffer"]["data"] for s in states]
        self.load_state_dict({
            "optimizer": stack_optimizer_states([s["optimizer"] for s in states]),
            "replay_buffer": {"data": None if data[0] is None else torch.stack(data, dim=1),  # [M, N(, L)]
                              "writer": states[0]["replay_buffer"]["writer"]},
            "updates": states[0]["updates"],
            "skipped_updates": states[0].get("skipped_updates", 0),
            "updater_counter": states[0]["updater_counter"],
            "reward_stats": None if states[0].get("reward_stats") is None or self.reward_stats is None
            else type(self.reward_stats).stack_states([s["reward_stats"] for s in states]),
        })


def seed_optimizer_state(opt: dict, k: int) -> dict:
    """Seed ``k``'s slice of an optimizer state over stacked parameters ``[N, ...]``, in a single run's format (0-dim
    entries, the step counts, are shared)."""
    return {**opt, "state": {i: {name: v[k].clone() if v.ndim else v.clone() for name, v in s.items()}
                             for i, s in opt["state"].items()}}


def stack_optimizer_states(opts: list[dict]) -> dict:
    """N single runs' optimizer states as one over stacked parameters (the inverse of :func:`seed_optimizer_state`)."""
    state = {i: {name: torch.stack([o["state"][i][name] for o in opts]) if v.ndim else v
                 for name, v in s.items()} for i, s in opts[0]["state"].items()}
    return {**opts[0], "state": state}


@contextlib.contextmanager
def _validated_inputs(loss):
    """The loss skips its input checks inside (the learner validated the data on the way in)."""
    before = loss.check_inputs
    loss.check_inputs = False
    try:
        yield
    finally:
        loss.check_inputs = before


def _minibatches(rb: TensorDictReplayBuffer, n: int, chunk: int = 32):
    """``n`` minibatches of ``rb.batch_size``, drawn ``chunk`` at a time with one storage gather each.

    With uniform sampling (``RandomSampler``: i.i.d. indices with replacement) and no writes in between,
    ``chunk`` draws of B have the same distribution as one draw of ``chunk * B`` split in ``chunk``; one
    gather replaces ``chunk`` calls through the buffer's sampler/storage/TensorDict indexing machinery
    (benchmarks/RESULTS.md §2).
    """
    while n > 0:
        k = min(n, chunk)
        with warnings.catch_warnings():  # sample(batch_size=) differs from the constructor's on purpose
            warnings.filterwarnings("ignore", message="Got conflicting batch_sizes")
            big = rb.sample(batch_size=k * rb.batch_size)
        yield from big.split(rb.batch_size)
        n -= k


def _to_storage(batch: TensorDictBase, recurrent: bool, seq_len: int) -> TensorDictBase:
    """Transitions ``[num_envs*T]`` for feed-forward agents; sequences ``[num_envs*T/L, L]`` for recurrent ones."""
    if not recurrent:
        return batch.reshape(-1)  # [num_envs, T] -> [num_envs * T]
    n, T = batch.shape
    return batch.reshape(n, T // seq_len, seq_len).reshape(-1, seq_len)  # [num_envs * T/L, L]


def _buffer_state(rb: TensorDictReplayBuffer) -> dict | None:
    """The filled part of the replay buffer (its preallocated storage would save mostly zeros) + writer state."""
    n = len(rb)
    return {"data": rb.storage[:n].clone() if n else None, "writer": rb._writer.state_dict()}


def _as_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _restore_buffer(rb: TensorDictReplayBuffer, state: dict, drop: tuple | None = None) -> None:
    """Refill ``rb`` in index order, then restore the write cursor (a full buffer may have wrapped around).
    ``drop``: an entry that buffers written before it was dropped still hold (removed so that new batches fit)."""
    if state["data"] is not None:
        rb.extend(state["data"] if drop is None else state["data"].exclude(drop))
    rb._writer.load_state_dict(state["writer"])


def make_optimizer(cfg, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, at ``cfg.lr`` with ε ``cfg.optimizer_eps`` (None: its default).

    * ``adam``: fused (one kernel over all tensors instead of a Python loop per tensor; benchmarks/RESULTS.md §2),
      ε 1e-8;
    * ``rmsprop``: pymarl's α 0.99, ε 1e-5, foreach;
    * ``radam``: ``torch.optim.RAdam`` (β 0.9, 0.999, ε 1e-8, no weight decay), PQN's optimizer (JaxMARL's
      ``optax.radam`` with its defaults). The two compute the same rectified step but for two details:
      optax takes the rectified step where ρ_t ≥ 5 (``threshold=5.0``) and torch where ρ_t > 5 (ρ_t is never
      exactly 5 with β₂ = 0.999: it passes 5 between steps 5 and 6 in both); optax divides the bias-corrected
      moments, m̂ / (sqrt(v̂) + ε), torch computes m̂ · sqrt(1 − β₂^t) / (sqrt(v) + ε), i.e. its ε is optax's ε ×
      sqrt(1 − β₂^t) (equal steps up to a relative 1e-8 / sqrt(v̂): tests/test_pqn.py).
    """
    eps = cfg.optimizer_eps
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=1e-8 if eps is None else eps, fused=_fused_ok(params))
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(params, lr=cfg.lr, eps=1e-8 if eps is None else eps, foreach=True)
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.99, eps=1e-5 if eps is None else eps, foreach=True)


def _fused_ok(params) -> bool:
    """torch's fused Adam runs on CPU and CUDA floating-point tensors (torch >= 2.4)."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


__all__ = ["EpsilonSchedule", "Learner", "SeedLearner", "StackedSeeds", "clip_grad_norm_per_seed_", "make_optimizer",
           "seed_grad_norms", "seed_optimizer_state", "stack_optimizer_states", "time_limits_as_terminal"]
