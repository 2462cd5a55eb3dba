"""The shared base of every value-decomposition loss: the torchrl ``LossModule`` contract, as ``QMixerLoss`` has it.

One forward order for all losses: read + validate the batch → online utilities → gather chosen → centralized value
→ target (no grad) → td_error (priority) → masked, weighted reduction. Subclasses implement
:meth:`ValueDecompositionLoss._losses` on an already validated :class:`~torchrl_vd.objectives.batch.Batch` and reuse
the helpers below, so double Q, the TD target, the masked reduction and the value estimator are written once.
Reading and checking the batch lives in batch.py, the networks' registration in networks.py, the TD targets in
returns.py.

What torchrl code reads of a loss is here under torchrl's names, so that ``MixingQLoss`` is a drop-in for
``QMixerLoss`` (TorchRL's own tests and ``DQNTrainer``; docs/COMING_FROM_TORCHRL.md): ``local_value_network`` (the
user's Q-value policy, or one built around a bare network) and its ``local_value_network_params`` /
``target_local_value_network_params``, ``tensor_keys`` with QMixerLoss's key names, a torchrl value estimator
(TD0, TD1, TDLambda) at ``value_estimator``, ``in_keys`` / ``out_keys``, keyword calls (``@dispatch``),
``reset_parameters_recursive``, the ``("collector", "mask")`` of torchrl's samplers and collectors, outputs named
``loss_*`` whose sum is the objective. What stays ours, on purpose: double Q (default), masks of padded sequences,
dead agents and burn-in, priority weights, ``|TD error|`` as the priority.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase, dispatch
from tensordict.utils import NestedKey
from torch import nn
from torchrl.objectives.common import LossModule
from torchrl.objectives.utils import (
    _GAMMA_LMBDA_DEPREC_ERROR,
    ValueEstimators,
    default_value_kwargs,
    dispatch_value_estimator,
)
from torchrl.objectives.value import ValueEstimatorBase

from torchrl_vd.keys import ACTION, ACTION_MASK, ACTION_VALUE, ALIVE, CHOSEN_ACTION_VALUE, DONE, GROUP, IS_INIT
from torchrl_vd.keys import OBSERVATION, REWARD, RNN_HIDDEN, STATE, TERMINATED
from torchrl_vd.modules.agents import AgentNet
from torchrl_vd.modules.interop import as_agent_net, spec_n_actions
from torchrl_vd.modules.policies import make_agent_policies
from torchrl_vd.objectives.batch import (
    Batch,
    _next,
    read_eval_batch,
    read_train_batch,
    team_flag_of,
    team_reward_of,
    validate_batch,
)
from torchrl_vd.objectives.networks import NetworkRegistry
from torchrl_vd.objectives.returns import SUPPORTED, kind_of, td_target

AGENT_REDUCTIONS = ("sum", "mean")
PER_AGENT_KEYS = ("observation", "action", "action_mask", "alive", "rnn_hidden", "action_value", "local_value")


def total_loss(out: TensorDictBase) -> torch.Tensor:
    """The objective of a loss's output: the sum of its ``loss*`` entries (torchrl's convention, as its trainers
    sum them)."""
    return sum(value for key, value in out.items() if key.startswith("loss"))


def _agent_of(module: nn.Module, *, n_agents: int | None) -> AgentNet:
    return as_agent_net(module, n_agents=n_agents)[0]


class ValueDecompositionLoss(NetworkRegistry, LossModule):
    """Base class: a torchrl ``LossModule`` over per-agent utilities and a centralized value.

    Args:
        local_value_network: the per-agent utility network (``agent_net`` in this library's words): a TorchRL
            Q-value policy (``TensorDictSequential(TensorDictModule(net), QValueModule)``, ``SafeSequential``,
            ``QValueActor``), whose network is used and whose observation, action and action-mask keys the loss
            adopts; an :class:`AgentNet`; or a feed-forward ``nn.Module`` ``[*B, n, F] -> [*B, n, A]`` such as
            torchrl's ``MultiAgentMLP`` (:func:`~torchrl_vd.modules.interop.as_agent_net`). It is registered as
            ``local_value_network`` (a bare network wrapped in a greedy policy), its parameters as
            ``local_value_network_params``.

    Keyword Args:
        n_agents: the number of agents when the network does not say (a shared ``nn.Linear``); the mixer's.
        double_q: select a*_{t+1} with the online agents, evaluate it with the target networks (van Hasselt et
            al. 2016; pymarl's default). ``QMixerLoss`` has none: ``double_q=False`` computes its target.
        loss_function: ``"l2"`` (the squared TD error of VDN and QMIX), ``"smooth_l1"`` or ``"l1"``.
        reward_reduction: how a *per-agent* reward ``[*B, n, 1]`` read at ``("next", reward)`` becomes the team
            reward r: ``"sum"`` (r = Σ_i r_i) or ``"mean"`` (torchrl's QMIX example's ``.mean(-2)``). ``None``
            (default): a per-agent reward is an error naming these fixes. Per-agent done / terminated flags
            ``[*B, n, 1]`` are reduced with *all* (the team's episode ends when every agent's has).
        burn_in: for sequence batches [B, T]: the first ``burn_in`` steps only warm the recurrent hidden state and
            are excluded from the loss (R2D2, Kapturowski et al. 2019).
        check_inputs: validate actions against masks and reject NaN/inf rewards and observations.
        delay_value: keep separate target networks θ̄ (DQN's; required by the TD targets of every paper here).
        action_space: as ``QMixerLoss`` takes it: ``"categorical"``, ``"one-hot"`` or an action spec whose ``|A|`` must
            match the network. Stored actions are read either way.
        gamma: refused as torchrl refuses it (set γ with ``make_value_estimator``).
        priority_key: refused as torchrl refuses it (``set_keys(priority=...)``).
    """

    @dataclass
    class _AcceptedKeys:
        """Tensordict entries read and written (remap with ``set_keys``; ``use_group`` moves the per-agent ones).

        Attributes:
            observation: per-agent observations ``[*B, n, F]``. Default ``("agents", "observation")``.
            action: taken actions ``[*B, n]`` (or one-hot ``[*B, n, A]``). Default ``("agents", "action")``.
            action_mask: legal actions ``[*B, n, A]``, optional. Default ``("agents", "action_mask")``.
            alive: per-agent activity flags ``[*B, n]``, optional. Default ``("agents", "alive")``.
            rnn_hidden: recurrent agents' hidden state. Default ``("agents", "rnn_hidden")``.
            action_value: the agents' utilities Q(h_i, ·), as the policy writes them (QMixerLoss's name; computed
                here on tensors, not read). Default ``("agents", "action_value")``.
            local_value: Q(h_i, a_i) (QMixerLoss's name; not read). Default ``("agents", "chosen_action_value")``.
            global_value: Q_tot, what a mixer module writes (QMixerLoss's name; the value estimator's ``value``).
                Default ``"chosen_action_value"``.
            state: centralized information z. Default ``"state"``.
            reward: team reward under ``"next"`` ``[*B, 1]``. Default ``"reward"``.
            done / terminated: under ``"next"`` ``[*B, 1]``. Defaults ``"done"`` / ``"terminated"``.
            is_init: episode-start flags (torchrl ``InitTracker``). Default ``"is_init"``.
            mask: valid-step mask of padded sequence batches ``[*B]`` (with ``loss_mask_key``'s torchrl masks, by
                default ``("collector", "mask")``). Default ``"mask"``.
            steps_to_next_obs: torchrl's ``MultiStep`` step counts k (γ^k). Default ``"steps_to_next_obs"``.
            advantage / value_target: the value estimator's outputs (QMixerLoss's names; not written here).
                Defaults ``"advantage"`` / ``"value_target"``.
            priority: written: per-sample ``|TD error|`` for prioritized replay. Default ``"td_error"``.
            priority_weight: importance weights from a prioritized sampler. Default ``"priority_weight"``.
        """

        observation: NestedKey = (GROUP, OBSERVATION)
        action: NestedKey = (GROUP, ACTION)
        action_mask: NestedKey = (GROUP, ACTION_MASK)
        alive: NestedKey = (GROUP, ALIVE)
        rnn_hidden: NestedKey = (GROUP, RNN_HIDDEN)
        action_value: NestedKey = (GROUP, ACTION_VALUE)
        local_value: NestedKey = (GROUP, CHOSEN_ACTION_VALUE)
        global_value: NestedKey = CHOSEN_ACTION_VALUE
        state: NestedKey = STATE
        reward: NestedKey = REWARD
        done: NestedKey = DONE
        terminated: NestedKey = TERMINATED
        is_init: NestedKey = IS_INIT
        mask: NestedKey = "mask"
        steps_to_next_obs: NestedKey = "steps_to_next_obs"
        advantage: NestedKey = "advantage"
        value_target: NestedKey = "value_target"
        priority: NestedKey = "td_error"
        priority_weight: NestedKey = "priority_weight"

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys
    default_value_estimator = ValueEstimators.TD0
    SUPPORTED_VALUE_ESTIMATORS = SUPPORTED
    out_keys = ["loss"]

    local_value_network: TensorDictModuleBase
    local_value_network_params: Any
    target_local_value_network_params: Any

    def __init__(
        self,
        local_value_network: nn.Module,
        *,
        n_agents: int | None = None,
        double_q: bool = True,
        loss_function: str = "l2",
        burn_in: int = 0,
        check_inputs: bool = True,
        delay_value: bool = True,
        reward_reduction: str | None = None,
        action_space: Any = None,
        gamma: float | None = None,
        priority_key: NestedKey | None = None,
    ):
        super().__init__()
        if gamma is not None:
            raise TypeError(_GAMMA_LMBDA_DEPREC_ERROR)
        self._set_deprecated_ctor_keys(priority=priority_key)  # a RuntimeError naming set_keys, as torchrl's
        if loss_function not in ("l2", "smooth_l1", "l1"):
            raise ValueError(f"loss_function must be 'l2', 'smooth_l1' or 'l1', got {loss_function!r}.")
        if reward_reduction not in (None, *AGENT_REDUCTIONS):
            raise ValueError(f"reward_reduction must be None, 'sum' or 'mean', got {reward_reduction!r}.")
        if int(burn_in) < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in}.")
        self.reward_reduction, self.double_q, self.loss_function = reward_reduction, bool(double_q), loss_function
        self.burn_in, self.check_inputs, self.delay_value = int(burn_in), bool(check_inputs), bool(delay_value)
        self._in_keys = None
        self._init_registry()
        spec_actions = (None if action_space is None or isinstance(action_space, str)
                        else spec_n_actions(action_space, self.tensor_keys.action))
        agent, keys = as_agent_net(local_value_network, n_agents=n_agents, n_actions=spec_actions)
        policy = (local_value_network if isinstance(local_value_network, TensorDictModuleBase)
                  else make_agent_policies(agent)[0])  # what torchrl code syncs and checkpoints: a greedy policy
        self.add_network("local_value_network", policy, compute=partial(_agent_of, n_agents=agent.n_agents),
                         alias="agent_net")
        self.adopt_keys(keys)
        self._check_action_space(action_space)

    @property
    def agent_net(self) -> AgentNet:
        """The per-agent utility network the loss computes with (its parameters: ``local_value_network_params``)."""
        return self.compute_module("agent_net")

    @property
    def agent_net_params(self) -> TensorDictBase:
        """``agent_net``'s online parameters (a view into ``local_value_network_params``)."""
        return self.network_params("agent_net")

    @property
    def target_agent_net_params(self) -> TensorDictBase:
        """``agent_net``'s target parameters (a view into ``target_local_value_network_params``)."""
        return self.network_params("agent_net", target=True)

    def _check_action_space(self, action_space: Any) -> None:
        if action_space is None:
            return
        if isinstance(action_space, str):
            if action_space.replace("_", "-") not in ("categorical", "one-hot"):
                raise ValueError(
                    f"action_space={action_space!r}: these losses learn discrete per-agent actions, stored categorical "
                    "or one-hot ('categorical', 'one-hot')."
                )
            return
        n = spec_n_actions(action_space, self.tensor_keys.action)
        if n is not None and n != self.agent_net.n_actions:
            raise ValueError(
                f"action_space has {n} actions but the agent net outputs {self.agent_net.n_actions} utilities per agent."
            )

    def adopt_keys(self, keys: dict[str, NestedKey]) -> None:
        """Take the keys a wrapped TorchRL policy or mixer module names (observation, action, mask, state).

        A policy's observation key in another agent group moves every per-agent key there first
        (:meth:`use_group`), so the optional per-agent entries (alive, rnn_hidden) follow it.
        """
        obs = keys.get("observation")
        if isinstance(obs, tuple) and len(obs) == 2 and obs[0] != self.group:
            self.use_group(obs[0])
        if keys:
            self.set_keys(**keys)

    @property
    def group(self) -> str:
        """The agent group name (first element of the observation key)."""
        key = self.tensor_keys.observation
        return key[0] if isinstance(key, tuple) else GROUP

    # ------------------------------------------------------------------ keys and value estimator
    def use_group(self, group: str) -> "ValueDecompositionLoss":
        """Move every per-agent key to another agent group name (e.g. ``"agent"`` in PettingZoo)."""
        self.set_keys(**{f: (group, getattr(self.tensor_keys, f)[-1]) for f in PER_AGENT_KEYS})
        return self

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        """The estimator's keys follow the loss's (its ``value`` is ``global_value``), as QMixerLoss's do."""
        if getattr(self, "_value_estimator", None) is not None:
            self._value_estimator.set_keys(**self._estimator_keys())
        self._in_keys = None

    def _estimator_keys(self) -> dict[str, NestedKey]:
        k = self.tensor_keys
        return {"advantage": k.advantage, "value_target": k.value_target, "value": k.global_value, "reward": k.reward,
                "done": k.done, "terminated": k.terminated}

    def make_value_estimator(self, value_type: ValueEstimators | None = None, **hyperparams) -> "ValueDecompositionLoss":
        """Choose the return estimator: ``TD0`` (r + γ max Q̄, the target of every paper here), ``TD1`` or
        ``TDLambda`` (``lmbda``), with torchrl's defaults (γ 0.99, λ 0.95; pymarl2 uses λ 0.6).

        The loss holds the torchrl estimator object (``value_estimator``: its γ, λ and keys, which ``set_keys``
        keeps in step) and computes the returns with torchrl's functional estimators on the values it computed
        (returns.py), not by running the networks again through the estimator. A ``ValueEstimatorBase`` instance
        or subclass is taken as torchrl takes it; its γ (and λ) are read from it.
        """
        if isinstance(value_type, ValueEstimatorBase) or (
                isinstance(value_type, type) and issubclass(value_type, ValueEstimatorBase)):
            kind_of(value_type, type(self).__name__)  # GAE, VTrace, ...: NotImplementedError before anything is set
            return LossModule.make_value_estimator(self, value_type, **hyperparams)
        value_type = value_type or self.default_value_estimator
        for name in ("gamma", "lmbda"):
            if name in hyperparams and not 0.0 <= float(hyperparams[name]) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {hyperparams[name]}.")
        est = dispatch_value_estimator(self, value_type, supported=self.SUPPORTED_VALUE_ESTIMATORS,
                                       tensor_keys=self._estimator_keys(), value_network=None, **hyperparams)
        hp = {**default_value_kwargs(value_type), **hyperparams}
        # γ and λ as given: the estimator stores them as float32 tensors, which float64 computations would feel
        self._exact = (est, float(hp["gamma"]), None if hp.get("lmbda") is None else float(hp["lmbda"]))
        return self

    def _discount(self) -> tuple[ValueEstimators, float, float | None]:
        """``(kind, γ, λ)`` of the value estimator (built with torchrl's defaults on first use)."""
        est = self.value_estimator
        exact = getattr(self, "_exact", None)
        if exact is not None and exact[0] is est:
            return self.value_type, exact[1], exact[2]
        lmbda = getattr(est, "lmbda", None)  # an estimator the user built: its own γ, λ
        kind = kind_of(getattr(self, "value_type", ValueEstimators.TD0))  # an estimator's class: its kind
        return kind, float(est.gamma), None if lmbda is None else float(lmbda)

    @property
    def in_keys(self) -> list[NestedKey]:
        """The entries ``forward`` reads (optional ones included: masks, state, recurrent and MultiStep entries)."""
        if self._in_keys is None:
            k = self.tensor_keys
            now = [k.observation, k.action, k.action_mask, k.alive, k.rnn_hidden, k.state, k.is_init, k.mask,
                   k.priority_weight, k.steps_to_next_obs, *self._loss_mask_keys()]
            nxt = [k.observation, k.action_mask, k.alive, k.state, k.reward, k.done, k.terminated]
            self._in_keys = list(dict.fromkeys([*now, *[_next(x) for x in nxt], *self._extra_in_keys()]))
        return self._in_keys

    def _extra_in_keys(self) -> list[NestedKey]:
        """Entries a subclass reads besides the base's (e.g. MAVEN's z)."""
        return []

    # ------------------------------------------------------------------ forward
    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """The loss terms as a TensorDict of scalars named ``loss*`` (their sum is the objective: :func:`total_loss`)
        and diagnostics; writes the per-sample ``|TD error|`` at ``tensor_keys.priority``."""
        batch = self.read_batch(tensordict)
        losses, td_error = self._losses(batch)
        tensordict.set(self.tensor_keys.priority, td_error.detach())  # [*B] for prioritized replay
        return TensorDict(losses, [])

    def _losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Subclass hook: ``({"loss...": ..., diagnostics...}, td_error [*B])``."""
        raise NotImplementedError  # abstract

    # ------------------------------------------------------------------ reading + validation (batch.py)
    def read_batch(self, td: TensorDictBase) -> Batch:
        """Gather and validate the entries the loss needs (clear errors instead of torch tracebacks); the valid
        steps also honour torchrl's masks (``loss_mask_key``: by default ``("collector", "mask")``)."""
        batch = read_train_batch(td, self.tensor_keys, n_actions=self.agent_net.n_actions, group=self.group,
                                 reward_reduction=self.reward_reduction, burn_in=self.burn_in,
                                 loss_name=type(self).__name__)
        for key in self._loss_mask_keys():
            mask = td.get(key, None)
            if mask is not None:
                batch.valid = batch.valid & mask.bool().reshape(batch.valid.shape)  # [*B] (or [*B, 1]) -> [*B]
        if self.check_inputs:
            validate_batch(batch, self.agent_net.n_agents, self.agent_net.n_actions)
        return batch

    def team_reward(self, reward: torch.Tensor, bdims: int) -> torch.Tensor:
        """The team reward r ``[*B, 1]``: as given, or Σ_i r_i / (1/n) Σ_i r_i of per-agent rewards (``reward_reduction``)."""
        return team_reward_of(reward, bdims, self.reward_reduction, key=self.tensor_keys.reward,
                              loss_name=type(self).__name__)

    def team_flag(self, flag: torch.Tensor, bdims: int) -> torch.Tensor:
        """A done/terminated flag ``[*B, 1]``: as given, or *all* of per-agent flags ``[*B, n, 1]`` (the team's episode
        ends when every agent's has; an agent that is done before the others only stops contributing)."""
        return team_flag_of(flag, bdims)

    def read_batch_for_eval(self, td: TensorDictBase) -> Batch:
        """Like :meth:`read_batch` but only the current-step entries are required."""
        return read_eval_batch(td, self.tensor_keys)

    # ------------------------------------------------------------------ shared maths
    def utilities(self, b: Batch, *, target: bool = False, need_current: bool = True, need_next: bool = True,
                  features: bool = False):
        """Per-agent utilities ``(Q(h_t,·), Q(h_{t+1},·))`` ``[*B, n, A]`` from the online or target agents.

        ``features=True``: each step is ``(Q [*B, n, A], h [*B, n, H])``, h the agents' hidden features
        (``AgentNet.feature_size``; QTRAN's Q_jt input)."""
        net = self.target("agent_net") if target else self.agent_net
        extra = {"features": True} if features else {}  # agents without hidden features keep their signature
        return net.evaluate(
            b.obs, b.next_obs, hidden=b.hidden, is_init=b.is_init, need_current=need_current, need_next=need_next,
            **extra, **net.extra_inputs(b.td, self.group),
        )

    def online_features(self, b: Batch, *, need_next: bool):
        """Online ``((Q(h_t,·), h_t), Q(h_{t+1},·))``: the current utilities and hidden features with grad, the
        next utilities (double Q's argmax; ``None`` unless ``need_next``) without, as :meth:`online_utilities`."""
        if not need_next or self.agent_net.is_recurrent:
            current, (q_next, _) = self.utilities(b, need_next=need_next, features=True)
            return current, q_next
        current, _ = self.utilities(b, need_next=False, features=True)
        with torch.no_grad():
            _, q_next = self.utilities(b, need_current=False)
        return current, q_next

    def online_utilities(self, b: Batch, *, need_next: bool):
        """Online ``(Q(h_t,·), Q(h_{t+1},·))``: the current step with grad, the next one (double Q's argmax) without.

        Feed-forward agents run the two steps as two passes, the next one under ``no_grad``: one stacked
        pass ``[2, *B]`` made backward run over both halves (the next-step half only receives zeros) on twice
        the rows, slower on CPU (benchmarks/RESULTS.md, the double-Q rows). Recurrent agents keep one unroll for both (q_next reuses it).
        """
        if not need_next or self.agent_net.is_recurrent:
            return self.utilities(b, need_next=need_next)
        q, _ = self.utilities(b, need_next=False)
        with torch.no_grad():
            _, q_next = self.utilities(b, need_current=False)
        return q, q_next

    @staticmethod
    def masked(q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Illegal actions set to the lowest float so that max/argmax never pick them."""
        if mask is None:
            return q
        return q.masked_fill(~mask.bool(), torch.finfo(q.dtype).min)

    @staticmethod
    def gather(q: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(h_i, a_i): ``q [*B, n, A]``, ``action [*B, n]`` -> ``[*B, n, 1]``."""
        return q.gather(-1, action.unsqueeze(-1))

    def greedy_next_actions(self, b: Batch, q_next_online: torch.Tensor | None, q_next_target: torch.Tensor):
        """a*_{t+1}: argmax of the online utilities (double Q) or of the target's, within the mask."""
        q_sel = q_next_online if (self.double_q and q_next_online is not None) else q_next_target
        return self.masked(q_sel, b.next_action_mask).argmax(-1)  # [*B, n]

    @staticmethod
    def zero_dead(chosen: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
        """Dead/inactive agents contribute zero utility (and receive zero gradient)."""
        return chosen if alive is None else chosen * alive.unsqueeze(-1).to(chosen.dtype)

    def next_target_utilities(self, b: Batch, q_next_online: torch.Tensor | None):
        """The target agents' side of a TD target (call it under ``no_grad``): ``(Q̄(h_{t+1}, ·) [*B, n, A],
        a*_{t+1} [*B, n], Q̄(h_{t+1}, a*_{t+1}) [*B, n, 1])``, ``a*_{t+1}`` from :meth:`greedy_next_actions` (the
        online ``q_next_online`` with double Q), dead agents' utilities zero."""
        _, q_next_t = self.utilities(b, target=True, need_current=False)  # [*B, n, A]
        a_next = self.greedy_next_actions(b, q_next_online, q_next_t)  # [*B, n]
        return q_next_t, a_next, self.zero_dead(self.gather(q_next_t, a_next), b.next_alive)  # [*B, n, 1]

    def td_target(self, b: Batch, next_value: torch.Tensor, reward: torch.Tensor | None = None) -> torch.Tensor:
        """The TD target of a value ``[*B, 1]`` (centralized) or ``[*B, n]`` (per agent) from its next-step value
        (returns.py: TD(0), TD(1) or TD(λ) as the value estimator says), the team reward ``b.reward`` broadcast to
        the agents unless a per-agent ``reward`` ``[*B, n]`` is given."""
        kind, gamma, lmbda = self._discount()
        steps = b.td.get(self.tensor_keys.steps_to_next_obs, None)
        if steps is not None:
            steps = steps.reshape(*b.valid.shape, 1)  # [*B] or [*B, 1] -> [*B, 1]
        return td_target(kind, gamma, lmbda, b.reward if reward is None else reward, next_value, b.done,
                         b.terminated, steps)

    def reduce(self, per_sample: torch.Tensor, b: Batch) -> torch.Tensor:
        """Mean over valid samples (× priority weights): padding and burn-in give zero loss and grad (and a NaN
        on a padded step stays out: selected away, not multiplied by 0)."""
        x = per_sample.reshape(b.valid.shape)  # [*B, 1] -> [*B]
        if b.weight is not None:
            x = x * b.weight.reshape(b.valid.shape)
        x = torch.where(b.valid, x, torch.zeros_like(x))
        return x.sum() / b.valid.sum().clamp_min(1).to(x.dtype)

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Elementwise (pred − target)² (the squared TD error of DQN, VDN and QMIX), ``|pred − target|`` or smooth-L1."""
        if self.loss_function == "l2":
            return (pred - target).pow(2)
        if self.loss_function == "l1":
            return (pred - target).abs()
        return nn.functional.smooth_l1_loss(pred, target, reduction="none")

    def td_loss(self, pred: torch.Tensor, target: torch.Tensor, b: Batch, weight: torch.Tensor | None = None):
        """``(L_td, td_error)`` of a centralized value ``pred`` ``[*B, 1]`` and its TD target y ``[*B, 1]``: L_td = the
        masked mean (:meth:`reduce`) of [``weight`` ×] :meth:`distance` (pred, y), td_error = ``|pred − y|`` ``[*B]``
        (detached), the per-sample priority written at ``"td_error"``."""
        dist = self.distance(pred, target)  # [*B, 1]
        loss_td = self.reduce(dist if weight is None else weight * dist, b)
        return loss_td, (pred - target).detach().abs().reshape(b.valid.shape)  # [*B]

    # ------------------------------------------------------------------ IGM support (igm.check_igm)
    def local_q_values(self, td: TensorDictBase) -> torch.Tensor:
        """Per-agent utilities Q(h_i, ·) ``[*B, n, A]`` at the current step, illegal actions masked."""
        b, q = self.eval_utilities(td)
        return self.masked(q, b.action_mask)

    def eval_utilities(self, td: TensorDictBase) -> tuple[Batch, torch.Tensor]:
        """The current step of ``td`` (:meth:`read_batch_for_eval`) and the online agents' utilities Q(h_i, ·)
        ``[*B, n, A]`` there."""
        b = self.read_batch_for_eval(td)
        q, _ = self.utilities(b, need_next=False)  # [*B, n, A]
        return b, q

    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """The centralized value Q(h, z, a) ``[*B, K]`` of K joint actions, ``[K, n]`` or per sample ``[*B, K, n]``."""
        raise NotImplementedError  # abstract: each loss family defines its centralized value

    def joint_inputs(self, q: torch.Tensor, joint_actions: torch.Tensor, state: torch.Tensor | None,
                     alive: torch.Tensor | None = None):
        """A mixer's inputs at K joint actions ``[K, n]`` or ``[*B, K, n]``, from utilities ``q`` ``[*B, n, A]`` and
        ``state`` ``[*B, *S]``: ``(Q(h_i, a_i) [*B, K, n, 1], joint actions [*B, K, n], state [*B, K, *S] or None)``;
        with ``alive`` ``[*B, n]``, dead agents' utilities are zero."""
        batch, (n, A) = q.shape[:-2], q.shape[-2:]
        K = joint_actions.shape[-2]
        acts = joint_actions.to(q.device).expand(*batch, K, n)  # [*B, K, n]
        chosen = q.unsqueeze(-3).expand(*batch, K, n, A).gather(-1, acts.unsqueeze(-1))  # [*B, K, n, 1]
        if alive is not None:
            chosen = self.zero_dead(chosen, alive.unsqueeze(-2))  # alive [*B, 1, n]
        if state is not None:
            state = state.unsqueeze(len(batch)).expand(*batch, K, *state.shape[len(batch):])  # [*B, K, *S]
        return chosen, acts, state




__all__ = ["ValueDecompositionLoss", "total_loss"]
