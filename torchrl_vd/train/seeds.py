"""Many seeds in one process (``TrainConfig.seeds``, ``torchrl-vd train --seeds 0-7``; issue #18).

N independent runs train together: one env batch of N × ``num_envs`` (seed k's envs are rows
k·num_envs … (k+1)·num_envs − 1), networks whose parameters carry a leading seed dimension, one replay
buffer holding every seed's transitions side by side, and one optimizer over the stacked parameters.

Independence (tests/test_vectorized_seeds.py asserts each with exact equality):

* **networks**: each seed's modules are built exactly as ``train()`` builds them for that seed (under
  ``torch.manual_seed(k)``, after making the env seed k would make), then stacked
  (:class:`SeedStack`). The loss runs once per call under ``torch.vmap`` over the seed dimension, each
  seed's slice bound into one template loss module with tensordict's ``to_module``: seed k's loss reads
  only seed k's parameters and data.
* **replay**: every seed draws its own uniform indices (with replacement) into its own column of the
  buffer (:meth:`SeedLearner.minibatches`).
* **gradients**: the summed loss Σ_k L_k gives each seed's slice exactly ∇L_k; the global grad-norm
  clip is taken per seed, over that seed's slice of every parameter (:func:`clip_grad_norm_per_seed_`).
* **optimizer and targets**: Adam/RMSprop and the Polyak / hard target updates are elementwise, so one
  optimizer / updater over stacked tensors equals N independent ones.
* **ε**: the same schedule ε(frames) for every seed (frames = one seed's frames).

What is shared, and why runs do not equal N sequential runs step for step: one process has one torch
RNG stream, so the ε-greedy draws, replay indices and env resets of seed k come from the shared stream
(and the env batch is seeded once, with the first seed), not from seed k's own stream as in a single
run. A vectorized run is therefore equal to N sequential runs *in distribution*; the initial networks
are equal bitwise. One seed (``seeds=(k,)``) runs today's single run, bitwise (:func:`train_seeds`).

Why vmap over stacked parameters (``TensorDict.from_modules``-style stacking + ``to_module`` in
``torch.vmap``, tensordict's ensemble recipe) and not folding the seed into ``PerAgentLinear``'s agent
axis: it runs every algorithm's loss, mixer and hypernetworks unchanged (folding covers only the agent
MLP). Measured on this 2-core box (loaded, load 5): a QMIX 64x64 step (forward + backward, batch 128,
VMAS balance) took 4.8 ms for one seed and 14.8 ms vmapped over 4 seeds; the per-call Python overhead
is paid once for all seeds, the maths stays per seed (batched matmuls).

MAVEN: its loss (agents, mixer, and the discriminator, a plain submodule stacked in place) is stacked as
any other; each seed keeps its own z-policy and REINFORCE trainer (``AlgoParts.after_batch`` on that seed's
rows of the batch, its own Adam and episode buffer: 100 tiny steps per batch, not worth vmapping), and the
envs draw z from every seed's z-policy at once (:class:`SeedNets`, synced after each trainer step).

Supported: every registered algorithm, MLP and GRU agents, on the ``matrix``, ``vmas``, ``pettingzoo``,
``lbf`` and ``rware`` families with ``collector="single"``; other families are refused before any work starts
(TrainConfig.validate). GRU agents are switched to ``vmappable`` (:class:`SeedStack`): their GRU runs cell by
cell, without the fused ``nn.GRU`` call (no vmap batching rule) or the unroll's data-dependent branches.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import time
import types
import warnings
from pathlib import Path
from typing import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictParams
from torch import nn
from torch.utils._pytree import tree_map

from torchrl_vd.envs.registry import describe_env, make_env
from torchrl_vd.modules.policies import make_agent_policies
from torchrl_vd.train.algos import get_algo
from torchrl_vd.train.checkpoint import CHECKPOINT, learner_state, load_checkpoint, restore_modules, save_checkpoint
from torchrl_vd.train.collectors import make_collector
from torchrl_vd.train.environment import build_env
from torchrl_vd.train.evaluation import NO_EVAL, greedy_rollout, igm_gap, return_stats, win_stats
from torchrl_vd.train.guards import StopSignal, check_finite
from torchrl_vd.train.learner import EpsilonSchedule, Learner, _to_storage, _validated_inputs
from torchrl_vd.train.plot import draw_beside
from torchrl_vd.train.result import SeedsResult, TrainResult
from torchrl_vd.train.run_files import (
    Progress,
    RunFiles,
    atomic_write_text,
    check_run_dir,
    metric_columns,
    metric_row,
)
from torchrl_vd.train.stats import t_interval
from torchrl_vd.train.threads import set_default_threads


def seed_dir(out_dir: str | Path, seed: int) -> Path:
    """Seed ``seed``'s run directory under a many-seeds ``out_dir``: ``out_dir/seed_<seed>``."""
    return Path(out_dir) / f"seed_{seed}"


def seed_config(cfg, seed: int, out_dir: Path):
    """The single-run config of seed ``seed`` (what its run directory's config.json and checkpoint hold)."""
    run = seed_dir(out_dir, seed)
    return dataclasses.replace(cfg, seed=seed, seeds=(), out_dir=str(run), resume=str(run) if cfg.resume else None)


# ---------------------------------------------------------------------------------------------- networks
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
        if not template.delay_value:
            raise ValueError(f"{type(template).__name__}(delay_value=False) has no target parameters to stack; "
                             "many seeds in one process need delay_value=True (train() builds it so).")
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
        self.params = self.online + tuple(template._modules[f"target_{n}_params"] for n in self.names)
        self.modules = online_modules + tuple(template.target(n) for n in self.names)
        for module in (sub for net in self.modules for sub in net.modules()):
            if hasattr(module, "vmappable"):  # recurrent nets: the GRU as cell steps, which torch.vmap can run
                module.vmappable = True

    @contextlib.contextmanager
    def bound(self, params: tuple, modules: tuple | None = None):
        """``params`` (one seed's, or vmapped slices) in the template's networks, restored on exit."""
        modules = self.modules if modules is None else modules
        old = [p.to_module(m, return_swap=True) for p, m in zip(params, modules)]
        try:
            yield
        finally:
            for p, m in zip(old, modules):
                p.to_module(m)

    def seed(self, k: int):
        """The template loss computes with seed ``k``'s networks inside (e.g. its IGM check)."""
        return self.bound(tuple(p[k] for p in self.params))

    def _seed_loss(self, params: tuple, td: TensorDictBase) -> torch.Tensor:
        with self.bound(params):
            return self.template(td)["loss"]

    def loss(self, td: TensorDictBase) -> torch.Tensor:
        """Each seed's objective on its own minibatch: ``td [N, *B]`` -> ``[N]`` (differentiable). The inputs are
        not validated here (data-dependent checks cannot run under vmap): :meth:`SeedLearner.add` validates them."""
        with _validated_inputs(self.template):
            return torch.vmap(self._seed_loss)(self.params, td)

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

    def policy_module(self, group: str) -> TensorDictModule:
        keys = self.stack.template.agent_net.policy_module(group)
        return TensorDictModule(self, in_keys=keys.in_keys, out_keys=keys.out_keys)


# ---------------------------------------------------------------------------------------------- learner
def clip_grad_norm_per_seed_(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for each seed of stacked parameters ``[N, ...]``: seed k's global norm
    is taken over its slice of every gradient, and only its slice is scaled. Returns the norms ``[N]``."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()  # [N]
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # [N], clip_grad_norm_'s formula
    torch._foreach_mul_(grads, [coef.reshape(-1, *[1] * (g.ndim - 1)) for g in grads])  # [N, 1, ...] each
    return norms


class SeedLearner(Learner):
    """The :class:`~torchrl_vd.train.learner.Learner` of stacked seeds: the same buffer, optimizer and target
    updater (built on the template's stacked parameters), with each seed's transitions in its own column of
    the buffer (``[capacity, N]``), per-seed minibatches, the vmapped loss and per-seed clipping."""

    def __init__(self, cfg, stack: SeedStack, *, time_steps: int):
        self.stack = stack
        super().__init__(cfg, stack.template, time_steps=time_steps)

    def stat_lead(self) -> tuple[int, ...]:
        return (self.stack.n,)  # each seed standardises its rewards by its own statistics

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
        transitions, ``chunk`` draws per gather as in :func:`~torchrl_vd.train.learner._minibatches`.

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

    def objective(self, sample: TensorDictBase) -> torch.Tensor:
        return self.stack.loss(sample)  # [N]

    def clip_grads(self) -> None:
        clip_grad_norm_per_seed_(self.params, self.grad_clip)

    def seed_state_dict(self, k: int) -> dict:
        """Seed ``k``'s part of :meth:`state_dict`, in a single run's format (its own checkpoint)."""
        n = len(self.replay_buffer)
        opt = self.optimizer.state_dict()
        return {
            "loss_module": self.stack.seed_state_dict(k),
            "optimizer": {**opt, "state": {i: {name: v[k].clone() if v.ndim else v.clone() for name, v in s.items()}
                                           for i, s in opt["state"].items()}},  # 0-dim: the shared step count
            "replay_buffer": {"data": self.replay_buffer.storage._storage[:n, k].clone() if n else None,
                              "writer": self.replay_buffer._writer.state_dict()},
            "updates": self.updates,
            "updater_counter": getattr(self.updater, "counter", None),
            "reward_stats": None if self.reward_stats is None else self.reward_stats.seed_state_dict(k),
        }

    def load_seed_states(self, states: list[dict]) -> None:
        """Restore from N single-run learner states (:func:`~torchrl_vd.train.checkpoint.learner_state`)."""
        opts = [s["optimizer"] for s in states]
        state = {i: {name: torch.stack([o["state"][i][name] for o in opts]) if v.ndim else v
                     for name, v in s.items()} for i, s in opts[0]["state"].items()}
        data = [s["replay_buffer"]["data"] for s in states]
        self.load_state_dict({
            "optimizer": {**opts[0], "state": state},
            "replay_buffer": {"data": None if data[0] is None else torch.stack(data, dim=1),  # [M, N(, L)]
                              "writer": states[0]["replay_buffer"]["writer"]},
            "updates": states[0]["updates"],
            "updater_counter": states[0]["updater_counter"],
            "reward_stats": None if states[0].get("reward_stats") is None or self.reward_stats is None
            else type(self.reward_stats).stack_states([s["reward_stats"] for s in states]),
        })


# ---------------------------------------------------------------------------------------------- training
def train_seeds(cfg, *, train_one: Callable) -> SeedsResult:
    """Train ``cfg.seeds`` (N runs) in one process; ``train_one(cfg)`` is the single-run trainer.

    One seed runs ``train_one`` on that seed's config (today's single run, bitwise); several run
    vectorized (:func:`train_vectorized`). Writes ``out_dir/seed_<k>/`` per seed (config.json, metrics.csv,
    summary.json, checkpoint.pt, learning_curve.png) and the aggregate ``out_dir/summary.json`` (per-seed
    final greedy returns, mean and 95% Student-t interval) and ``out_dir/learning_curve.png`` (every seed).
    """
    out = Path(cfg.out_dir or f"runs/{cfg.algo}-{cfg.env.replace('/', '_')}-seeds")
    check_run_dir(out, cfg.resume)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))  # what `--resume out` reads
    t0 = time.perf_counter()
    if len(cfg.seeds) == 1:
        runs = [train_one(seed_config(cfg, cfg.seeds[0], out))]
    else:
        runs = train_vectorized(cfg, out)
    summary = aggregate_summary(cfg, runs, time.perf_counter() - t0)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    try:
        from torchrl_vd.train.plot import plot_runs  # matplotlib is imported only when the PNG is drawn

        plot_runs([r.out_dir for r in runs], out / "learning_curve.png",
                  title=f"{cfg.algo} on {cfg.env}, seeds {', '.join(map(str, cfg.seeds))}")
    except Exception as err:  # a plotting failure must never lose finished runs
        summary["plot_error"] = repr(err)
    return SeedsResult(runs, summary, out)


def aggregate_summary(cfg, runs: list[TrainResult], wall: float) -> dict:
    """out_dir/summary.json: the seeds' final greedy returns, their mean and the 95% Student-t half-width."""
    finals = [r.summary["final_eval_return"] for r in runs]
    try:
        mean, half = t_interval(finals)
    except ImportError:  # SciPy is the `reproduce` extra: the mean without its interval
        mean, half = float(sum(finals) / len(finals)), math.nan
    trained = sum(r.summary["frames_per_s"] * r.summary["wall_time_s"] for r in runs)  # frames trained here
    summary = {
        "algo": cfg.algo,
        "env": cfg.env,
        "seeds": list(cfg.seeds),
        "vectorized": len(runs) > 1,
        "frames": runs[0].summary["frames"],  # per seed
        "wall_time_s": wall,
        "seed_frames_per_s": trained / wall if wall > 0 else math.nan,
        "final_eval_return": mean,
        "final_eval_return_ci95": half,
        "final_eval_return_per_seed": finals,
        "run_dirs": [str(r.out_dir) for r in runs],
        "interrupted": any(r.summary["interrupted"] for r in runs),
    }
    for key in ("final_igm_violation_rate", "final_igm_value_gap", "final_eval_win_rate"):
        if all(key in r.summary for r in runs):
            summary[key] = sum(r.summary[key] for r in runs) / len(runs)  # mean over seeds
    return summary


def build_seed_parts(runs: list) -> tuple:
    """``(template parts, [parts of each seed], env info)`` for the seeds' single-run configs ``runs``.

    Seed k's parts (loss module, and extra modules such as MAVEN's z-policy) are built exactly as ``train()``
    builds them for seed k (``torch.manual_seed(k)``, make the env of seed k, which may draw from the torch
    RNG, then the algorithm's parts), so its initial networks equal the single run's bitwise. The template
    (whose loss parameters :class:`SeedStack` replaces) is built first, so that the RNG afterwards is where
    the last seed's single run has it.
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
            template = spec.parts(run, info)
            template.loss_module.to(run.device)
            torch.manual_seed(run.seed)
            make_env(run.env, num_envs=run.num_envs, device=run.device, seed=run.seed, **run.env_kwargs)
        parts = spec.parts(run, info)
        parts.loss_module.to(run.device)
        seed_parts.append(parts)
    return template, seed_parts, info


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


def joint_extra_modules(seed_parts: list) -> dict:
    """The seeds' extra modules (MAVEN: ``z_policy``) as one module each on the joint env batch: a copy of seed
    0's whose parameter-holding network runs as :class:`SeedNets` over every seed's. A module without
    parameters (the uniform z-policy) is the same for every seed and is used as it is."""
    joint = {}
    for name, module in seed_parts[0].extra_modules.items():
        if not any(True for _ in module.parameters()):
            joint[name] = module
            continue
        if not isinstance(getattr(module[0] if hasattr(module, "__getitem__") else None, "module", None), nn.Module):
            raise ValueError(f"Extra module {name!r} ({type(module).__name__}) is not shaped like make_z_policy's "
                             "(a sequence whose first entry wraps the network with parameters): register the "
                             "algorithm with vectorized_seeds=False, or run the seeds as separate processes.")
        inner = [parts.extra_modules[name][0].module for parts in seed_parts]  # make_z_policy's logits network
        joint[name] = copy.deepcopy(module)
        joint[name][0].module = SeedNets(inner)
    return joint


def _sync(joint: dict) -> None:
    """Copy each seed's extra modules' current parameters into the joint ones (after their own updates)."""
    for module in joint.values():
        for sub in module.modules():
            if isinstance(sub, SeedNets):
                sub.sync()


def _joint_transforms(parts, joint: dict) -> list:
    """``parts.env_transforms`` with the template's extra modules swapped for the joint ones (the factories are
    ``functools.partial`` objects, e.g. ``NoiseTransform(z_policy, ...)``)."""
    swap = {id(parts.extra_modules[name]): module for name, module in joint.items()}
    out = []
    for factory in parts.env_transforms:
        if isinstance(factory, functools.partial):
            factory = functools.partial(factory.func, *[swap.get(id(a), a) for a in factory.args],
                                        **{k: swap.get(id(v), v) for k, v in factory.keywords.items()})
        out.append(factory)
    return out


def train_vectorized(cfg, out: Path) -> list[TrainResult]:
    """The vectorized many-seeds run (see the module docstring); one :class:`TrainResult` per seed."""
    seeds, n = cfg.seeds, len(cfg.seeds)
    cfg.check_runtime()
    set_default_threads(cfg.threads)
    runs = [seed_config(cfg, k, out) for k in seeds]
    for run in runs:
        check_run_dir(Path(run.out_dir), run.resume)
    states = [load_checkpoint(run.resume, missing_ok=True) for run in runs] if cfg.resume else [None] * n
    if any(s is None for s in states):
        if cfg.resume:
            warnings.warn(f"{cfg.resume}: not every seed has a checkpoint yet; starting all seeds again from frame 0.",
                          RuntimeWarning, stacklevel=3)
        states = [None] * n

    parts, seed_parts, info = build_seed_parts(runs)
    seed_losses = [p.loss_module for p in seed_parts]
    stack = SeedStack(seed_losses, parts.loss_module)
    template = stack.template
    joint_extra = joint_extra_modules(seed_parts)  # MAVEN: every seed's z-policy on the joint env batch
    transforms = _joint_transforms(parts, joint_extra)
    # the joint run: N x num_envs envs, N x frames_per_batch frames per batch (seed-major rows). The torch RNG
    # continues from the last seed's network initialisation, as a single run's continues from its own.
    joint = dataclasses.replace(cfg, seeds=(), seed=seeds[0], num_envs=n * cfg.num_envs, frames=n * cfg.frames,
                                frames_per_batch=n * cfg.frames_per_batch, eval_episodes=n * cfg.eval_episodes,
                                out_dir=str(out), resume=None)
    env = build_env(joint, transforms, template.agent_net)
    eval_env = build_env(joint, transforms, template.agent_net, seed=seeds[0] + 10_000)
    learner = SeedLearner(cfg, stack, time_steps=cfg.frames_per_batch // cfg.num_envs)
    epsilon = EpsilonSchedule.from_config(cfg)
    greedy, explore = make_agent_policies(SeedAgents(stack), action_mask=info.has_action_mask, eps_init=cfg.eps_start,
                                          eps_end=cfg.eps_start, group=info.group, keep_values=False)
    egreedy = explore[-1]

    frames, next_eval = 0, float(cfg.eval_every or math.inf)
    if states[0] is not None:
        stack.load_seed_state_dicts([s["loss_module"] for s in states])
        learner.load_seed_states([learner_state(s) for s in states])
        for state, seed_part in zip(states, seed_parts):
            for name, module in seed_part.extra_modules.items():
                module.load_state_dict(state["extra_modules"][name])
        _sync(joint_extra)
        frames, next_eval = states[0]["frames"], states[0]["next_eval"]
        if frames >= cfg.frames and (out / "summary.json").exists():
            raise ValueError(f"The runs in {cfg.resume} already reached {frames} frames (frames={cfg.frames}); "
                             "raise it with --set frames=N to train further.")
    collector = None
    if frames < cfg.frames:  # (else: killed after its final checkpoints, before the summaries)
        collector = make_collector(joint, env, None, explore, total_frames=n * (cfg.frames - frames))
        collector.set_seed(seeds[0] + frames)
        if states[0] is not None:  # checkpoints fall on episode boundaries: the same reset, then the saved RNG
            collector.reset()
    if states[0] is not None:
        torch.set_rng_state(states[0]["torch_rng"])

    rows_before = states[0]["metrics_rows"] if states[0] is not None else 0
    columns = metric_columns(info, parts.metric_columns)
    files = [RunFiles(Path(run.out_dir), run, columns, keep_rows=rows_before if cfg.resume else None) for run in runs]
    metrics: list[list[dict]] = [[] for _ in seeds]
    t0, frames_at_start = time.perf_counter(), frames
    next_ckpt = (frames // cfg.checkpoint_every + 1) * cfg.checkpoint_every if cfg.checkpoint_every else math.inf
    bar = Progress(joint, initial=n * frames)
    stop = StopSignal()
    ckpt_stats = {"checkpoints": 0, "checkpoint_time_s": 0.0}

    def checkpoint() -> None:
        t = time.perf_counter()
        collector.set_seed(seeds[0] + frames)  # episode boundary, as a single run's checkpoint
        collector.reset()
        for k, run in enumerate(runs):
            files[k].sync()
            save_checkpoint(Path(run.out_dir) / CHECKPOINT, cfg=run, extra_modules=seed_parts[k].extra_modules,
                            frames=frames,
                            learner=types.SimpleNamespace(state_dict=lambda k=k: learner.seed_state_dict(k)),
                            metrics_rows=rows_before + len(metrics[k]), next_eval=next_eval)
        ckpt_stats["checkpoints"] += 1
        ckpt_stats["checkpoint_time_s"] += time.perf_counter() - t

    def run_eval() -> list[dict]:
        """Per seed: greedy return and std over its ``eval_episodes`` envs (+ its IGM gap, ``cfg.igm_eval``)."""
        roll, returns, valid = greedy_rollout(greedy, eval_env, seed=seeds[0] + 10_000)  # [N*E, T], [N*E], [N*E, T]
        roll = roll.reshape(n, cfg.eval_episodes, -1)  # [N, E, T]
        returns, valid = returns.reshape(n, -1), valid.reshape(n, cfg.eval_episodes, -1)  # [N, E], [N, E, T]
        outs = []
        for k in range(n):
            out_k = {**NO_EVAL, **return_stats(returns[k]), **win_stats(roll[k], valid[k])}
            if cfg.igm_eval:
                with stack.seed(k), torch.no_grad():
                    out_k.update(igm_gap(template, roll[k], valid[k], cfg.igm_max_joint_actions, cfg.igm_max_states))
            outs.append(out_k)
        return outs

    interrupted = False
    try:
        egreedy.eps.fill_(epsilon(frames))
        last_eval: tuple[int, list[dict]] | None = None  # (frames, per-seed results) of the latest evaluation
        t_iter, cpu0 = time.perf_counter(), time.process_time()
        for batch in collector if collector is not None else ():  # [N*num_envs, T]
            t_collected = time.perf_counter()
            check_finite(batch, n * frames)
            batch = batch.reshape(n, cfg.num_envs, batch.shape[-1])  # [N, num_envs, T]
            frames += batch[0].numel()
            learner.add(batch)
            extra = [p.after_batch(batch[k], frames) if p.after_batch else {} for k, p in enumerate(seed_parts)]
            _sync(joint_extra)  # (MAVEN: each seed's z-policy stepped on its own episodes)
            losses = learner.update(cfg.updates_per_batch) if frames >= cfg.learning_starts else []  # [N] each
            t_updated = time.perf_counter()
            eps = epsilon(frames)
            egreedy.eps.fill_(eps)
            evaluation = [dict(NO_EVAL)] * n
            if frames >= next_eval:
                last_eval = (frames, run_eval())
                evaluation = [{key: v for key, v in e.items() if key in NO_EVAL} for e in last_eval[1]]
                next_eval += cfg.eval_every
            elapsed = time.perf_counter() - t0
            loss = torch.stack(losses).mean(0) if losses else None  # [N]
            for k in range(n):
                row = metric_row(batch[k], frames=frames, updates=learner.updates, eps=eps,
                                 loss=None if loss is None else loss[k], evaluation=evaluation[k],
                                 fps=(frames - frames_at_start) / elapsed, elapsed=elapsed,
                                 times=(t_iter, t_collected, t_updated), cpu_time=time.process_time() - cpu0,
                                 extra=extra[k])
                metrics[k].append(row)
                files[k].log(row)
            bar.update(batch.numel(), metrics[0][-1])
            if stop.requested:
                interrupted = True
                checkpoint()
                break
            if frames >= next_ckpt or frames >= cfg.frames:
                checkpoint()
                next_ckpt += cfg.checkpoint_every
            t_iter = time.perf_counter()
    finally:
        stop.restore()
        bar.close()
        if collector is not None:
            collector.shutdown()
        for f in files:
            f.close()
    wall = time.perf_counter() - t0
    pngs = [Path(run.out_dir) / "learning_curve.png" for run in runs]
    pngs_written = draw_beside([([run.out_dir], png, f"{cfg.algo} on {cfg.env}, seed {run.seed}")
                                for run, png in zip(runs, pngs)])  # during the final evaluation
    finals = last_eval[1] if last_eval is not None and last_eval[0] == frames else run_eval()  # (as train())
    results = []
    for k, run in enumerate(runs):
        summary = {
            "algo": cfg.algo, "env": cfg.env, "seed": run.seed, "frames": frames, "updates": learner.updates,
            "wall_time_s": wall,  # of the whole many-seeds process
            "frames_per_s": (frames - frames_at_start) / wall if wall > 0 else float("nan"),
            "final_eval_return": finals[k]["eval_return"], "final_eval_return_std": finals[k]["eval_return_std"],
            "eval_episodes": cfg.eval_episodes,
            **({"final_eval_win_rate": finals[k]["eval_win_rate"]} if info.has_battle_won else {}),
            **({"final_igm_violation_rate": finals[k]["igm_violation_rate"],
                "final_igm_value_gap": finals[k]["igm_value_gap"]} if cfg.igm_eval else {}),
            "interrupted": interrupted, "vectorized_seeds": list(seeds), **ckpt_stats,
        }
        files[k].write_summary(summary)
        restore_modules({"loss_module": stack.seed_state_dict(k)}, seed_losses[k])  # seed k's trained loss module
        policy, seed_explore = make_agent_policies(seed_losses[k].agent_net, action_mask=info.has_action_mask,
                                                   group=info.group)
        results.append(TrainResult(policy, seed_losses[k], env, metrics[k], summary, Path(run.out_dir), seed_explore,
                                   seed_parts[k], info))
    plot_errors = pngs_written()
    for png, result in zip(pngs, results):
        if str(png) in plot_errors:  # a plotting failure must never lose a finished run
            result.summary["plot_error"] = plot_errors[str(png)]
    return results


__all__ = ["SeedAgents", "SeedLearner", "SeedNets", "SeedStack", "build_seed_parts", "clip_grad_norm_per_seed_",
           "joint_extra_modules", "seed_dir", "train_seeds", "train_vectorized"]
