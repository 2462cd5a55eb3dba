"""What makes a :class:`~torchrl_vd.train.config.TrainConfig` unusable, found before any work starts.

:func:`config_problems` lists every problem at once, misspelt names first, each message naming its fix; the
config raises them together as one ``ConfigError``. :func:`check_device` asks the machine (is CUDA there?).
Pure Python at import (the CLI's ``--help`` loads the config without torch).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing

from torchrl_vd.train.algos import Collector, algo_spec, algorithms, unknown_algo_problem
from torchrl_vd.train.options import unknown_name_error
from torchrl_vd.train.presets import family_of

ACTIVATION_NAMES = ("elu", "relu", "tanh")
"""The agents' hidden activations (``modules.agents.ACTIVATIONS`` maps them to torch modules)."""


def config_problems(cfg) -> list[str]:
    """Every problem of ``cfg``: unknown field names, an unknown algorithm, values out of range or choice, sizes
    that cannot work together, the algorithm's own rules, what many seeds cannot run."""
    names = [f.name for f in dataclasses.fields(cfg)]
    found = [str(unknown_name_error(name, names, "TrainConfig", noun="field")) for name in getattr(cfg, "_unknown", ())]
    known_algo = cfg.algo in algorithms()
    if not known_algo:
        found.append(unknown_algo_problem(cfg.algo))
    found += _value_problems(cfg) + _size_problems(cfg)
    if known_algo:
        found += algo_spec(cfg.algo).problems(cfg)
    return found + _seeds_problems(cfg)


def _value_problems(cfg) -> list[str]:
    """Values outside their ranges or choices."""
    errors = []
    for name in ("num_envs", "frames", "frames_per_batch", "buffer_size", "batch_size", "eval_episodes"):
        if int(getattr(cfg, name)) < 1:
            errors.append(f"{name} must be >= 1 (got {getattr(cfg, name)})")
    for name in ("updates_per_batch", "learning_starts", "eps_frames", "seq_len", "burn_in", "eval_every",
                 "checkpoint_every", "threads"):
        if int(getattr(cfg, name)) < 0:
            errors.append(f"{name} must be >= 0 (got {getattr(cfg, name)})")
    if not cfg.lr > 0:
        errors.append(f"lr must be > 0 (got {cfg.lr})")
    if not (math.isfinite(float(cfg.reward_scale)) and float(cfg.reward_scale) > 0):
        errors.append(f"reward_scale must be a finite number > 0 (got {cfg.reward_scale})")
    if cfg.optimizer_eps is not None and not cfg.optimizer_eps > 0:
        errors.append(f"optimizer_eps must be > 0 or None for the optimizer's default (got {cfg.optimizer_eps})")
    for name in ("eps_start", "eps_end", "gamma"):
        if not 0.0 <= float(getattr(cfg, name)) <= 1.0:
            errors.append(f"{name} must lie in [0, 1] (got {getattr(cfg, name)})")
    if cfg.eps_end > cfg.eps_start:
        errors.append(f"eps_end ({cfg.eps_end}) must not exceed eps_start ({cfg.eps_start})")
    if cfg.td_lambda is not None and not 0.0 <= cfg.td_lambda <= 1.0:
        errors.append(f"td_lambda must lie in [0, 1] or be None (got {cfg.td_lambda})")
    if not cfg.target_update > 0:
        errors.append(f"target_update must be a tau in (0, 1) or an interval >= 1 (got {cfg.target_update})")
    if cfg.grad_clip < 0:
        errors.append(f"grad_clip must be >= 0 (got {cfg.grad_clip})")
    return errors + _choice_problems(cfg)

def _choice_problems(cfg) -> list[str]:
    """Fields with fixed choices (their ``Literal`` types) and names checked against a registry."""
    errors = []
    collectors = list(typing.get_args(Collector))
    if cfg.collector not in collectors:
        errors.append(f"collector must be one of {collectors} (got {cfg.collector!r})")
    elif cfg.collector in ("multi", "ray") and int(cfg.num_workers) < 1:
        errors.append(f"num_workers must be >= 1 (got {cfg.num_workers})")
    if cfg.agent not in ("mlp", "gru"):
        errors.append(f"agent must be 'mlp' or 'gru' (got {cfg.agent!r})")
    if cfg.on_non_finite not in ("stop", "skip"):
        errors.append(f"on_non_finite must be 'stop' or 'skip' (got {cfg.on_non_finite!r})")
    if cfg.optimizer not in ("adam", "rmsprop", "radam"):
        errors.append(f"optimizer must be 'adam', 'rmsprop' or 'radam' (got {cfg.optimizer!r})")
    if cfg.standardise_rewards not in (False, True, None, "running", "batch"):
        errors.append(f"standardise_rewards must be False, 'running' (or True) or 'batch' "
                      f"(got {cfg.standardise_rewards!r})")
    if cfg.activation not in ACTIVATION_NAMES:
        errors.append(f"activation must be one of {list(ACTIVATION_NAMES)} (got {cfg.activation!r})")
    if not re.fullmatch(r"(cpu|cuda|mps|meta|xpu)(:\d+)?", str(cfg.device)):
        errors.append(f"device {cfg.device!r} is not a device name: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    bad_loggers = set(cfg.loggers) - {"tensorboard", "wandb"}
    if bad_loggers:
        errors.append(f"unknown loggers {sorted(bad_loggers)}; choose from tensorboard, wandb")
    return errors

def _size_problems(cfg) -> list[str]:
    """Sizes that cannot work together (each message names the fix)."""
    if min(cfg.num_envs, cfg.frames, cfg.frames_per_batch, cfg.buffer_size, cfg.batch_size) < 1:
        return []  # reported by _value_problems
    errors = []
    if cfg.frames_per_batch % cfg.num_envs:
        errors.append(f"frames_per_batch ({cfg.frames_per_batch}) must be divisible by num_envs ({cfg.num_envs}), "
                      f"e.g. frames_per_batch={max(1, cfg.frames_per_batch // cfg.num_envs) * cfg.num_envs}")
    elif cfg.collector in ("multi", "ray") and int(cfg.num_workers) >= 1 and (
            cfg.frames_per_batch % (int(cfg.num_workers) * cfg.num_envs)):
        errors.append(f"with collector={cfg.collector!r}, frames_per_batch ({cfg.frames_per_batch}) must be "
                      f"divisible by num_workers * num_envs ({cfg.num_workers} * {cfg.num_envs})")
    if cfg.batch_size > cfg.buffer_size:
        errors.append(f"batch_size ({cfg.batch_size}) exceeds buffer_size ({cfg.buffer_size}): a minibatch cannot "
                      f"be larger than the replay buffer; lower batch_size or raise buffer_size")
    if cfg.frames < cfg.frames_per_batch:
        errors.append(f"frames ({cfg.frames}) is less than one batch (frames_per_batch={cfg.frames_per_batch}): "
                      f"set frames >= {cfg.frames_per_batch} or lower frames_per_batch")
    if cfg.learning_starts >= cfg.frames:
        errors.append(f"learning_starts ({cfg.learning_starts}) >= frames ({cfg.frames}): no gradient step would "
                      "ever run; lower learning_starts")
    return errors + _sequence_problems(cfg)

def _sequence_problems(cfg) -> list[str]:
    """Recurrent agents' sequence settings (and those options on feed-forward agents)."""
    steps = cfg.frames_per_batch // cfg.num_envs  # time steps per collected batch
    if cfg.agent != "gru":
        extra = [f"{n}={getattr(cfg, n)}" for n in ("seq_len", "burn_in") if getattr(cfg, n)]
        extra += ["last_action=True"] if cfg.last_action else []
        return [f"{', '.join(extra)} only apply to recurrent agents (agent='gru'), got agent={cfg.agent!r}: set "
                "agent='gru' or drop them"] if extra else []
    errors = []
    seq = cfg.seq_len or steps
    if cfg.seq_len and steps and steps % cfg.seq_len:
        divisors = [d for d in range(1, steps + 1) if steps % d == 0]
        errors.append(f"seq_len ({cfg.seq_len}) must divide the time steps per batch (frames_per_batch / "
                      f"num_envs = {steps}): e.g. seq_len={max(d for d in divisors if d <= cfg.seq_len)}")
    if cfg.burn_in >= seq:
        errors.append(f"burn_in ({cfg.burn_in}) must be shorter than the training sequences (seq_len {seq}): "
                      "lower burn_in or raise seq_len")
    if cfg.batch_size < seq:
        errors.append(f"batch_size ({cfg.batch_size}) holds no whole sequence of seq_len {seq} (recurrent agents "
                      f"train on batch_size // seq_len sequences): raise batch_size to >= {seq}")
    return errors

def _seeds_problems(cfg) -> list[str]:
    """What ``seeds`` cannot run (many seeds share one env batch, stacked networks and one learner)."""
    if not cfg.seeds:
        return []
    errors = []
    if min(cfg.seeds) < 0 or len(set(cfg.seeds)) != len(cfg.seeds):
        errors.append(f"seeds must be distinct non-negative integers (got {list(cfg.seeds)})")
    if len(cfg.seeds) < 2:
        return errors  # one seed is a single run (any algorithm, env and collector)
    fix = ("run each seed as a separate process instead (one `torchrl-vd train --seed K` each, or "
           "`torchrl-vd reproduce`)")
    batched = many_seeds_families()
    family = family_of(cfg.env)
    if family not in batched:
        errors.append(f"seeds={list(cfg.seeds)}: many seeds in one process batch all seeds' environments in one "
                      f"env adapter, which the {batched} families provide; {cfg.env!r} is a {family!r} env: {fix}")
    if cfg.collector not in ("single", "async"):
        errors.append(f"seeds={list(cfg.seeds)} runs with collector='single' or 'async' (all seeds share one env "
                      f"batch, collected in this process or in one overlapping worker), got "
                      f"collector={cfg.collector!r}: set collector='single' or 'async'")
    spec = algo_spec(cfg.algo)
    if spec is not None and not spec.vectorized_seeds:
        errors.append(f"seeds={list(cfg.seeds)}: algo {cfg.algo!r} is registered with vectorized_seeds=False "
                      f"(parts the many-seeds trainer cannot split per seed): {fix}")
    return errors


def many_seeds_families() -> list[str]:
    """The env families whose adapter runs N seeds as one env batch (``EnvFamily.many_seeds``)."""
    from torchrl_vd.envs.registry import env_families

    return sorted(name for name, fam in env_families().items() if fam.many_seeds)


def check_device(device: str) -> None:
    """A ``ValueError`` naming the fix when ``device`` does not exist on this machine (no CUDA, no MPS,
    a GPU index past the last one)."""
    import torch

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


__all__ = ["ACTIVATION_NAMES", "check_device", "config_problems", "many_seeds_families"]
