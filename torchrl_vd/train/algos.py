"""The algorithm table: for each algorithm its typed options, presets, builder and what it supports.

One row per algorithm; ``train()``, the CLI's ``list`` / ``--help``, the presets and the tests iterate this one
table, so a new algorithm is trained end to end and documented for free. A row names its builder by import path
(``"torchrl_vd.train.builders:build_qmix"``), resolved when a run builds it: reading the table (``--help``,
config validation) imports neither torch nor the losses. Users add rows with :func:`register_algo`, with a
builder function ``build(cfg, info, mixer_options, loss_options) -> AlgoParts``.

Losses and networks import nothing from this layer: a builder composes them from a
:class:`~torchrl_vd.train.config.TrainConfig` and an :class:`~torchrl_vd.envs.registry.EnvInfo`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from torchrl_vd.train.algo_options import (
    IQLLossOptions,
    MavenMixerOptions,
    MavenOptions,
    NoOptions,
    PQNOptions,
    QMixerOptions,
    QPlexMixerOptions,
    QTranLossOptions,
    QTranNetOptions,
    TDLossOptions,
    WeightedQMixerOptions,
    WeightedQMixLossOptions,
)
from torchrl_vd.train.options import build_options

if TYPE_CHECKING:
    from torch import nn

Collector = Literal["single", "async", "multi", "ray"]
"""How a run collects: in this process, overlapped in one worker process, torchrl's multi-process or Ray collector."""
COLLECTORS: tuple[str, ...] = ("single", "async", "multi", "ray")


@dataclass
class JointExtras:
    """An algorithm's extra modules serving N seeds at once, on all seeds' joint env batch (train/population.py).

    Attributes:
        env_transforms: factories ``() -> Transform`` for the joint env (e.g. MAVEN's z drawn by every seed's
            z-policy for its own envs).
        sync: called once every seed's ``after_batch`` hook has trained its own copy (refreshes the joint view).
    """

    env_transforms: list[Callable[[], Any]]
    sync: Callable[[], None]


@dataclass
class AlgoParts:
    """What an algorithm contributes to the shared training loop, for one seed.

    Attributes:
        loss_module: the ValueDecompositionLoss (its ``agent_net`` drives the policies).
        env_transforms: callables ``() -> Transform`` appended to the train and eval envs (e.g. MAVEN's
            per-episode latent z); picklable (functools.partial), since worker collectors rebuild the env.
        extra_modules: other trainable modules (not part of the loss) saved in checkpoints.
        after_batch: optional hook ``(collected_td, frames) -> dict of metrics``, called once per
            collected batch (e.g. MAVEN's z-policy REINFORCE update); its metrics reach
            ``TrainResult.metrics`` and TensorBoard.
        metric_columns: names among the ``after_batch`` metrics that also get a metrics.csv column
            (the file keeps a fixed header, so it must know them before the first row).
        joint: ``joint(parts_of_every_seed) -> JointExtras``, for extra modules with parameters when N seeds
            train in one process; None when the extras have no parameters (every seed's are the same).
    """

    loss_module: Any
    env_transforms: list[Callable[[], Any]] = field(default_factory=list)
    extra_modules: dict[str, nn.Module] = field(default_factory=dict)
    after_batch: Callable[..., dict] | None = None
    metric_columns: tuple[str, ...] = ()
    joint: Callable[[list[AlgoParts]], JointExtras] | None = None

    def to(self, device) -> AlgoParts:
        """The loss module and the extra modules moved to ``device`` (in place, so optimizers built on their
        parameters, e.g. MAVEN's z-policy trainer, keep working); returns ``self``. Every trainable piece moves:
        the env transforms call the extra modules on the env's device (MAVEN's z-policy at each reset)."""
        self.loss_module.to(device)
        for module in self.extra_modules.values():
            module.to(device)
        return self


@dataclass
class AlgoSpec:
    """One row of the algorithm table.

    Attributes:
        name: the ``--algo`` name.
        build: ``build(cfg, info, mixer_options, loss_options) -> AlgoParts``, or its import path
            ``"package.module:function"`` (imported when a run builds the algorithm).
        description: one line for ``torchrl-vd list``.
        mixer_options / loss_options: the typed option dataclasses filled from ``mixer_kwargs`` /
            ``loss_kwargs``.
        presets: ``TrainConfig`` fields this algorithm sets when the user does not (its reference's defaults,
            e.g. MAVEN: a recurrent agent fed its last action).
        agents: agent kinds it supports (``mlp``, ``gru``).
        collectors: collectors it supports.
        check: optional ``check(cfg, loss_options) -> list of error strings`` for cross-field rules.
        vectorized_seeds: whether ``TrainConfig.seeds`` can train several seeds of it in one process (its loss
            module's networks are stacked; extra modules with parameters need ``AlgoParts.joint``).
        learner: import path ``"package.module:function"`` of its learner factory
            ``make(cfg, loss, extra_modules, *, time_steps, stack=None)`` (``stack``: many seeds' ``SeedStack``);
            None: the replay-buffer learner (train/learner.py ``Learner`` / ``SeedLearner``).
        not_used: ``TrainConfig`` fields it has no use for, each with what stands in for it: the env family's presets
            leave them at their defaults, and a value given for one is refused with that reason.
    """

    name: str
    build: Callable[..., AlgoParts] | str
    description: str
    mixer_options: type = NoOptions
    loss_options: type = TDLossOptions
    presets: dict[str, Any] = field(default_factory=dict)
    agents: tuple[str, ...] = ("mlp", "gru")
    collectors: tuple[str, ...] = COLLECTORS
    check: Callable[..., list[str]] | None = None
    vectorized_seeds: bool = True
    learner: str | None = None
    not_used: dict[str, str] = field(default_factory=dict)

    def options(self, cfg) -> tuple[Any, Any]:
        """``(mixer_options, loss_options)`` from ``cfg.mixer_kwargs`` / ``cfg.loss_kwargs``, checked field by field."""
        return (build_options(self.mixer_options, cfg.mixer_kwargs, f"{self.name} mixer"),
                build_options(self.loss_options, cfg.loss_kwargs, f"{self.name} loss"))

    def builder(self) -> Callable[..., AlgoParts]:
        """The build function (imported from its path the first time)."""
        if isinstance(self.build, str):
            module, _, name = self.build.partition(":")
            self.build = getattr(importlib.import_module(module), name)
        return self.build

    def parts(self, cfg, info) -> AlgoParts:
        """The algorithm's parts for ``cfg`` on an env described by ``info`` (its typed options resolved first)."""
        return self.builder()(cfg, info, *self.options(cfg))

    def problems(self, cfg) -> list[str]:
        """What in ``cfg`` this algorithm cannot run (empty when all is well)."""
        errors = []
        for part, cls, given in (("mixer", self.mixer_options, cfg.mixer_kwargs),
                                 ("loss", self.loss_options, cfg.loss_kwargs)):
            try:
                build_options(cls, given, f"{self.name} {part}")
            except ValueError as err:
                errors.append(str(err).rstrip("."))
        if cfg.agent not in self.agents:
            errors.append(f"algo {self.name!r} supports agent in {list(self.agents)}, got agent={cfg.agent!r}: set "
                          f"agent={self.agents[0]!r} (or leave agent unset: the algorithm's presets choose it)")
        if cfg.collector not in self.collectors:
            errors.append(f"algo {self.name!r} supports collector in {list(self.collectors)}, got "
                          f"collector={cfg.collector!r}: set collector={self.collectors[0]!r}")
        errors += self._not_used_problems(cfg)
        if self.check is not None and not errors:
            errors += self.check(cfg, self.options(cfg)[1])
        return errors

    def _not_used_problems(self, cfg) -> list[str]:
        """A field of :attr:`not_used` given a value other than its default (a config read back from a run holds
        the default there: the presets left it so)."""
        if not self.not_used:
            return []
        defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
        given = cfg.given_fields()
        return [f"{name}={given[name]!r} does not apply to {self.name!r}: {why}; drop it"
                for name, why in self.not_used.items() if name in given and given[name] != defaults[name]]

    def make_learner(self, cfg, loss, extra_modules: dict, *, time_steps: int, stack=None):
        """The learner of this algorithm (:attr:`learner`; the replay-buffer learner by default)."""
        if self.learner is None:
            from torchrl_vd.train.learner import Learner, SeedLearner

            if stack is None:
                return Learner(cfg, loss, extra_modules, time_steps=time_steps)
            return SeedLearner(cfg, stack, time_steps=time_steps)
        module, _, name = self.learner.partition(":")
        return getattr(importlib.import_module(module), name)(cfg, loss, extra_modules, time_steps=time_steps,
                                                                stack=stack)


ALGOS: dict[str, AlgoSpec] = {}


def add_algo(spec: AlgoSpec) -> AlgoSpec:
    """Put ``spec`` in the table (replacing a row of the same name)."""
    ALGOS[spec.name] = spec
    return spec


def register_algo(name: str, *, description: str, mixer_options: type = NoOptions,
                  loss_options: type = TDLossOptions, presets: dict[str, Any] | None = None, **supports):
    """Decorator adding ``build(cfg, info, mixer_options, loss_options) -> AlgoParts`` to the table as ``name``.

    ``supports``: ``agents=``, ``collectors=``, ``check=``, ``vectorized_seeds=`` (see :class:`AlgoSpec`).
    """

    def deco(build):
        add_algo(AlgoSpec(name, build, description, mixer_options, loss_options, dict(presets or {}), **supports))
        return build

    return deco


def algorithms() -> dict[str, AlgoSpec]:
    """The algorithm table (name -> :class:`AlgoSpec`)."""
    return dict(ALGOS)


def algo_spec(name: str, required: bool = False) -> AlgoSpec | None:
    """The table row of ``name``; None for an unknown name (a ``ValueError`` with close matches if ``required``)."""
    if name not in ALGOS and required:
        raise ValueError(unknown_algo_problem(name))
    return ALGOS.get(name)


def get_algo(name: str) -> AlgoSpec:
    """The table row of ``name``; a close-match error for an unknown name."""
    return algo_spec(name, required=True)


def unknown_algo_problem(name: str) -> str:
    """The message for an unknown algorithm name: close matches, then every registered name."""
    close = difflib.get_close_matches(str(name), list(ALGOS), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"Unknown algo {name!r}.{hint} Registered: {', '.join(sorted(ALGOS))}."


def _check_maven(cfg, opts: MavenOptions) -> list[str]:
    if opts.z_policy == "learned" and cfg.collector != "single":
        return [f"MAVEN's learned z-policy is updated in this process and read by the NoiseTransform of the env it "
                f"collects from; collector={cfg.collector!r} would run stale copies in its workers. Use "
                "collector='single' or loss_kwargs.z_policy='uniform'"]
    return []


def _check_iql(cfg, opts) -> list[str]:
    if opts.rewards == "individual" and (cfg.reward_scale != 1.0 or cfg.standardise_rewards):
        return [f"reward_scale ({cfg.reward_scale}) and standardise_rewards ({cfg.standardise_rewards!r}) transform the "
                "team reward, which IQL with loss.rewards='individual' does not learn from: set reward_scale=1 and "
                "standardise_rewards=False, or use loss.rewards='team'"]
    return []


PQN_NOT_USED = {
    "buffer_size": "PQN keeps no replay buffer, each update learns from its own rollout (frames_per_batch = num_envs "
                   "x steps per env)",
    "batch_size": "its minibatches are each rollout split in loss.num_minibatches parts",
    "updates_per_batch": "each rollout gets loss.num_epochs x loss.num_minibatches gradient steps",
    "learning_starts": "PQN learns from its first rollout",
    "target_update": "PQN has no target network",
    "double_q": "PQN has no target network for a double-Q evaluation",
    "eps_frames": "ε anneals over loss.eps_decay x the number of updates (JaxMARL's EPS_DECAY)",
    "seq_len": "the recurrent variant trains on whole rollouts (with loss.memory_window steps before them)",
    "burn_in": "the recurrent variant unrolls from the hidden state stored at each window's start",
}
"""``TrainConfig`` fields of the replay-buffer algorithms that PQN-VDN has no use for, with what stands in for each."""


PQN_PRESETS = dict(agent="mlp", hidden=(256, 256), agent_id=True, num_envs=256, frames_per_batch=256 * 16,
                   optimizer="radam", lr=5e-4, grad_clip=1.0, gamma=0.9, td_lambda=0.3, eps_start=1.0, eps_end=0.1,
                   bootstrap_time_limits=False)
"""PQN-VDN's own presets: JaxMARL's feed-forward MPE config (``pqn_vdn_ff_mpe.yaml``, the variant its README suggests;
its ``loss`` options are :class:`PQNOptions`' defaults), the agent id in the input and time limits ending the returns
as JaxMARL's ``CTRolloutManager`` and ``done`` have them."""


def _check_pqn(cfg, opts: PQNOptions) -> list[str]:
    errors = []
    for name in ("num_epochs", "num_minibatches"):
        if getattr(opts, name) < 1:
            errors.append(f"loss.{name} must be >= 1 (got {getattr(opts, name)})")
    if opts.memory_window < 0 or not opts.eps_decay >= 0:
        errors.append(f"loss.memory_window and loss.eps_decay must be >= 0 (got {opts.memory_window}, "
                      f"{opts.eps_decay})")
    if errors:
        return errors
    m = opts.num_minibatches
    if cfg.agent == "gru":
        split, size, what = "num_envs", cfg.num_envs, "the recurrent variant splits the envs"
    else:
        split, size, what = "frames_per_batch", cfg.frames_per_batch, "the feed-forward variant splits the rollout"
    if size % m:
        fit = max(d for d in range(1, m + 1) if size % d == 0)
        step = m if cfg.agent == "gru" else math.lcm(m, max(1, cfg.num_envs))  # (a whole number of steps per env)
        errors.append(f"loss.num_minibatches ({m}) must divide {split} ({size}): {what} into minibatches; set "
                      f"loss.num_minibatches={fit} or {split}={size // step * step or step}")
    if opts.memory_window and cfg.agent != "gru":
        errors.append(f"loss.memory_window ({opts.memory_window}) belongs to the recurrent variant (agent='gru'); "
                      "set agent='gru' or loss.memory_window=0")
    if not cfg.share_params:
        errors.append("pqn-vdn's Q-network is shared by all agents (JaxMARL's QNetwork, the agent id in its input): "
                      "set share_params=True")
    return errors


_BUILDERS = "torchrl_vd.train.builders"
for _spec in (
    AlgoSpec("iql", f"{_BUILDERS}:build_iql", "IQL: independent Q-learners, no mixer (Tan 1993; EPyMARL's baseline)",
             loss_options=IQLLossOptions, check=_check_iql),
    AlgoSpec("vdn", f"{_BUILDERS}:build_vdn", "VDN: Q_tot = Σ_i Q_i (Sunehag et al. 2018)"),
    AlgoSpec("qmix", f"{_BUILDERS}:build_qmix", "QMIX: monotonic hypernetwork mixer on the state (Rashid et al. 2018)",
             mixer_options=QMixerOptions),
    AlgoSpec("cw-qmix", f"{_BUILDERS}:build_cw_qmix", "CW-QMIX: QMIX projected toward an unrestricted Q̂*, centrally "
             "weighted (Rashid et al. 2020)", mixer_options=WeightedQMixerOptions, loss_options=WeightedQMixLossOptions),
    AlgoSpec("ow-qmix", f"{_BUILDERS}:build_ow_qmix", "OW-QMIX: QMIX projected toward an unrestricted Q̂*, "
             "optimistically weighted (Rashid et al. 2020)", mixer_options=WeightedQMixerOptions,
             loss_options=WeightedQMixLossOptions),
    AlgoSpec("qplex", f"{_BUILDERS}:build_qplex", "QPLEX: duplex dueling mixer with attention, IGM-complete "
             "(Wang et al. 2021)", mixer_options=QPlexMixerOptions),
    AlgoSpec("qtran", f"{_BUILDERS}:build_qtran", "QTRAN-base: unrestricted Q_jt + V with L_opt/L_nopt "
             "(Son et al. 2019)", mixer_options=QTranNetOptions, loss_options=QTranLossOptions),
    AlgoSpec("qtran-alt", f"{_BUILDERS}:build_qtran_alt", "QTRAN-alt: counterfactual L_nopt-min (Son et al. 2019, "
             "Sec. 3)", mixer_options=QTranNetOptions, loss_options=QTranLossOptions),
    AlgoSpec("pqn-vdn", f"{_BUILDERS}:build_pqn_vdn", "PQN-VDN: VDN on the online network's λ-returns, normalised "
             "Q-network, no target network, no replay (Gallici et al. 2025; JaxMARL)", loss_options=PQNOptions,
             presets=PQN_PRESETS, collectors=("single", "async"), check=_check_pqn,
             learner="torchrl_vd.train.pqn_learner:make_pqn_learner", not_used=PQN_NOT_USED),
    AlgoSpec("maven", f"{_BUILDERS}:build_maven", "MAVEN: z-conditioned QMIX, variational MI, hierarchical z-policy "
             "(Mahajan et al. 2019)", mixer_options=MavenMixerOptions, loss_options=MavenOptions,
             presets={"agent": "gru", "last_action": True}, agents=("gru",), check=_check_maven),
):
    add_algo(_spec)


__all__ = ["ALGOS", "COLLECTORS", "AlgoParts", "AlgoSpec", "Collector", "JointExtras", "add_algo", "algo_spec",
           "algorithms", "get_algo", "register_algo", "unknown_algo_problem"]
