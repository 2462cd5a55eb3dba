"""The shared base of every value-decomposition loss (VDN, QMIX, QTRAN, MAVEN): the torchrl ``LossModule`` contract.

One forward order for all losses: read + validate the batch → online utilities → gather chosen →
centralized value → target (no grad) → td_error (priority) → masked, weighted reduction. Subclasses
implement :meth:`ValueDecompositionLoss._losses` on an already validated :class:`~torchrl_vd.objectives.batch.Batch`
and reuse the helpers below, so double Q, the TD target, the masked reduction and the value estimator are
written once; reading and checking the batch (keys, team reward, masks, burn-in) lives in batch.py.

Why not torchrl's ``QMixerLoss`` as the base: it ignores validity masks (an all-padding batch gives a
non-zero loss), has no double Q and no priority weights, and spends most of its forward restructuring
tensordicts. We keep torchrl's contract — ``LossModule``, ``_AcceptedKeys`` + ``set_keys``,
``make_value_estimator``, target parameters created by ``convert_to_functional`` so that
``SoftUpdate``/``HardUpdate`` work unchanged — and compute on plain tensors.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.objectives.common import LossModule
from torchrl.objectives.utils import ValueEstimators
from torchrl.objectives.value.functional import td_lambda_return_estimate

from torchrl_vd.keys import GROUP
from torchrl_vd.modules.agents import AgentNet
from torchrl_vd.modules.interop import as_agent_net, spec_n_actions
from torchrl_vd.objectives.batch import (
    Batch,
    read_eval_batch,
    read_train_batch,
    team_flag_of,
    team_reward_of,
    validate_batch,
)

# torchrl QMixerLoss key names with no entry of ours: set_keys accepts them (so a QMixerLoss set_keys line runs
# unchanged) and records them; our losses compute these values on tensors and neither read nor write them.
TORCHRL_ONLY_KEYS = ("action_value", "local_value", "global_value", "advantage", "value_target")
AGENT_REDUCTIONS = ("sum", "mean")


class ValueDecompositionLoss(LossModule):
    """Base class: a torchrl ``LossModule`` over per-agent utilities and a centralized value.

    Args:
        agent_net: the per-agent utility network: an :class:`AgentNet`; a feed-forward ``nn.Module``
            ``[*B, n, F] -> [*B, n, A]`` such as torchrl's ``MultiAgentMLP``; or a TorchRL Q-value policy
            (``TensorDictSequential(TensorDictModule(net), QValueModule)``), whose network is used and whose
            observation, action and action-mask keys the loss adopts (:func:`~torchrl_vd.modules.interop.as_agent_net`).

    Keyword Args:
        double_q: select a*_{t+1} with the online agents, evaluate it with the target networks.
        loss_function: ``"l2"`` (seed: squared TD error), ``"smooth_l1"`` or ``"l1"``.
        reward_reduction: how a *per-agent* reward ``[*B, n, 1]`` read at ``("next", reward)`` (e.g. after
            ``set_keys(reward=("agents", "reward"))``) becomes the team reward r: ``"sum"`` (r = Σ_i r_i) or
            ``"mean"`` (r = 1/n Σ_i r_i, torchrl's QMIX example's ``.mean(-2)``). ``None`` (default): a
            per-agent reward is an error naming these fixes. Per-agent done / terminated flags ``[*B, n, 1]``
            are always reduced with *all* (the team's episode ends when every agent's has). A team reward
            ``[*B, 1]`` is used as it is.
        burn_in: for sequence batches [B, T]: the first ``burn_in`` steps only warm the recurrent
            hidden state and are excluded from the loss.
        check_inputs: validate actions against masks and reject NaN/inf rewards and observations
            (one cheap pass; turn off only when profiling).
        delay_value: keep separate target networks (required by the seed's θ̄).
        action_space: accepted as ``QMixerLoss`` takes it, so its constructor line runs unchanged: a string
            (``"categorical"``, ``"one-hot"``) or an action spec whose |A| must match the agent net. Stored
            actions are read either way: categorical ``[*B, n]`` / ``[*B, n, 1]`` or one-hot ``[*B, n, A]``.
    """

    @dataclass
    class _AcceptedKeys:
        """Tensordict entries read and written (remap with ``set_keys``; ``use_group`` moves all).

        Attributes:
            observation: per-agent observations [*B, n, F]. Default ``("agents", "observation")``.
            action: taken actions [*B, n]. Default ``("agents", "action")``.
            action_mask: legal actions [*B, n, A], optional. Default ``("agents", "action_mask")``.
            alive: per-agent activity flags [*B, n], optional. Default ``("agents", "alive")``.
            rnn_hidden: recurrent agents' hidden state. Default ``("agents", "rnn_hidden")``.
            state: centralized information z. Default ``"state"``.
            reward: team reward under ``"next"`` [*B, 1]. Default ``"reward"``.
            done / terminated: under ``"next"`` [*B, 1]. Defaults ``"done"`` / ``"terminated"``.
            is_init: episode-start flags (torchrl ``InitTracker``). Default ``"is_init"``.
            mask: valid-step mask of padded sequence batches [*B]. Default ``"mask"``.
            priority: written: per-sample |TD error| for prioritized replay. Default ``"td_error"``.
            priority_weight: importance weights from a prioritized sampler. Default ``"priority_weight"``.
        """

        observation: NestedKey = (GROUP, "observation")
        action: NestedKey = (GROUP, "action")
        action_mask: NestedKey = (GROUP, "action_mask")
        alive: NestedKey = (GROUP, "alive")
        rnn_hidden: NestedKey = (GROUP, "rnn_hidden")
        state: NestedKey = "state"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"
        is_init: NestedKey = "is_init"
        mask: NestedKey = "mask"
        priority: NestedKey = "td_error"
        priority_weight: NestedKey = "priority_weight"

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys
    default_value_estimator = ValueEstimators.TD0
    SUPPORTED_VALUE_ESTIMATORS = (ValueEstimators.TD0, ValueEstimators.TDLambda)

    agent_net: AgentNet
    agent_net_params: Any
    target_agent_net_params: Any

    def __init__(
        self,
        agent_net: nn.Module,
        *,
        double_q: bool = True,
        loss_function: str = "l2",
        burn_in: int = 0,
        check_inputs: bool = True,
        delay_value: bool = True,
        reward_reduction: str | None = None,
        action_space: Any = None,
    ):
        super().__init__()
        if loss_function not in ("l2", "smooth_l1", "l1"):
            raise ValueError(f"loss_function must be 'l2', 'smooth_l1' or 'l1', got {loss_function!r}.")
        if reward_reduction not in (None, *AGENT_REDUCTIONS):
            raise ValueError(f"reward_reduction must be None, 'sum' or 'mean', got {reward_reduction!r}.")
        self.reward_reduction = reward_reduction
        if int(burn_in) < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in}.")
        self.double_q = bool(double_q)
        self.loss_function = loss_function
        self.burn_in = int(burn_in)
        self.check_inputs = bool(check_inputs)
        self.delay_value = bool(delay_value)
        self.gamma, self.lmbda = 0.99, None
        self._value_type = ValueEstimators.TD0
        self._targets: dict[str, nn.Module] = {}
        self.torchrl_keys: dict[str, NestedKey] = {}  # QMixerLoss-only key names given to set_keys (not read)
        agent_net, keys = as_agent_net(agent_net)
        self.add_network("agent_net", agent_net)
        self.adopt_keys(keys)
        self._check_action_space(action_space)

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

    # ------------------------------------------------------------------ networks and targets
    def add_network(self, name: str, module: nn.Module) -> None:
        """Register ``module`` with online params ``<name>_params`` and target ``target_<name>_params``.

        ``convert_to_functional`` creates the target parameters that torchrl's ``SoftUpdate`` /
        ``HardUpdate`` find by name. The online module keeps its own parameters (called directly, no
        per-call parameter swap), and a copy of it is bound once to the target tensors; the updaters
        write those tensors in place, so the copy always sees the current target weights.
        """
        with warnings.catch_warnings():  # torchrl asks for class annotations of every name; ours are dynamic
            warnings.filterwarnings("ignore", message="The name .* wasn't part of the annotations")
            self.convert_to_functional(module, name, create_target_params=self.delay_value)
        if self.delay_value:
            target = copy.deepcopy(module)
            self._modules[f"target_{name}_params"].to_module(target)
            self._targets[name] = target

    def target(self, name: str) -> nn.Module:
        """The target copy θ̄ of network ``name`` (the online module itself if ``delay_value=False``)."""
        return self._targets.get(name) or getattr(self, name)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        for name, target in self._targets.items():  # .to(device) made new target tensors: rebind
            self._modules[f"target_{name}_params"].to_module(target)  # (no getattr: torchrl warns there)
        return out

    @property
    def group(self) -> str:
        """The agent group name (first element of the observation key)."""
        key = self.tensor_keys.observation
        return key[0] if isinstance(key, tuple) else GROUP

    # ------------------------------------------------------------------ keys and value estimator
    def use_group(self, group: str) -> "ValueDecompositionLoss":
        """Move every per-agent key to another agent group name (e.g. ``"agent"`` in PettingZoo)."""
        self.set_keys(
            **{
                f: (group, getattr(self.tensor_keys, f)[-1])
                for f in ("observation", "action", "action_mask", "alive", "rnn_hidden")
            }
        )
        return self

    def set_keys(self, **kwargs) -> None:
        """Remap tensordict entries (``_AcceptedKeys``); torchrl ``QMixerLoss`` key names are accepted too.

        ``action``, ``reward``, ``done``, ``terminated`` and ``priority`` mean what they mean in
        ``QMixerLoss``. Its ``action_value`` / ``local_value`` (per-agent Q(h_i, ·) and Q(h_i, a_i)),
        ``global_value`` (Q_tot), ``advantage`` and ``value_target`` have no entry here: these losses
        compute them on tensors and neither read nor write them, so they are recorded in
        ``torchrl_keys`` and only checked: a per-agent one in another agent group than the observation
        is an error (call :meth:`use_group` first). One difference to know: ``QMixerLoss`` writes the
        *squared* TD error at ``priority``, these losses write |TD error|.
        """
        ours = self._AcceptedKeys.__dataclass_fields__
        torchrl_only = {k: kwargs.pop(k) for k in list(kwargs) if k in TORCHRL_ONLY_KEYS and k not in ours}
        super().set_keys(**kwargs)
        for name in ("action_value", "local_value"):
            key = torchrl_only.get(name)
            if isinstance(key, tuple) and len(key) > 1 and key[0] != self.group:
                raise ValueError(
                    f"set_keys({name}={key!r}) names agent group {key[0]!r} but this loss reads group {self.group!r} "
                    f"(observation {self.tensor_keys.observation!r}); call loss.use_group({key[0]!r}) first."
                )
        self.torchrl_keys.update(torchrl_only)

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass  # returns are computed on tensors in _td_target: no estimator keys to forward

    def make_value_estimator(self, value_type: ValueEstimators | None = None, **hyperparams) -> None:
        """Choose the return estimator: ``TD0`` (seed: r + γ max Q̄) or ``TDLambda`` (``lmbda``).

        Hyperparameters: ``gamma`` (default 0.99) and, for TD(λ), ``lmbda`` (default 0.6, pymarl2).
        The return is computed by torchrl's functional estimators on tensors (TD(λ) via
        ``td_lambda_return_estimate``) instead of a ``ValueEstimatorBase`` that would re-run the
        networks through tensordicts.
        """
        value_type = value_type or self.default_value_estimator
        if value_type not in self.SUPPORTED_VALUE_ESTIMATORS:
            raise NotImplementedError(
                f"{type(self).__name__} supports {[v.name for v in self.SUPPORTED_VALUE_ESTIMATORS]}, "
                f"got {value_type}."
            )
        unknown = set(hyperparams) - {"gamma", "lmbda"}
        if unknown:
            raise TypeError(f"Unknown value-estimator hyperparameters {sorted(unknown)}; use gamma, lmbda.")
        gamma = float(hyperparams.get("gamma", self.gamma))
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}.")
        lmbda = hyperparams.get("lmbda", 0.6) if value_type == ValueEstimators.TDLambda else None
        if lmbda is not None and not 0.0 <= float(lmbda) <= 1.0:
            raise ValueError(f"lmbda must lie in [0, 1], got {lmbda}.")
        self._value_type, self.gamma, self.lmbda = value_type, gamma, lmbda

    # ------------------------------------------------------------------ forward
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """Loss terms as a TensorDict of scalars: ``loss`` (the weighted objective) and ``loss_*``."""
        batch = self.read_batch(tensordict)
        losses, td_error = self._losses(batch)
        tensordict.set(self.tensor_keys.priority, td_error.detach())  # [*B] for prioritized replay
        return TensorDict(losses, [])

    def _losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Subclass hook: ``({"loss": ..., "loss_td": ..., ...}, td_error [*B])``."""
        raise NotImplementedError  # abstract

    # ------------------------------------------------------------------ reading + validation (batch.py)
    def read_batch(self, td: TensorDictBase) -> Batch:
        """Gather and validate the entries the loss needs (clear errors instead of torch tracebacks)."""
        batch = read_train_batch(td, self.tensor_keys, n_actions=self.agent_net.n_actions, group=self.group,
                                 reward_reduction=self.reward_reduction, burn_in=self.burn_in,
                                 loss_name=type(self).__name__)
        if self.check_inputs:
            validate_batch(batch, self.agent_net.n_agents, self.agent_net.n_actions)
        return batch

    def team_reward(self, reward: torch.Tensor, bdims: int) -> torch.Tensor:
        """The team reward r [*B, 1]: as given, or Σ_i r_i / (1/n) Σ_i r_i of per-agent rewards (``reward_reduction``)."""
        return team_reward_of(reward, bdims, self.reward_reduction, key=self.tensor_keys.reward,
                              loss_name=type(self).__name__)

    def team_flag(self, flag: torch.Tensor, bdims: int) -> torch.Tensor:
        """A done/terminated flag [*B, 1]: as given, or *all* of per-agent flags [*B, n, 1] (the team's episode
        ends when every agent's has; an agent that is done before the others only stops contributing)."""
        return team_flag_of(flag, bdims)

    def read_batch_for_eval(self, td: TensorDictBase) -> Batch:
        """Like :meth:`read_batch` but only the current-step entries are required."""
        return read_eval_batch(td, self.tensor_keys)

    # ------------------------------------------------------------------ shared maths
    def utilities(self, b: Batch, *, target: bool = False, need_current: bool = True, need_next: bool = True,
                  features: bool = False):
        """Per-agent utilities ``(Q(h_t,·), Q(h_{t+1},·))`` [*B, n, A] from the online or target agents.

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
        pass [2, *B] made backward run over both halves (the next-step half only receives zeros) on twice
        the rows — 8.1 -> 6.0 ms CPU for the agent part of a 2x256 double-Q step, batch 128, 4 agents
        (benchmarks/RESULTS.md). Recurrent agents keep one unroll for both (q_next reuses it).
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
        a*_{t+1} [*B, n], Q̄(h_{t+1}, a*_{t+1}) [*B, n, 1])``, a*_{t+1} from :meth:`greedy_next_actions` (the
        online ``q_next_online`` with double Q), dead agents' utilities zero."""
        _, q_next_t = self.utilities(b, target=True, need_current=False)  # [*B, n, A]
        a_next = self.greedy_next_actions(b, q_next_online, q_next_t)  # [*B, n]
        return q_next_t, a_next, self.zero_dead(self.gather(q_next_t, a_next), b.next_alive)  # [*B, n, 1]

    def td_target(self, b: Batch, next_value: torch.Tensor, reward: torch.Tensor | None = None) -> torch.Tensor:
        """y = r + γ (1 − terminated) V̄(next) (TD0), or the TD(λ) return over the time axis: ``[*B, 1]`` for a
        centralized value, ``[*B, n]`` for per-agent values (independent learners), the team reward ``b.reward``
        broadcast to them unless a per-agent ``reward`` ``[*B, n]`` is given."""
        next_value = next_value.detach()
        reward = b.reward if reward is None else reward
        if self._value_type == ValueEstimators.TD0:
            return reward + self.gamma * (~b.terminated).to(next_value.dtype) * next_value
        if next_value.ndim < 3:
            raise ValueError("TD(lambda) needs sequence batches [B, T]; sample slices or use TD0.")
        shape = next_value.shape  # [B, T, 1] or [B, T, n]: torchrl's estimator wants every input in it
        return td_lambda_return_estimate(self.gamma, self.lmbda, next_value, reward.expand(shape),
                                         b.done.expand(shape), b.terminated.expand(shape), time_dim=-2)

    def reduce(self, per_sample: torch.Tensor, b: Batch) -> torch.Tensor:
        """Mean over valid samples (× priority weights): padding and burn-in give zero loss and grad."""
        x = per_sample.reshape(b.valid.shape)  # [*B, 1] -> [*B]
        if b.weight is not None:
            x = x * b.weight.reshape(b.valid.shape)
        valid = b.valid.to(x.dtype)
        return (x * valid).sum() / valid.sum().clamp_min(1.0)

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Elementwise (pred − target)² (seed), |pred − target| or smooth-L1."""
        if self.loss_function == "l2":
            return (pred - target).pow(2)
        if self.loss_function == "l1":
            return (pred - target).abs()
        return nn.functional.smooth_l1_loss(pred, target, reduction="none")

    def td_loss(self, pred: torch.Tensor, target: torch.Tensor, b: Batch, weight: torch.Tensor | None = None):
        """``(L_td, td_error)`` of a centralized value ``pred`` [*B, 1] and its TD target y [*B, 1]: L_td = the
        masked mean (:meth:`reduce`) of [``weight`` ×] :meth:`distance` (pred, y), td_error = |pred − y| [*B]
        (detached), the per-sample priority written at ``"td_error"``."""
        dist = self.distance(pred, target)  # [*B, 1]
        loss_td = self.reduce(dist if weight is None else weight * dist, b)
        return loss_td, (pred - target).detach().abs().reshape(b.valid.shape)  # [*B]

    # ------------------------------------------------------------------ IGM support (igm.check_igm)
    def local_q_values(self, td: TensorDictBase) -> torch.Tensor:
        """Per-agent utilities Q(h_i, ·) [*B, n, A] at the current step, illegal actions masked."""
        b, q = self.eval_utilities(td)
        return self.masked(q, b.action_mask)

    def eval_utilities(self, td: TensorDictBase) -> tuple[Batch, torch.Tensor]:
        """The current step of ``td`` (:meth:`read_batch_for_eval`) and the online agents' utilities Q(h_i, ·)
        [*B, n, A] there."""
        b = self.read_batch_for_eval(td)
        q, _ = self.utilities(b, need_next=False)  # [*B, n, A]
        return b, q

    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """The centralized value Q(h, z, a) [*B, K] of K joint actions, ``[K, n]`` or per sample ``[*B, K, n]``."""
        raise NotImplementedError  # abstract: each loss family defines its centralized value

    def joint_inputs(self, q: torch.Tensor, joint_actions: torch.Tensor, state: torch.Tensor | None,
                     alive: torch.Tensor | None = None):
        """A mixer's inputs at K joint actions ``[K, n]`` or ``[*B, K, n]``, from utilities ``q`` [*B, n, A] and
        ``state`` [*B, *S]: ``(Q(h_i, a_i) [*B, K, n, 1], joint actions [*B, K, n], state [*B, K, *S] or None)``;
        with ``alive`` [*B, n], dead agents' utilities are zero."""
        batch, (n, A) = q.shape[:-2], q.shape[-2:]
        K = joint_actions.shape[-2]
        acts = joint_actions.to(q.device).expand(*batch, K, n)  # [*B, K, n]
        chosen = q.unsqueeze(-3).expand(*batch, K, n, A).gather(-1, acts.unsqueeze(-1))  # [*B, K, n, 1]
        if alive is not None:
            chosen = self.zero_dead(chosen, alive.unsqueeze(-2))  # alive [*B, 1, n]
        if state is not None:
            state = state.unsqueeze(len(batch)).expand(*batch, K, *state.shape[len(batch):])  # [*B, K, *S]
        return chosen, acts, state


__all__ = ["ValueDecompositionLoss"]
