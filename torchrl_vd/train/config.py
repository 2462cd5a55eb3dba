"""Typed training configuration: one dataclass (a docstring under each field), presets, ``--set`` overrides.

The same words give the same config from Python and from the CLI: ``TrainConfig(algo="qmix", env="vmas/balance")``
equals ``torchrl-vd train --algo qmix --env vmas/balance``. A field you set wins; a field you leave out takes
its preset for the algorithm and the env family (train/presets.py), else the default written below. A config
read back from a run directory (:meth:`TrainConfig.from_dict`) is complete: no preset touches it.

Invalid configs raise one :class:`ConfigError` that lists every problem at once, misspelt names first with
close matches. Importing this module imports neither torch nor the algorithms' code (``torchrl-vd --help``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from torchrl_vd.train.algos import Collector, algo_spec
from torchrl_vd.train.options import coerce
from torchrl_vd.train.presets import MERGED_FIELDS, preset_fields

SEEDS_FORMS = "a range '0-3', a list '0,2,5', or both '0-2,7'"
"""How ``--seeds`` may be written (:func:`parse_seeds`), for help texts and error messages."""
OPTION_ALIASES = {"mixer": "mixer_kwargs", "loss": "loss_kwargs"}
"""``--set`` prefixes that reach into the algorithm's typed options (``mixer.NAME`` = ``mixer_kwargs.NAME``)."""


class ConfigError(ValueError):
    """An invalid :class:`TrainConfig`: every problem found, misspelt names first, each naming its fix."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Invalid TrainConfig: " + "; ".join(p.rstrip(".") for p in self.problems) + ".")


@dataclass
class TrainConfig:
    """Everything ``train()`` needs. A field left out takes its preset (train/presets.py), else the default below
    (pymarl's where pymarl has one)."""

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
    collector: Collector = "single"
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
    optimizer: Literal["adam", "rmsprop", "radam"] = "adam"
    """``adam``, ``rmsprop`` (pymarl) or ``radam`` (rectified Adam, Liu et al. 2020: PQN's, as JaxMARL's
    ``optax.radam``)."""
    optimizer_eps: float | None = None
    """The optimizer's ε (denominator term); None: torch's Adam / RAdam default 1e-8, pymarl's RMSprop 1e-5
    (BenchMARL's Adam: 1e-6)."""
    grad_clip: float = 10.0
    """Global gradient-norm clip (pymarl: 10); 0 disables."""
    on_non_finite: Literal["stop", "skip"] = "stop"
    """A gradient step whose loss or gradient is NaN/inf is never applied. ``stop``: the run stops with an error
    naming the step and the quantity (metrics.csv holds no non-finite row; the last checkpoint stays as it was).
    ``skip``: the minibatch is dropped and counted (metrics.csv ``skipped_updates``)."""
    reward_scale: float = 1.0
    """The team reward is multiplied by this for learning only (logged returns stay in the env's units):
    JaxMARL's ``REW_SCALE`` (10 for SMAX, "to the original scale of SMAC")."""
    standardise_rewards: bool | Literal["running", "batch"] = False
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
    """If set, TD(λ) returns over sampled sequences (pymarl2: 0.6); else one-step TD (the TD(0) target of VDN and QMIX)."""
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
    agent: Literal["mlp", "gru"] = "mlp"
    """Agent network: ``mlp`` (current observation) or ``gru`` (observation history h_i)."""
    hidden: tuple[int, ...] = (64, 64)
    """Agent hidden sizes (GRU: the last is the recurrent width)."""
    activation: Literal["relu", "tanh", "elu"] = "relu"
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
    run directory ``seed_<k>`` per seed under ``out_dir`` plus the aggregate (docs/MANY_SEEDS.md); empty = just
    ``seed``. Several seeds need an env family that batches them (every built-in one) and ``collector='single'``
    or ``'async'``."""
    device: str = "cpu"
    """Device for envs, networks and replay storage (``cuda`` when available)."""
    threads: int = 0
    """torch threads; 0 = 1 on machines with ≤ 2 cores (two threads on two loaded cores ran 4-15x slower), else torch's default."""
    out_dir: str | None = None
    """Run directory (config, metrics.csv, summary.json, checkpoints); None = runs/<algo>-<env>-<seed>."""
    loggers: tuple[Literal["tensorboard", "wandb", "csv"], ...] = ()
    """Loggers besides metrics.csv (always written, so ``csv`` is accepted and changes nothing): ``tensorboard``,
    ``wandb`` (offline)."""
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
    A kill -9 / OOM / power loss loses at most this many frames (``--resume`` continues from the last complete
    checkpoint). In frames, not minutes: each checkpoint is an episode boundary (the envs are reseeded), so a
    time-based interval would make two runs of one seed differ (cost measured in benchmarks/RESULTS.md §12)."""
    resume: str | None = None
    """Run directory to resume from (continues from its last checkpoint)."""
    progress: bool = True
    """Show a progress bar (set False for quiet logs)."""


    def __post_init__(self) -> None:
        given = getattr(self, "_given", None)
        if given is None:  # built without the recording __init__ (e.g. copy.replace): everything was given
            given = frozenset(f.name for f in dataclasses.fields(self))
            object.__setattr__(self, "_given", given)
        self._apply_presets()
        self._normalise()
        self.validate()

    # ------------------------------------------------------------------ presets
    def _apply_presets(self) -> None:
        """Fields not given take the presets of (algo, env family); given ``mixer_kwargs``/``loss_kwargs`` keep the
        preset keys they do not set. A config with every field given (read back from a run) is left as it is."""
        if len(self._given) == len(dataclasses.fields(self)):
            return
        spec = algo_spec(self.algo)
        for key, value in preset_fields(self.algo, self.env, spec.presets if spec else None).items():
            if spec is not None and key in spec.not_used:  # a replay-buffer field of the family's presets
                continue
            if key not in self._given:
                setattr(self, key, _copy(value))
            elif key in MERGED_FIELDS and isinstance(getattr(self, key), dict):
                setattr(self, key, {**value, **getattr(self, key)})

    def given_fields(self) -> dict[str, Any]:
        """The fields set explicitly (what :meth:`with_overrides` starts from)."""
        return {name: getattr(self, name) for name in self._given}

    def _normalise(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden) if isinstance(self.hidden, (list, tuple)) else (int(self.hidden),)
        if self.seeds is None:  # "no vectorized seeds", as the default ()
            self.seeds = ()
        if isinstance(self.seeds, str):  # the CLI's "0-7" / "0,3,5"
            self.seeds = tuple(parse_seeds(self.seeds))
        self.seeds = tuple(int(s) for s in (self.seeds if isinstance(self.seeds, (list, tuple)) else [self.seeds]))
        self.loggers = tuple(name for name in self.loggers if name != "csv")  # metrics.csv is always written
        for name in ("env_kwargs", "mixer_kwargs", "loss_kwargs"):
            if getattr(self, name) is None:
                setattr(self, name, {})

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` listing every problem (misspelt names first), each naming the fix."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def problems(self) -> list[str]:
        """Every problem of this config, misspelt names first (empty when all is well; train/validation.py)."""
        from torchrl_vd.train.validation import config_problems

        return config_problems(self)

    def check_env(self, info) -> None:
        """Reject options the env (its :class:`~torchrl_vd.envs.registry.EnvInfo`) cannot serve, before training."""
        if not self.bootstrap_time_limits and not info.has_truncated:
            raise ValueError(f"bootstrap_time_limits=False treats time limits as terminal, but {self.env!r} reports no "
                             "('next', 'truncated') flag to tell them apart: set bootstrap_time_limits=True.")

    def check_runtime(self) -> None:
        """What only this machine can tell (called by ``train()`` before any work): is ``device`` available?"""
        from torchrl_vd.train.validation import check_device

        check_device(self.device)

    # ------------------------------------------------------------------ views
    @property
    def uses_agent_id(self) -> bool:
        """Whether the agents get a one-hot id: ``agent_id``, or when it is None, ``share_params``."""
        return self.share_params if self.agent_id is None else bool(self.agent_id)

    def options(self) -> tuple[Any, Any]:
        """The algorithm's typed ``(mixer_options, loss_options)`` built from ``mixer_kwargs`` / ``loss_kwargs``."""
        return algo_spec(self.algo, required=True).options(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config saved as ``d`` (a run's config.json), complete: fields it lacks take their defaults, no preset."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError([f"Unknown TrainConfig fields {sorted(unknown)}; valid fields: {sorted(names)}"])
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(cls)}
        return cls(**{**defaults, **d})

    @classmethod
    def from_benchmarl(cls, *sources: str) -> "TrainConfig":
        """The config of a BenchMARL run (QMIX, VDN or IQL on a VMAS or PettingZoo task) read from BenchMARL's own
        yaml: its conf directory or files, a fine-tuned ``config.yaml``, a Hydra run directory, and overrides as on
        its command line (``"algorithm=qmix"``, ``"task=vmas/balance"``, ``"experiment.gamma=0.9"``). Every BenchMARL
        key is mapped or named in an error (``BenchmarlImportError``) or a warning (``BenchmarlImportWarning``);
        the table: docs/COMING_FROM_BENCHMARL.md (train/benchmarl_import.py, train/benchmarl_files.py)."""
        from torchrl_vd.train.benchmarl_files import import_benchmarl

        return cls().with_overrides(import_benchmarl(*sources))  # each value checked against its field's type

    def with_overrides(self, assignments: list[str] | dict[str, Any]) -> "TrainConfig":
        """This config's given fields plus ``key=value`` overrides (``--set``); dotted keys reach into dict fields
        (``mixer.NAME`` is ``mixer_kwargs.NAME``). Fields neither set here nor before take their presets.

        Values given as strings are parsed as JSON when possible (numbers, booleans, lists), else kept as strings,
        then checked against the field's type. Every problem is reported at once (:class:`ConfigError`).
        """
        items = assignments.items() if isinstance(assignments, dict) else [split_assignment(a) for a in assignments]
        hints = typing.get_type_hints(type(self))
        given, problems = self.given_fields(), []
        for key, raw in items:
            top, *rest = key.split(".")
            top = OPTION_ALIASES.get(top, top) if rest else top
            if top not in hints:
                close = difflib.get_close_matches(top, list(hints), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                problems.append(f"Unknown config key {top!r}.{hint} Valid keys: {', '.join(sorted(hints))}")
                continue
            value = _parse(raw) if isinstance(raw, str) else raw
            if rest:
                current = given.get(top, getattr(self, top))
                if not isinstance(current, dict):
                    problems.append(f"{top!r} is not a dict field; dotted keys only reach into dict fields")
                    continue
                given[top] = _set_nested(current, rest, value)
                continue
            try:
                given[top] = coerce(top, parse_seeds(value) if top == "seeds" and isinstance(value, str) else value,
                                    hints[top])
            except ValueError as err:
                problems.append(str(err))
        return _build(type(self), given, problems)


def _build(cls, fields: dict[str, Any], problems: list[str]) -> TrainConfig:
    """``cls(**fields)``, its own problems reported after ``problems`` (those of reading the overrides)."""
    try:
        cfg = cls(**fields)
    except ConfigError as err:
        raise ConfigError(problems + err.problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def _record_given(init):
    """Wrap the dataclass ``__init__`` to record which fields the caller set (presets fill only the others) and
    which names are not fields (reported with every other problem instead of a bare ``TypeError``)."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        names = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in kwargs if k not in names]
        object.__setattr__(self, "_given", frozenset(names[: len(args)]) | (set(kwargs) - set(unknown)))
        object.__setattr__(self, "_unknown", tuple(unknown))
        init(self, *args, **{k: v for k, v in kwargs.items() if k not in unknown})

    return __init__


TrainConfig.__init__ = _record_given(TrainConfig.__init__)


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


def _set_nested(d: dict, path: list[str], value: Any) -> dict:
    """A copy of ``d`` with ``value`` at the nested ``path``."""
    out = dict(d)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = _set_nested(out.get(path[0], {}) if isinstance(out.get(path[0]), dict) else {}, path[1:], value)
    return out


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


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


__all__ = ["ConfigError", "TrainConfig", "parse_seeds", "split_assignment"]
