"""PQN's learner: each rollout trained on for K epochs × M minibatches, then dropped; RAdam, a global-norm clip,
a linearly decaying LR and ε annealed per update (Gallici et al. 2025; FLAIROx/JaxMARL
``baselines/QLearning/pqn_vdn_ff.py`` and ``pqn_vdn_rnn.py``, ``_update_step``).

The same training loop drives it as every other algorithm (train/loop.py): a rollout of T steps from each of
``num_envs`` envs is one collected batch (``frames_per_batch = num_envs × T``), :meth:`PQNLearner.add` takes it,
:meth:`PQNLearner.update` runs the gradient steps, ε comes from :attr:`PQNLearner.epsilon`. What it holds between
rollouts is small: nothing for the feed-forward variant, the last ``memory_window`` steps for the recurrent one.

* **feed-forward** (``pqn_vdn_ff``): the λ-returns of the whole rollout are computed once, as it arrives, from the
  network as it acted (BatchNorm on its running averages: JaxMARL's rollout-time Q-values), then every epoch
  shuffles the rollout's (step, env) pairs into M minibatches that train against those fixed returns;
* **recurrent** (``pqn_vdn_rnn``): the window = the previous rollout's last ``memory_window`` steps + the new
  rollout; every epoch shuffles the envs into M minibatches of whole windows, and each gradient step unrolls the
  GRU over its windows from the hidden state stored at their first step and recomputes the returns from that
  forward (the last step only bootstraps). JaxMARL fills its first window with ``memory_window + T`` uniform random
  steps it does not count as frames (their actions ignore the action masks, their rewards are not scaled); here the
  first update trains on the first rollout alone.

Where it differs from JaxMARL, each on purpose: the first window (above); the observations are the env's own
(JaxMARL's ``CTRolloutManager`` zeroes every done agent's observation, agent id included: the first observation
of each episode after an auto-reset and a dead SMAX agent's; here dead agents count through the ``alive`` mask,
zero in Σ_i Q_i and in V); the GRU resets at episode starts (``is_init``) rather than per agent at its own done;
torch's GRU has two hidden biases flax's lacks (zero at start); torch's RAdam and gradient clip differ from
optax's in where their ε sit (train/learner.py ``make_optimizer``); BatchNorm statistics skip masked steps (none in
a rollout); with ``bootstrap_time_limits=True`` (not JaxMARL's: it ends returns at time limits) the value of a
time limit's last observation comes from one more step on BatchNorm's running averages (objectives/pqn.py).

Rewards are scaled (``reward_scale``, JaxMARL's ``REW_SCALE``) and standardised (``standardise_rewards``) once per
rollout, as it arrives: JaxMARL stores ``REW_SCALE * reward`` in its transitions. Many seeds in one process
(:class:`PQNSeedLearner`): each seed shuffles its own rollout, the loss runs under ``torch.vmap``, the clip is per
seed and RAdam is elementwise, as for the replay learners (train/learner.py ``SeedLearner``).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.objectives.utils import ValueEstimators

from torchrl_vd.train.learner import Learner, StackedSeeds, make_optimizer, stack_optimizer_states
from torchrl_vd.train.reward_standardisation import reward_standardiser

LR_END = 1e-10
"""The LR at the end of JaxMARL's linear decay (``optax.linear_schedule(LR, 1e-10, ...)``)."""


def linear_schedule(start: float, end: float, steps: float, count: int) -> float:
    """``optax.linear_schedule(start, end, steps)(count)``: linear over ``steps`` counts, then ``end``; ``steps <= 0``:
    ``start`` throughout (optax's rule).

    Examples:
        >>> [round(linear_schedule(1.0, 0.01, 61.0, u), 6) for u in (0, 30, 61, 100)]
        [1.0, 0.513115, 0.01, 0.01]
    """
    if steps <= 0:
        return float(start)
    frac = 1.0 - min(max(count, 0), steps) / steps
    return (start - end) * frac + end


class PQNSchedule:
    """ε and the LR of a PQN run as functions of its counters (so that a resumed run continues them exactly).

    * ε(frames) = linear from ``eps_start`` to ``eps_end`` over ``eps_decay × U`` updates, U = ⌈``frames /
      frames_per_batch``⌉ the rollouts the run collects (JaxMARL's NUM_UPDATES, which floors TOTAL_TIMESTEPS /
      rollout and collects that many), at u = frames // frames_per_batch updates done: held for a whole rollout, as
      JaxMARL evaluates it at ``n_updates``;
    * LR(k), k = gradient steps applied: linear from ``lr`` to 1e-10 over K × M × U steps with ``lr_linear_decay``
      (``optax.linear_schedule`` counts the optimizer's updates), else ``lr``.

    Both read U off ``frames``: a run resumed with more ``frames`` continues them on the longer run's scale.
    """

    def __init__(self, cfg, opts):
        self.frames_per_batch = int(cfg.frames_per_batch)
        self.num_updates = -(-int(cfg.frames) // self.frames_per_batch)  # the rollouts the run collects
        self.eps_start, self.eps_end = float(cfg.eps_start), float(cfg.eps_end)
        self.eps_steps = float(opts.eps_decay) * self.num_updates
        self.lr0, self.decay = float(cfg.lr), bool(opts.lr_linear_decay)
        self.grad_steps = int(opts.num_epochs) * int(opts.num_minibatches) * self.num_updates

    def epsilon(self, frames: int) -> float:
        return linear_schedule(self.eps_start, self.eps_end, self.eps_steps, int(frames) // self.frames_per_batch)

    def lr(self, step: int) -> float:
        return linear_schedule(self.lr0, LR_END, self.grad_steps, step) if self.decay else self.lr0


class _NoTargets:
    """PQN has no target network: nothing to update after a step."""

    counter = None

    def step(self) -> None:
        pass


class PQNLearner(Learner):
    """The learner of one PQN run (see the module docstring).

    Args:
        cfg: the run's ``TrainConfig`` (its ``loss_kwargs``: :class:`~torchrl_vd.train.algo_options.PQNOptions`).
        loss: a :class:`~torchrl_vd.objectives.pqn.PQNVDNLoss`.
        extra_modules: other trainable modules (their parameters join the optimizer).
        time_steps: T, the steps per env of each rollout.
    """

    def __init__(self, cfg, loss, extra_modules: dict | None = None, *, time_steps: int):
        from torchrl_vd.train.algo_options import PQNOptions
        from torchrl_vd.train.options import build_options

        opts = build_options(PQNOptions, cfg.loss_kwargs, "pqn-vdn loss")
        self.loss = loss
        self.recurrent = bool(loss.agent_net.is_recurrent)
        self.seq_len = int(time_steps)
        if cfg.td_lambda is not None:
            loss.make_value_estimator(ValueEstimators.TDLambda, gamma=cfg.gamma, lmbda=cfg.td_lambda)
        else:
            loss.make_value_estimator(ValueEstimators.TD0, gamma=cfg.gamma)
        self.params = list(loss.parameters()) + [p for m in (extra_modules or {}).values() for p in m.parameters()]
        self.optimizer = make_optimizer(cfg, self.params)
        self.grad_clip, self.lr = float(cfg.grad_clip), float(cfg.lr)
        self.schedule = PQNSchedule(cfg, opts)
        self.epsilon = self.schedule.epsilon
        self.epochs, self.num_minibatches = int(opts.num_epochs), int(opts.num_minibatches)
        self.memory_window = int(opts.memory_window) if self.recurrent else 0
        self.updater = _NoTargets()
        self.updates = 0
        self.skipped_updates = 0
        self.on_non_finite = cfg.on_non_finite
        self.reward_stats = reward_standardiser(cfg, self.stat_lead(), loss.agent_net.n_agents)
        self.reward_scale = float(cfg.reward_scale)
        self.bootstrap_time_limits = bool(cfg.bootstrap_time_limits)
        self.data: TensorDictBase | None = None  # what the next update trains on: [(N,) E, T(+window)]
        self.window: TensorDictBase | None = None  # the recurrent variant's last memory_window steps

    # ------------------------------------------------------------------ data
    def add(self, batch: TensorDictBase) -> None:
        """Take a rollout ``[1, num_envs, T]``: its learning rewards, validation, the feed-forward variant's returns,
        the recurrent variant's window."""
        self.data = self._arrive(self.storable(batch.squeeze(0)), time=1)  # [E, T(+window)]

    def _arrive(self, data: TensorDictBase, time: int) -> TensorDictBase:
        """The training data of a rollout ``data`` (``time``: its time dimension)."""
        if self.reward_stats is not None or self.reward_scale != 1.0:
            data = self.learning_rewards(data)
        if self.loss.check_inputs:
            self.loss.read_batch(data.reshape(-1, data.shape[-1]))
        if not self.recurrent:
            return self.with_targets(data)
        if self.window is not None:
            data = torch.cat((self.window, data), dim=time)  # JaxMARL: concat(memory[NUM_STEPS:], rollout)
        if self.memory_window:
            self.window = data.narrow(time, data.shape[time] - min(self.memory_window, data.shape[time]),
                                      min(self.memory_window, data.shape[time])).clone()
        return data

    def with_targets(self, data: TensorDictBase) -> TensorDictBase:
        """``data`` with the λ-returns of the network as it is now at ``value_target``."""
        before = self.loss.check_inputs
        self.loss.check_inputs = False  # validated just before
        try:
            return self.loss.value_targets(data.clone(False))
        finally:
            self.loss.check_inputs = before

    def minibatches(self, n: int | None = None):
        """K epochs × M minibatches of the current data (``n`` is not read: the schedule is PQN's own). Recurrent:
        the envs shuffled and cut in M parts of whole windows [E/M, L]; feed-forward: the (step, env) pairs
        [E·T/M]. One ``rand(1, ·).argsort`` per epoch, as many seeds draw theirs (``[N, ·]``)."""
        data = self.data if self.recurrent else self.data.reshape(-1)  # [E, L] or [E*T]
        size = data.shape[0] // self.num_minibatches
        for _ in range(self.epochs):
            perm = torch.rand(1, data.shape[0], device=data.device).argsort(-1)[0]  # [E] or [E*T]
            yield from (data[idx] for idx in perm.split(size))

    def update(self, n: int | None = None) -> list[torch.Tensor]:
        """K × M gradient steps on the latest rollout (``n``, the replay learners' count, is not read)."""
        if self.data is None:
            return []
        return super().update(self.epochs * self.num_minibatches)

    def prepare(self, sample: TensorDictBase) -> TensorDictBase:
        return sample  # the rewards were made learning rewards once, as the rollout arrived

    def step(self) -> None:
        """The LR of this step (:class:`PQNSchedule`), then RAdam's step."""
        lr = self.schedule.lr(self.updates)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Networks, optimizer (RAdam's moments and step count), the recurrent window (as the checkpoint's
        ``replay_buffer``), counters (the LR schedule's), reward statistics."""
        return {
            "loss_module": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay_buffer": None if self.window is None else {"data": self.window.clone(), "writer": None},
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
            "updater_counter": None,
            "reward_stats": None if self.reward_stats is None else self.reward_stats.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        buffer = state.get("replay_buffer")
        self.window = None if buffer is None or buffer["data"] is None else buffer["data"]
        self.updates = int(state["updates"])
        self.skipped_updates = int(state.get("skipped_updates", 0))
        if self.reward_stats is not None and state.get("reward_stats") is not None:
            self.reward_stats.load_state_dict(state["reward_stats"])


class PQNSeedLearner(StackedSeeds, PQNLearner):
    """:class:`PQNLearner` for N stacked seeds (train/population.py ``SeedStack``): data ``[N, E, T]``, each seed's
    own shuffles and returns; the vmapped loss, the clip per seed and checkpoints per seed in a lone run's format
    (:class:`~torchrl_vd.train.learner.StackedSeeds`)."""

    def __init__(self, cfg, stack, *, time_steps: int):
        self.stack = stack
        super().__init__(cfg, stack.template, time_steps=time_steps)

    def add(self, batch: TensorDictBase) -> None:
        self.data = self._arrive(self.storable(batch), time=2)  # [N, E, T(+window)]

    def with_targets(self, data: TensorDictBase) -> TensorDictBase:
        key = self.loss.tensor_keys.value_target
        data = data.clone(False)
        data.set(key, self.stack.map("value_targets", key, data))  # [N, E, T, 1]
        return data

    def minibatches(self, n: int | None = None):
        data = self.data if self.recurrent else self.data.reshape(self.stack.n, -1)  # [N, E, L] or [N, E*T]
        size = data.shape[1] // self.num_minibatches
        seeds = torch.arange(self.stack.n, device=data.device).unsqueeze(1)  # [N, 1]
        for _ in range(self.epochs):
            perm = torch.rand(self.stack.n, data.shape[1], device=data.device).argsort(-1)  # [N, E] or [N, E*T]
            yield from (data[seeds, idx] for idx in perm.split(size, dim=1))  # [N, b(, L)]

    def seed_state_dict(self, k: int) -> dict:
        return self.seed_state(k, None if self.window is None else {"data": self.window[k].clone(), "writer": None})

    def load_seed_states(self, states: list[dict]) -> None:
        windows = [s["replay_buffer"]["data"] if s.get("replay_buffer") else None for s in states]
        self.load_state_dict({
            "optimizer": stack_optimizer_states([s["optimizer"] for s in states]),
            "replay_buffer": None if windows[0] is None else {"data": torch.stack(windows), "writer": None},
            "updates": states[0]["updates"],
            "skipped_updates": states[0].get("skipped_updates", 0),
            "reward_stats": None if states[0].get("reward_stats") is None or self.reward_stats is None
            else type(self.reward_stats).stack_states([s["reward_stats"] for s in states]),
        })


def make_pqn_learner(cfg, loss, extra_modules: dict, *, time_steps: int, stack=None) -> PQNLearner:
    """The algorithm table's learner factory for ``pqn-vdn`` (``AlgoSpec.learner``)."""
    if stack is None:
        return PQNLearner(cfg, loss, extra_modules, time_steps=time_steps)
    return PQNSeedLearner(cfg, stack, time_steps=time_steps)


__all__ = ["LR_END", "PQNLearner", "PQNSchedule", "PQNSeedLearner", "linear_schedule", "make_pqn_learner"]
