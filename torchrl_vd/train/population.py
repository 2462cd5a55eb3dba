"""All seeds a run trains, as one object the training loop drives: N >= 1 seeds' networks, extras and envs.

One seed is the identity: its loss module, built exactly as a lone run builds it, is what the learner optimises.
N seeds are stacked (tensordict's ensemble recipe: ``TensorDict.from_modules``-style stacking, ``to_module`` inside
``torch.vmap``): one template loss module whose parameters carry a leading seed dimension ``[N, ...]``, run once
per call under ``torch.vmap``, so every algorithm's loss, mixer and hypernetworks run unchanged and the per-call
Python overhead is paid once for all seeds.

Independence of N seeds (tests/test_vectorized_seeds.py asserts each with exact equality):

* **networks**: seed k's modules are built as a lone run of seed k builds them (``torch.manual_seed(k)``, then the
  env of seed k, which may draw from the RNG, then the algorithm's parts), then stacked (:class:`SeedStack`);
  the vmapped loss binds seed k's slice into the template, so seed k's loss reads only its own parameters.
* **replay, gradients, optimizer, targets**: train/learner.py ``SeedLearner`` (per-seed draws and clipping;
  Adam/RMSprop and the target updates are elementwise, so one optimizer over stacked tensors equals N).
* **extras**: an algorithm's extra modules with parameters (MAVEN's z-policy) stay per seed, trained by that
  seed's ``after_batch`` hook on its own rows; the algorithm's ``AlgoParts.joint`` serves them on the joint env
  batch (the algorithm table, not this module, knows their structure).

What is shared: one process has one torch RNG stream, so exploration draws, replay indices and env resets of
seed k come from the shared stream (and the env batch is seeded once, with the first seed): N stacked seeds equal
N lone runs in distribution; their initial networks are equal bitwise. GRU agents run their GRU cell by cell
when stacked (``vmappable``: ``torch.vmap`` has no batching rule for the fused ``nn.GRU``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictParams
from torch import nn
from torch.utils._pytree import tree_map

from torchrl_vd.envs.registry import EnvInfo, describe_env, make_env
from torchrl_vd.objectives.common import total_loss
from torchrl_vd.train.algos import AlgoParts, JointExtras, get_algo
from torchrl_vd.train.checkpoint import restore_modules


def seed_dir(out_dir: str | Path, seed: int) -> Path:
    """Seed ``seed``'s run directory under a many-seeds ``out_dir``: ``out_dir/seed_<seed>``."""
    return Path(out_dir) / f"seed_{seed}"


def seed_config(cfg, seed: int, out_dir: Path):
    """The single-run config of seed ``seed`` (what its run directory's config.json and checkpoint hold)."""
    run = seed_dir(out_dir, seed)
    return dataclasses.replace(cfg, seed=seed, seeds=(), out_dir=str(run), resume=str(run) if cfg.resume else None)


# ---------------------------------------------------------------------------------------------- stacking
class SeedStack:
    """N loss modules of one architecture as one template loss whose parameters are stacked ``[N, ...]``.

    The template's ``<name>_params`` / ``target_<name>_params`` (what torchrl's ``convert_to_functional``
    registers, and what ``SoftUpdate``/``HardUpdate``, the optimizer and ``state_dict`` see) become the
    stacked tensors; its networks (``loss.<name>`` and the target copies) are bound to one seed's slice
    per call (:meth:`bound`), inside ``torch.vmap`` (:meth:`loss`, :meth:`act`) or for one seed (:meth:`seed`).
    Plain submodules of the loss (MAVEN's discriminator: trained, no target copy) get stacked parameters
    installed in place (so ``parameters()`` and ``state_dict`` see ``[N, ...]`` under the single run's keys)
    and are bound per call the same way.

    Args:
        losses: the N seeds' loss modules, each built as a single run of that seed builds it.
        template: one more loss module of the same architecture (its own values are replaced).
    """

    def __init__(self, losses: list, template):
        keys = list(template._modules)
        functional = [k for k in keys if k.endswith("_params")]
        plain = [k for k in keys if not k.endswith("_params")]
        self.n = len(losses)
        self.template, self.losses = template, list(losses)
        self.names = [k[: -len("_params")] for k in functional if not k.startswith("target_")]
        for key in functional:
            template._modules[key] = _stack_params([loss._modules[key] for loss in losses])
        stacked_plain = []
        for key in plain:  # e.g. MAVEN's discriminator: its parameters stacked and installed in the module itself
            stacked = _stack_params([TensorDict.from_module(loss._modules[key]) for loss in losses])
            stacked.to_module(template._modules[key])
            stacked_plain.append(stacked)
        self.online = tuple(template._modules[f"{n}_params"] for n in self.names) + tuple(stacked_plain)
        online_modules = tuple(getattr(template, n) for n in self.names) + tuple(template._modules[k] for k in plain)
        targets = self.names if template.delay_value else []  # (a loss without target networks: PQN's)
        self.params = self.online + tuple(template._modules[f"target_{n}_params"] for n in targets)
        self.modules = online_modules + tuple(template.target_module(n) for n in targets)
        self._slot_cache: dict[int, tuple[list, list]] = {}  # id(module) -> its leaves' slots (:meth:`_slots`)
        for module in (sub for net in self.modules for sub in net.modules()):
            if hasattr(module, "vmappable"):  # recurrent nets: the GRU as cell steps, which torch.vmap can run
                module.vmappable = True

    def __getstate__(self) -> dict:
        """A copy (``collector='async'``'s worker policy) resolves its own slots: the cache is keyed by module id."""
        return {**self.__dict__, "_slot_cache": {}}

    @contextlib.contextmanager
    def bound(self, params: tuple, modules: tuple | None = None):
        """``params`` (one seed's, or vmapped slices) in the template's networks, restored on exit.

        What ``TensorDict.to_module(module, return_swap=True)`` and back do, through each leaf's slot (the dict
        holding it, resolved once per module): 2 dict writes per tensor instead of a recursive walk of the module
        tree each way (its cost per vmapped update: benchmarks/RESULTS.md §17.2)."""
        modules = self.modules if modules is None else modules
        slots = [self._slots(p, m) for p, m in zip(params, modules)]
        old = []
        for p, (keys, where) in zip(params, slots):
            leaves = [p.get(key) for key in keys]
            old.append([store[name] for store, name in where])
            for (store, name), leaf in zip(where, leaves):
                store[name] = leaf
        try:
            yield
        finally:
            for (_, where), saved in zip(slots, old):
                for (store, name), leaf in zip(where, saved):
                    store[name] = leaf

    def _slots(self, params, module) -> tuple[list, list]:
        """``(leaf keys of params, [(the module's _parameters or _buffers dict, name)] for each)``, cached."""
        cache = self._slot_cache
        if id(module) not in cache:
            keys = list(params.keys(include_nested=True, leaves_only=True))
            where = []
            for key in keys:
                key = key if isinstance(key, tuple) else (key,)
                sub = module
                for part in key[:-1]:
                    sub = sub._modules[part]
                where.append((sub._parameters if key[-1] in sub._parameters else sub._buffers, key[-1]))
            cache[id(module)] = (keys, where)
        return cache[id(module)]

    def seed(self, k: int):
        """The template loss computes with seed ``k``'s networks inside (e.g. its IGM check)."""
        return self.bound(tuple(p[k] for p in self.params))

    def _seed_loss(self, params: tuple, td: TensorDictBase) -> torch.Tensor:
        with self.bound(params):
            return total_loss(self.template(td))

    def loss(self, td: TensorDictBase) -> torch.Tensor:
        """Each seed's objective on its own minibatch: ``td [N, *B]`` -> ``[N]`` (differentiable). The inputs are
        not validated here (data-dependent checks cannot run under vmap): ``SeedLearner.add`` validates them."""
        before = self.template.check_inputs
        self.template.check_inputs = False
        try:
            return torch.vmap(self._seed_loss)(self.params, td)
        finally:
            self.template.check_inputs = before

    def _seed_call(self, method: str, key, params: tuple, td: TensorDictBase) -> torch.Tensor:
        with self.bound(params):
            return getattr(self.template, method)(td.clone(False)).get(key)

    def map(self, method: str, key, td: TensorDictBase) -> torch.Tensor:
        """Each seed's ``template.<method>(td_k)`` (one that returns a tensordict), read at ``key``: ``td [N, *B]`` ->
        ``[N, ...]`` (no grad; e.g. PQN's ``value_targets``). Unvalidated under vmap, as :meth:`loss`."""
        before = self.template.check_inputs
        self.template.check_inputs = False
        try:
            with torch.no_grad():
                return torch.vmap(functools.partial(self._seed_call, method, key))(self.params, td)
        finally:
            self.template.check_inputs = before

    def _seed_act(self, online: tuple, inputs: tuple):
        with self.bound(online, self.modules[: len(self.online)]):
            return self.template.agent_net(*inputs)

    def act(self, *inputs):
        """The agents' forward on the joint env batch: inputs ``[N*E, ...]`` (seed-major), outputs ``[N*E, ...]``."""
        split = tuple(None if x is None else x.reshape(self.n, -1, *x.shape[1:]) for x in inputs)  # [N, E, ...]
        out = torch.vmap(self._seed_act)(self.online, split)  # [N, E, ...]
        return tree_map(lambda y: y.reshape(-1, *y.shape[2:]), out)  # [N*E, ...]

    def _state(self, module) -> dict:
        with warnings.catch_warnings():  # torchrl warns on any access to target params without an updater
            warnings.filterwarnings("ignore", message="No target network updater")
            return module.state_dict()

    def seed_state_dict(self, k: int) -> dict:
        """Seed ``k``'s loss-module state, in a single run's format (its checkpoint's ``loss_module``): the stacked
        entries' slice k, and seed k's own loss module for the loss's unstacked buffers (MAVEN's last L_RL,
        which seed k's z-policy trainer reports there)."""
        own = self._state(self.losses[k])
        return {key: v[k].clone() if v.ndim == own[key].ndim + 1 else own[key].clone()
                for key, v in self._state(self.template).items()}

    def load_seed_state_dicts(self, states: list[dict]) -> None:
        """Write N single-run loss-module states into the stacked parameters (in place), and the unstacked
        buffers into each seed's own loss module."""
        stacked = self._state(self.template)
        for loss, state in zip(self.losses, states):
            loss.load_state_dict({key: v for key, v in state.items() if stacked[key].ndim == v.ndim}, strict=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No target network updater")
            self.template.load_state_dict({key: torch.stack([s[key] for s in states]) for key in states[0]
                                           if stacked[key].ndim == states[0][key].ndim + 1}, strict=False)


def _stack_params(params: list[TensorDictParams]) -> TensorDictParams:
    """``[N, ...]`` stack of N modules' ``TensorDictParams``; parameters stay parameters, buffers buffers."""
    stacked = torch.stack([p.data for p in params])  # [N, ...]
    for key, leaf in params[0].items(True, True):
        if isinstance(leaf, nn.Parameter):
            stacked.set(key, nn.Parameter(stacked.get(key)))
    return TensorDictParams(stacked, no_convert=True)


class SeedAgents(nn.Module):
    """The N seeds' agent networks as one module on the joint env batch (the collection/evaluation policy's
    network): :meth:`SeedStack.act` with the template agent's sizes and tensordict keys."""

    def __init__(self, stack: SeedStack):
        super().__init__()
        self.stack = stack  # not a module: the stacked parameters are the learner's, not registered twice
        agent = stack.template.agent_net
        self.n_agents, self.n_actions, self.is_recurrent = agent.n_agents, agent.n_actions, agent.is_recurrent

    def forward(self, *inputs):
        return self.stack.act(*inputs)

    def acting_weights(self) -> TensorDictBase:
        """The stacked online networks this module acts with (views; what ``collector='async'`` keeps in step)."""
        return TensorDict({str(i): params.data for i, params in enumerate(self.stack.online)})

    def policy_module(self, group: str) -> TensorDictModule:
        keys = self.stack.template.agent_net.policy_module(group)
        return TensorDictModule(self, in_keys=keys.in_keys, out_keys=keys.out_keys)


class SeedNets(nn.Module):
    """N modules of one architecture as one module on a seed-major batch ``[N*E, ...]``: ``torch.vmap`` over
    their stacked parameters, seed k's rows through seed k's parameters (e.g. MAVEN's z-policy network
    choosing each env's z at reset). The N modules keep training on their own (seed k's optimizer steps
    its module); :meth:`sync` copies their current parameters into the stack."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.n = len(nets)
        object.__setattr__(self, "nets", list(nets))  # not submodules: the stack is a read-only copy of them
        self.template = copy.deepcopy(nets[0])
        self.sync()

    def sync(self) -> None:
        """The N modules' current parameters and buffers into the stack ``[N, ...]``."""
        self.params = torch.stack([TensorDict.from_module(net).data for net in self.nets])  # [N, ...]

    def _one(self, params, x: torch.Tensor):
        old = params.to_module(self.template, return_swap=True)
        try:
            return self.template(x)
        finally:
            old.to_module(self.template)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = x.reshape(self.n, -1, *x.shape[1:])  # [N, E, ...]
        out = torch.vmap(self._one)(self.params, split)  # [N, E, ...]
        return out.reshape(-1, *out.shape[2:])  # [N*E, ...]


# ---------------------------------------------------------------------------------------------- the population
@dataclass
class Population:
    """All seeds of one run (N >= 1) and what the loop needs of them.

    Attributes:
        runs: each seed's single-run config (what its run directory's config.json holds).
        info: what the trainer read off the env (n_agents, n_actions, shapes, masks).
        seed_parts: each seed's algorithm parts (loss module, extra modules, hooks).
        loss: the loss module the learner optimises: a lone seed's own (N = 1) or the stacked template.
        stack: the stacking of N > 1 seeds' networks (None for one seed: the identity).
        extras: the algorithm's env transforms and extra modules on the joint env batch.
        base_env: the env made while building one seed's parts (its training env reuses it), else None.
    """

    runs: list
    info: EnvInfo
    seed_parts: list[AlgoParts]
    loss: Any
    stack: SeedStack | None
    extras: JointExtras
    base_env: Any = None

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def acting_net(self) -> nn.Module:
        """The agents acting on the joint env batch (the collection and greedy policies' network)."""
        return self.loss.agent_net if self.stack is None else SeedAgents(self.stack)

    def seed_scope(self, k: int):
        """Inside, ``self.loss`` computes with seed ``k``'s networks (a no-op for one seed)."""
        return contextlib.nullcontext() if self.stack is None else self.stack.seed(k)

    def after_batch(self, batch: TensorDictBase, frames: int) -> list[dict]:
        """Each seed's ``after_batch`` hook on its own rows of ``batch [N, E, T]`` (their metrics), then the
        joint extras refreshed."""
        out = [parts.after_batch(batch[k], frames) if parts.after_batch else {} for k, parts in
               enumerate(self.seed_parts)]
        self.extras.sync()
        return out

    def make_learner(self, time_steps: int):
        """The learner of these seeds, as the algorithm's row makes it (``AlgoSpec.make_learner``): by default a
        :class:`~torchrl_vd.train.learner.Learner` for one, a :class:`~torchrl_vd.train.learner.SeedLearner` over the
        stacked networks for several."""
        spec = get_algo(self.runs[0].algo)
        return spec.make_learner(self.runs[0], self.loss, self.seed_parts[0].extra_modules, time_steps=time_steps,
                                 stack=self.stack)

    def load(self, learner, states: list[dict]) -> None:
        """Restore every seed from its checkpoint state (networks, extra modules, learner)."""
        from torchrl_vd.train.checkpoint import learner_state

        if self.stack is None:
            restore_modules(states[0], self.loss, extra_modules=self.seed_parts[0].extra_modules)
        else:
            self.stack.load_seed_state_dicts([s["loss_module"] for s in states])
            for state, parts in zip(states, self.seed_parts):
                restore_modules(state, None, extra_modules=parts.extra_modules)
        learner.load_seed_states([learner_state(s) for s in states])
        self.extras.sync()

    def trained_loss(self, k: int):
        """Seed ``k``'s loss module holding its trained networks (for its ``TrainResult``)."""
        if self.stack is None:
            return self.loss
        restore_modules({"loss_module": self.stack.seed_state_dict(k)}, self.seed_parts[k].loss_module)
        return self.seed_parts[k].loss_module


def build_population(runs: list, *, stacked: bool | None = None) -> Population:
    """The population of the per-seed configs ``runs``; stacked when there are several (or ``stacked=True``: the
    vmapped path at N = 1, for tests)."""
    if len(runs) == 1 and not stacked:
        run = runs[0]
        torch.manual_seed(run.seed)
        base = make_env(run.env, num_envs=run.num_envs, device=run.device, seed=run.seed, **run.env_kwargs)
        info = describe_env(base)
        run.check_env(info)  # options the env cannot serve, before any work
        parts = get_algo(run.algo).parts(run, info).to(run.device)
        return Population(runs, info, [parts], parts.loss_module, None,
                          JointExtras(parts.env_transforms, _nothing), base)
    template, seed_parts, info = build_seed_parts(runs)
    stack = SeedStack([p.loss_module for p in seed_parts], template.loss_module)
    return Population(runs, info, seed_parts, stack.template, stack, joint_extras(seed_parts))


def build_seed_parts(runs: list) -> tuple[AlgoParts, list[AlgoParts], EnvInfo]:
    """``(template parts, [parts of each seed], env info)`` for the per-seed single-run configs ``runs``.

    Seed k's parts are built exactly as a lone run of seed k builds them (``torch.manual_seed(k)``, the env of
    seed k, which may draw from the torch RNG, then the algorithm's parts), so its initial networks equal the
    lone run's bitwise. The template (whose loss parameters :class:`SeedStack` replaces) is built first, so that
    the RNG afterwards is where the last seed's lone run has it.
    """
    spec = get_algo(runs[0].algo)
    template = None
    seed_parts = []
    for run in runs:
        torch.manual_seed(run.seed)
        info = describe_env(make_env(run.env, num_envs=run.num_envs, device=run.device, seed=run.seed,
                                     **run.env_kwargs))
        run.check_env(info)  # options the env cannot serve, before any work
        if template is None:
            template = spec.parts(run, info).to(run.device)
            torch.manual_seed(run.seed)
            make_env(run.env, num_envs=run.num_envs, device=run.device, seed=run.seed, **run.env_kwargs)
        parts = spec.parts(run, info).to(run.device)
        seed_parts.append(parts)
    return template, seed_parts, info


def joint_extras(seed_parts: list[AlgoParts]) -> JointExtras:
    """The algorithm's env transforms and extra modules for every seed at once (its ``AlgoParts.joint``); extras
    without parameters are the same for every seed, so seed 0's serve all."""
    if seed_parts[0].joint is not None:
        return seed_parts[0].joint(seed_parts)
    trainable = [name for name, m in seed_parts[0].extra_modules.items() if any(True for _ in m.parameters())]
    if trainable:
        raise ValueError(f"The algorithm's extra modules {trainable} have parameters but its parts give no `joint` "
                         "hook to serve N seeds at once: register it with vectorized_seeds=False, or run each seed "
                         "as a separate process.")
    return JointExtras(seed_parts[0].env_transforms, _nothing)


def _nothing() -> None:
    """The sync of extras that have nothing to refresh."""


__all__ = ["Population", "SeedAgents", "SeedNets", "SeedStack", "build_population", "build_seed_parts",
           "joint_extras", "seed_config", "seed_dir"]
