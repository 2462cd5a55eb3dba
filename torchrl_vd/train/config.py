"""Typed training configuration (one dataclass, a docstring under each field) and ``--set`` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import torch

from torchrl_vd.modules.agents import ACTIVATIONS
from torchrl_vd.train.algos import COLLECTORS, algorithms, get_algo
from torchrl_vd.train.options import coerce

#: Environment families whose adapter holds any number of env copies in one EnvBase, so N seeds run as one env
#: of N x num_envs: batched simulators (matrix, VMAS) and the adapters stepping N x num_envs raw Python envs in
#: turn (PettingZoo, LBF, RWARE: the learner, not the env, is what vectorizing seeds speeds up there) and SMAX
#: (one jax.vmap over every battle).
VECTORIZED_FAMILIES = ("matrix", "vmas", "pettingzoo", "lbf", "rware", "smax")
SEEDS_FORMS = "a range '0-3', a list '0,2,5', or both '0-2,7'"

#: ``--set`` prefixes that reach into the algorithm's typed options (``mixer.NAME`` = ``mixer_kwargs.NAME``).
OPTION_ALIASES = {"mixer": "mixer_kwargs", "loss": "loss_kwargs"}

#: Per environment family, the fields a user gets without ``--set`` (:meth:`TrainConfig.preset`, the CLI).
#: vmas: BenchMARL 1.5's off-policy VMAS shape (60 envs x 100 steps per batch, 2x256 MLP, batch 128, Polyak
#: 0.005) at 200 gradient steps per batch (BenchMARL: 1000, 5x the cost); no agent id: VMAS agents observe
#: their own positions, and BenchMARL gives none (QMIX on balance, 150k frames, seed 0: greedy return 105.6
#: without the id vs 55.6 with it, docs/RESULTS-real-tasks.md); a greedy evaluation every 30k frames.
#: pettingzoo: EPyMARL/pymarl's recurrent setup (GRU 64 agents, one gradient step on 32 episodes per
#: collected episode: 32 envs x 25 steps per batch and 32 updates, buffer 5000 episodes of MPE's 25 steps,
#: hard target update every 200 updates, ε to 0.05 over 50k frames). 32 updates per batch, not 4 (the
#: preset before 0.2.0): simple_spread QMIX seed 0 greedy −59.2 vs −69.2 at 200k frames, and −62.8 vs
#: −106.4 already at 40k (docs/RESULTS-real-tasks.md).
#: matrix: the TrainConfig defaults.
# EPyMARL's defaults for LBF/RWARE (uoe-agents/epymarl src/config/default.yaml, algs/qmix.yaml, vdn.yaml,
# envs/gymma.yaml): feed-forward agents (use_rnn False: fc 64 -> ReLU -> fc 64 -> ReLU -> Q) with agent id,
# Adam 5e-4, grad clip 10, γ 0.99, double Q, ε 1 -> 0.05 over 50k steps, one gradient step on 32 episodes per
# collected episode, hard target copy every 200 updates, buffer 5000 episodes, 100 greedy test episodes every
# 50k steps, standardise_rewards True. Vectorized here as 10 envs = 10 episodes per batch and 10 gradient steps;
# 32 episodes = 32 x T transitions for feed-forward agents.
_EPYMARL = dict(agent="mlp", hidden=(64, 64), agent_id=True, optimizer="adam", lr=5e-4, grad_clip=10.0,
                double_q=True, standardise_rewards=True, eps_start=1.0, eps_end=0.05, eps_frames=50_000, target_update=200, num_envs=10,
                updates_per_batch=10, eval_every=50_000, eval_episodes=100)
ENV_PRESETS: dict[str, dict[str, Any]] = {
    "vmas": dict(num_envs=60, frames_per_batch=6000, updates_per_batch=200, batch_size=128, hidden=(256, 256),
                 agent_id=False, eval_every=30_000),
    "pettingzoo": dict(agent="gru", hidden=(64,), num_envs=32, frames_per_batch=800, batch_size=800,
                       updates_per_batch=32, buffer_size=125_000, target_update=200, eps_frames=50_000,
                       eps_end=0.05),
    # LBF: 50-step episodes (time limit 50)
    "lbf": dict(_EPYMARL, frames_per_batch=500, batch_size=32 * 50, buffer_size=5000 * 50),
    # RWARE: 500-step episodes; buffer 400 episodes, not 5000 (2.5M transitions would take ~3 GB)
    "rware": dict(_EPYMARL, frames_per_batch=5000, batch_size=32 * 500, buffer_size=400 * 500),
    # JaxMARL's QMIX-RNN for SMAX (FLAIROx/JaxMARL baselines/QLearning/config/alg/qmix_rnn_smax.yaml): 16 envs x
    # 128 steps per batch, 8 gradient steps of 32 sequences of 128, GRU 512, Adam 5e-5, grad clip 10, hard
    # target copy every 10 of its updates = 80 gradient steps (qmix_rnn.py counts n_updates, one per batch of 8
    # gradient steps; target_update here counts gradient steps: copying every 10 gradient steps, this preset's
    # reading before 0.3, QMIX on 3m with GRU 64 diverged, loss 62 -> 3e5, win rate 0 at 512k frames),
    # ε 1 -> 0.05 over 10% of its 1e7 steps, learning from 10k steps, agent id,
    # rewards x10 for learning (REW_SCALE), the mixer's hypernetworks initialised orthogonal with gain 0.001
    # (MIXER_INIT_SCALE; QMIX's `init_scale`: SMAX's world state holds raw positions up to ~32, and with torch's
    # default initialisation QMIX's first losses were ~900 and it never won a battle of 3m in 512k frames).
    # The yaml is named ql_rnn_smax.yaml since JaxMARL commit edebe10.
    # Buffer 2000 sequences, not 5000 (memory); mixer widths (embed 64, hypernet 256) via --set mixer.*.
    "smax": dict(agent="gru", hidden=(512, 512), agent_id=True, optimizer="adam", lr=5e-5, grad_clip=10.0,
                 num_envs=16, frames_per_batch=16 * 128, seq_len=128, batch_size=32 * 128, updates_per_batch=8,
                 buffer_size=2000 * 128, target_update=80, eps_start=1.0, eps_end=0.05, eps_frames=1_000_000,
                 learning_starts=10_000, eval_every=204_800, eval_episodes=32, reward_scale=10.0),
}
#: Per (env family, algorithm), applied after the algorithm's own presets: options of one algorithm's modules
#: (a family preset reaches every algorithm, whose mixers take different options).
ENV_ALGO_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("smax", "qmix"): dict(mixer_kwargs={"init_scale": 0.001}),  # JaxMARL's MIXER_INIT_SCALE (see "smax" above)
}


@dataclass
class TrainConfig:
    """Everything ``train()`` needs. Defaults follow pymarl where REFERENCE.md gives them."""

    algo: str = "qmix"
    """Algorithm name: vdn, qmix, qtran, qtran-alt, maven, or any registered one (`torchrl-vd list`)."""
    env: str = "vmas/balance"
    """Environment name ``family/task`` (`torchrl-vd list`)."""
    env_kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for the env factory (e.g. ``{"max_steps": 100}`` or ``{"payoff": ...}``)."""
    num_envs: int = 32
    """Vectorized environments collected from in parallel."""
    frames: int = 20_000
    """Total environment frames (one frame = one step of one vectorized env)."""
    frames_per_batch: int = 3_200
    """Frames per collector batch; must be divisible by ``num_envs``."""
    buffer_size: int = 100_000
    """Replay buffer capacity in transitions."""
    batch_size: int = 128
    """Transitions per gradient step (recurrent agents: sequences = batch_size // seq_len)."""
    updates_per_batch: int = 50
    """Gradient steps after each collected batch."""
    collector: str = "single"
    """``single`` (one process), ``async`` (one worker process collects batch k+1 while this process trains
    on batch k: the acting policy lags the learner by one batch, ε keeps its schedule; uses a second core;
    resumable, not bitwise), ``multi`` (torchrl multi-process collector, ``num_workers`` processes) or
    ``ray`` (torchrl's Ray collector; see README "Beyond one machine")."""
    num_workers: int = 2
    """Collector workers for ``multi`` / ``ray``; each runs ``num_envs`` envs (``async`` always uses one)."""
    learning_starts: int = 0
    """Frames collected before the first gradient step."""
    lr: float = 5e-4
    """Learning rate."""
    optimizer: str = "adam"
    """``adam`` or ``rmsprop`` (pymarl)."""
    optimizer_eps: float | None = None
    """The optimizer's ε (denominator term); None: torch's Adam default 1e-8, pymarl's RMSprop 1e-5
    (BenchMARL's Adam: 1e-6)."""
    grad_clip: float = 10.0
    """Global gradient-norm clip (pymarl: 10); 0 disables."""
    reward_scale: float = 1.0
    """The team reward is multiplied by this for learning only (logged returns stay in the env's units):
    JaxMARL's ``REW_SCALE`` (10 for SMAX, "to the original scale of SMAC")."""
    standardise_rewards: bool | str = False
    """Standardise the team reward of every sampled minibatch for learning (logged returns stay in the env's
    units). ``"running"`` (or ``True``): by running statistics of the sampled rewards, ``(r - mean) / sqrt(var)``,
    updated with each minibatch before it is used (EPyMARL's ``standardise_rewards``, its default for QMIX and
    VDN; the LBF and RWARE presets turn it on). ``"batch"``: by the minibatch's own mean and std,
    ``(r - mean) / (std + 1e-5)`` (MARLlib's ``reward_standardize``, on in its MPE runs). pymarl has neither."""
    bootstrap_time_limits: bool = True
    """The TD target bootstraps past an episode cut by a time limit (``truncated``), as pymarl and EPyMARL do:
    the limit is not part of the task. ``False`` treats it as terminal: y = r at the last step, as MARLlib's
    MPE runs did (PettingZoo <= 1.22 reported ``max_cycles`` as done). Needs an env with a ``truncated`` flag."""
    gamma: float = 0.99
    """Discount γ."""
    td_lambda: float | None = None
    """If set, TD(λ) returns over sampled sequences (pymarl2: 0.6); else one-step TD (seed)."""
    eps_start: float = 1.0
    """Initial ε of ε-greedy exploration."""
    eps_end: float = 0.05
    """Final ε. ``eps_start = eps_end = 1.0`` means uniform exploration throughout."""
    eps_frames: int = 20_000
    """Frames over which ε anneals linearly."""
    target_update: float = 0.005
    """Target networks: a value < 1 is the Polyak τ (SoftUpdate); ≥ 1 a hard copy every N updates."""
    double_q: bool = True
    """Double Q: a*_{t+1} from the online agents, evaluated by the target networks."""
    agent: str = "mlp"
    """Agent network: ``mlp`` (current observation) or ``gru`` (observation history h_i)."""
    hidden: tuple[int, ...] = (64, 64)
    """Agent hidden sizes (GRU: the last is the recurrent width)."""
    activation: str = "relu"
    """The agent's hidden activation (``relu``, ``tanh`` or ``elu``; GRU agents: the input layers'): pymarl's and
    BenchMARL-as-configured-here ReLU; MARLlib's encoder uses RLlib's default ``tanh``."""
    share_params: bool = True
    """One agent network for all agents (parameter sharing) or one per agent."""
    agent_id: bool | None = None
    """Append a one-hot agent id to each agent's input; ``None`` = with shared parameters (pymarl's
    ``obs_agent_id=True``): a shared network must be able to tell the agents apart (measured on the
    climbing game: without it VDN fits a symmetric table to an asymmetric payoff). MAVEN's agent reads the
    id in its output hypernetwork W(z, i) already, so ``None`` leaves it off there."""
    last_action: bool = False
    """Recurrent agents: feed each agent its previous action (one-hot) as input (pymarl's obs_last_action)."""
    seq_len: int = 0
    """Recurrent agents: training sequence length (0 = the collector batch's time length)."""
    burn_in: int = 0
    """Recurrent agents: leading steps of each sequence that only warm the hidden state."""
    mixer_kwargs: dict = field(default_factory=dict)
    """The algorithm's mixer options (``--set mixer.NAME=VALUE``; QMIX: mixing_embed_dim, hypernet_layers,
    hypernet_embed, init_scale). Checked against the algorithm's typed options (``torchrl-vd train --help``)."""
    loss_kwargs: dict = field(default_factory=dict)
    """The algorithm's loss options (``--set loss.NAME=VALUE``; QTRAN: lambda_opt, lambda_nopt; MAVEN:
    noise_dim, lambda_mi, ...). Checked against the algorithm's typed options (``torchrl-vd train --help``)."""
    seed: int = 0
    """Seed for torch, the environments and the replay sampler."""
    seeds: tuple[int, ...] = ()
    """Many seeds in one process (``--seeds 0-7`` or ``--seeds 0,3,5``): N independent runs trained together, one
    run directory ``seed_<k>`` per seed under ``out_dir`` plus the aggregate (train/seeds.py); empty = just
    ``seed``. Vectorized for the ``matrix`` and ``vmas`` families with ``collector='single'``; one seed runs
    today's single run."""
    device: str = "cpu"
    """Device for envs, networks and replay storage (``cuda`` when available)."""
    threads: int = 0
    """torch threads; 0 = 1 on machines with ≤ 2 cores (PERF-NOTES: 2 threads ran 7x slower), else torch's default."""
    out_dir: str | None = None
    """Run directory (config, metrics.csv, summary.json, checkpoints); None = runs/<algo>-<env>-<seed>."""
    loggers: tuple[str, ...] = ()
    """Loggers besides metrics.csv (always written): ``tensorboard``, ``wandb`` (offline)."""
    eval_every: int = 0
    """Greedy evaluation every N frames (0 = only at the end)."""
    eval_episodes: int = 16
    """Episodes per greedy evaluation (run as that many parallel envs)."""
    igm_eval: bool = True
    """At each evaluation also measure the IGM gap on the evaluated states (metrics.csv ``igm_violation_rate``,
    ``igm_value_gap``; summary ``final_igm_*``): the share of states whose greedy joint action of the loss's
    joint value beats the agents' local greedy actions, and the mean value lost. False skips it."""
    igm_max_joint_actions: int = 256
    """IGM gap: enumerate the joint actions up to this many, else sample this many per evaluation (+ the local one)."""
    igm_max_states: int = 256
    """IGM gap: evaluated states it is measured on, at most (a fixed random subset beyond; cost ∝ states × joint actions)."""
    checkpoint_every: int = 120_000
    """Checkpoint every N frames (rounded up to whole batches), and always at the end; 0 = only at the end.
    A kill -9 / OOM / power loss loses at most this many frames (``--resume`` continues from the last
    complete checkpoint). 120k: 20 batches of the VMAS preset, where one checkpoint (81 MiB with a full
    buffer) took 0.15-0.27 s of CPU and 0.5-1.7 s of wall time on a loaded machine, vs 4.8 s per batch
    unloaded: <= 2% overhead (benchmarks/checkpoint_overhead.py). In frames, not minutes: each checkpoint is
    an episode boundary (the envs are reseeded), so a time-based interval would make runs of one seed differ."""
    resume: str | None = None
    """Run directory to resume from (continues from its last checkpoint)."""
    progress: bool = True
    """Show a progress bar (set False for quiet logs)."""

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.seeds is None:  # "no vectorized seeds", as the default ()
            self.seeds = ()
        if isinstance(self.seeds, str):  # the CLI's "0-7" / "0,3,5"
            self.seeds = tuple(parse_seeds(self.seeds))
        self.seeds = tuple(int(s) for s in (self.seeds if isinstance(self.seeds, (list, tuple)) else [self.seeds]))
        # metrics.csv is always written; "csv" is still accepted from configs saved before 0.2
        self.loggers = tuple(name for name in self.loggers if name != "csv")
        self.validate()

    def validate(self) -> None:
        """Reject bad values with a message naming the field and the fix."""
        errors = []
        positive = ("num_envs", "frames", "frames_per_batch", "buffer_size", "batch_size", "eval_episodes")
        for name in positive:
            if int(getattr(self, name)) < 1:
                errors.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("updates_per_batch", "learning_starts", "eps_frames", "seq_len", "burn_in", "eval_every",
                     "checkpoint_every", "threads"):
            if int(getattr(self, name)) < 0:
                errors.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        if not self.lr > 0:
            errors.append(f"lr must be > 0 (got {self.lr})")
        if not (math.isfinite(float(self.reward_scale)) and float(self.reward_scale) > 0):
            errors.append(f"reward_scale must be a finite number > 0 (got {self.reward_scale})")
        if self.optimizer_eps is not None and not self.optimizer_eps > 0:
            errors.append(f"optimizer_eps must be > 0 or None for the optimizer's default (got {self.optimizer_eps})")
        for name in ("eps_start", "eps_end", "gamma"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                errors.append(f"{name} must lie in [0, 1] (got {getattr(self, name)})")
        if self.eps_end > self.eps_start:
            errors.append(f"eps_end ({self.eps_end}) must not exceed eps_start ({self.eps_start})")
        if self.td_lambda is not None and not 0.0 <= self.td_lambda <= 1.0:
            errors.append(f"td_lambda must lie in [0, 1] or be None (got {self.td_lambda})")
        if not self.target_update > 0:
            errors.append(f"target_update must be a tau in (0, 1) or an interval >= 1 (got {self.target_update})")
        if self.frames_per_batch % max(int(self.num_envs), 1):
            errors.append(
                f"frames_per_batch ({self.frames_per_batch}) must be divisible by num_envs ({self.num_envs}), "
                f"e.g. frames_per_batch={max(1, self.frames_per_batch // max(self.num_envs, 1)) * self.num_envs}"
            )
        if self.collector not in COLLECTORS:
            errors.append(f"collector must be one of {list(COLLECTORS)} (got {self.collector!r})")
        elif self.collector in ("multi", "ray"):
            if int(self.num_workers) < 1:
                errors.append(f"num_workers must be >= 1 (got {self.num_workers})")
            elif self.frames_per_batch % (int(self.num_workers) * max(int(self.num_envs), 1)):
                errors.append(
                    f"with collector={self.collector!r}, frames_per_batch ({self.frames_per_batch}) must be divisible "
                    f"by num_workers * num_envs ({self.num_workers} * {self.num_envs})"
                )
        if self.agent not in ("mlp", "gru"):
            errors.append(f"agent must be 'mlp' or 'gru' (got {self.agent!r})")
        if self.optimizer not in ("adam", "rmsprop"):
            errors.append(f"optimizer must be 'adam' or 'rmsprop' (got {self.optimizer!r})")
        if self.grad_clip < 0:
            errors.append(f"grad_clip must be >= 0 (got {self.grad_clip})")
        if self.standardise_rewards not in (False, True, None, "running", "batch"):
            errors.append(f"standardise_rewards must be False, 'running' (or True) or 'batch' "
                          f"(got {self.standardise_rewards!r})")
        if self.activation not in ACTIVATIONS:
            errors.append(f"activation must be one of {sorted(ACTIVATIONS)} (got {self.activation!r})")
        errors += self._size_problems()
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            errors.append(f"device {self.device!r} is not a device name: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
        bad_loggers = set(self.loggers) - {"tensorboard", "wandb"}
        if bad_loggers:
            errors.append(f"unknown loggers {sorted(bad_loggers)}; choose from tensorboard, wandb")
        if self.algo in algorithms():  # an unknown algo is train()'s error (it lists the registered ones)
            errors += get_algo(self.algo).problems(self)
        errors += self._seeds_problems()
        if errors:
            raise ValueError("Invalid TrainConfig: " + "; ".join(errors) + ".")

    def _seeds_problems(self) -> list[str]:
        """What ``seeds`` cannot run (train/seeds.py vectorizes the env batch, the networks and the learner)."""
        if not self.seeds:
            return []
        errors = []
        if min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            errors.append(f"seeds must be distinct non-negative integers (got {list(self.seeds)})")
        if len(self.seeds) < 2:
            return errors  # one seed is today's single run (any algorithm, env and collector)
        family = self.env.split("/", 1)[0]
        fix = ("run the seeds as separate processes instead (one `torchrl-vd train --seed K` each, or "
               "`torchrl-vd reproduce`)")
        if family not in VECTORIZED_FAMILIES:
            errors.append(f"seeds={list(self.seeds)}: many seeds in one process batch the seeds' environments in one "
                          f"env adapter, which the {VECTORIZED_FAMILIES} families provide; {self.env!r} is a "
                          f"{family!r} env: {fix}")
        if self.collector != "single":
            errors.append(f"seeds={list(self.seeds)} runs with collector='single' (the seeds already share one env "
                          f"batch), got collector={self.collector!r}: set collector='single'")
        if self.algo in algorithms() and not get_algo(self.algo).vectorized_seeds:
            errors.append(f"seeds={list(self.seeds)}: algo {self.algo!r} is registered with vectorized_seeds=False "
                          f"(parts the many-seeds trainer cannot split per seed): {fix}")
        return errors

    def _size_problems(self) -> list[str]:
        """Sizes that cannot work together (each message names the fix)."""
        errors = []
        if min(self.num_envs, self.frames, self.frames_per_batch, self.buffer_size, self.batch_size) < 1:
            return errors  # reported above
        if self.batch_size > self.buffer_size:
            errors.append(f"batch_size ({self.batch_size}) exceeds buffer_size ({self.buffer_size}): a minibatch cannot "
                          f"be larger than the replay buffer; lower batch_size or raise buffer_size")
        if self.frames < self.frames_per_batch:
            errors.append(f"frames ({self.frames}) is less than one batch (frames_per_batch={self.frames_per_batch}): "
                          f"set frames >= {self.frames_per_batch} or lower frames_per_batch")
        if self.learning_starts >= self.frames:
            errors.append(f"learning_starts ({self.learning_starts}) >= frames ({self.frames}): no gradient step would "
                          "ever run; lower learning_starts")
        steps = self.frames_per_batch // self.num_envs  # time steps per collected batch
        if self.agent != "gru":
            extra = [f"{n}={getattr(self, n)}" for n in ("seq_len", "burn_in") if getattr(self, n)]
            extra += ["last_action=True"] if self.last_action else []
            if extra:
                errors.append(f"{', '.join(extra)} only apply to recurrent agents (agent='gru'), got agent="
                              f"{self.agent!r}: set agent='gru' or drop them")
        else:
            seq = self.seq_len or steps
            if self.seq_len and steps % self.seq_len:
                divisors = [d for d in range(1, steps + 1) if steps % d == 0]
                errors.append(f"seq_len ({self.seq_len}) must divide the time steps per batch (frames_per_batch / "
                              f"num_envs = {steps}): e.g. seq_len={max(d for d in divisors if d <= self.seq_len)}")
            if self.burn_in >= seq:
                errors.append(f"burn_in ({self.burn_in}) must be shorter than the training sequences (seq_len "
                              f"{seq}): lower burn_in or raise seq_len")
            if self.batch_size < seq:
                errors.append(f"batch_size ({self.batch_size}) holds no whole sequence of seq_len {seq} "
                              f"(recurrent agents train on batch_size // seq_len sequences): raise batch_size to "
                              f">= {seq}")
        return errors

    def check_env(self, info) -> None:
        """Reject options the env (its :class:`~torchrl_vd.envs.registry.EnvInfo`) cannot serve, before training."""
        if not self.bootstrap_time_limits and not info.has_truncated:
            raise ValueError(f"bootstrap_time_limits=False treats time limits as terminal, but {self.env!r} reports no "
                             "('next', 'truncated') flag to tell them apart: set bootstrap_time_limits=True.")

    def check_runtime(self) -> None:
        """What only this machine can tell (called by ``train()`` before any work): is ``device`` available?"""
        check_device(self.device)

    # ------------------------------------------------------------------ overrides
    def with_preset(self, algo: str) -> "TrainConfig":
        """This config with ``algo`` and the algorithm's presets (e.g. MAVEN: a GRU agent) applied."""
        return self.with_overrides({"algo": algo, **get_algo(algo).presets})

    @property
    def uses_agent_id(self) -> bool:
        """Whether the agents get a one-hot id: ``agent_id``, or when it is None, ``share_params``."""
        return self.share_params if self.agent_id is None else bool(self.agent_id)

    @classmethod
    def preset(cls, algo: str = "qmix", env: str = "vmas/balance", **fields) -> "TrainConfig":
        """The config a user gets without ``--set`` (the CLI's): defaults, then the env family's preset
        (:data:`ENV_PRESETS`), then the algorithm's presets, then the (family, algorithm) preset
        (:data:`ENV_ALGO_PRESETS`), then ``fields``; ``mixer_kwargs``/``loss_kwargs`` merge key by key."""
        family = env.split("/", 1)[0]
        merged: dict[str, Any] = {"algo": algo, "env": env}
        for layer in (ENV_PRESETS.get(family, {}), get_algo(algo).presets, ENV_ALGO_PRESETS.get((family, algo), {}),
                      fields):
            for key, value in layer.items():
                if key in ("mixer_kwargs", "loss_kwargs") and isinstance(value, dict):
                    value = {**merged.get(key, {}), **value}
                merged[key] = value
        return cls().with_overrides(merged)

    def options(self) -> tuple[Any, Any]:
        """The algorithm's typed ``(mixer_options, loss_options)`` built from ``mixer_kwargs`` / ``loss_kwargs``."""
        return get_algo(self.algo).options(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields {sorted(unknown)}; valid fields: {sorted(names)}.")
        return cls(**d)

    def with_overrides(self, assignments: list[str] | dict[str, Any]) -> "TrainConfig":
        """Apply ``key=value`` overrides (``--set``); dotted keys reach into dict fields.

        Values are parsed as JSON when possible (numbers, booleans, lists), else kept as strings, then
        checked against the field's type.
        """
        d = self.to_dict()
        items = assignments.items() if isinstance(assignments, dict) else [split_assignment(a) for a in assignments]
        hints = typing.get_type_hints(type(self))
        for key, raw in items:
            top, *rest = key.split(".")
            top = OPTION_ALIASES.get(top, top) if rest else top
            if top not in hints:
                close = difflib.get_close_matches(top, list(hints), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"Unknown config key {top!r}.{hint} Valid keys: {', '.join(sorted(hints))}.")
            value = _parse(raw) if isinstance(raw, str) else raw
            if top == "seeds" and isinstance(value, str):  # "0-7", "0,3,5" (JSON reads neither)
                value = parse_seeds(value)
            if rest:
                if not isinstance(d[top], dict):
                    raise ValueError(f"{top!r} is not a dict field; dotted keys only reach into dict fields.")
                target = d[top]
                for part in rest[:-1]:
                    target = target.setdefault(part, {})
                target[rest[-1]] = value
            else:
                d[top] = coerce(top, value, hints[top])
        return type(self).from_dict(d)


def check_device(device: str) -> None:
    """A ``ValueError`` naming the fix when ``device`` does not exist on this machine (no CUDA, no MPS,
    a GPU index past the last one)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA (a CPU-only wheel)" if torch.version.cuda is None
                   else f"no CUDA GPU is visible (torch built for CUDA {torch.version.cuda}; CUDA_VISIBLE_DEVICES="
                        f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
            raise ValueError(f"device={device!r}, but {why}: use device='cpu' (--set device=cpu), or install a "
                             "CUDA build of torch on a machine with a GPU.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1}): choose one of them.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r}, but MPS (Apple GPUs) is not available on this machine: use "
                         "device='cpu'.")


def parse_seeds(text: str) -> list[int]:
    """``'0-3'`` -> [0, 1, 2, 3]; ``'0,2,5'`` -> [0, 2, 5]; ``'0-2,7'`` -> [0, 1, 2, 7] (sorted, unique).

    Examples:
        >>> parse_seeds("0-3"), parse_seeds("5, 0-2")
        ([0, 1, 2, 3], [0, 1, 2, 5])
    """
    seeds: set[int] = set()
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"Bad --seeds {text!r}: give {SEEDS_FORMS} (non-negative integers, ranges low-high).")
        low = int(m.group(1))
        seeds.update(range(low, int(m.group(2) if m.group(2) is not None else low) + 1))
    return sorted(seeds)


def split_assignment(assignment: str) -> tuple[str, str]:
    """`"key=value"` -> `("key", "value")` (an `--set` assignment), a clear error without `=`."""
    if "=" not in assignment:
        raise ValueError(f"Overrides have the form key=value, got {assignment!r}.")
    key, value = assignment.split("=", 1)
    return key.strip(), value.strip()


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        low = raw.lower()
        if low in ("none", "null"):
            return None
        if low in ("true", "false"):
            return low == "true"
        return raw
