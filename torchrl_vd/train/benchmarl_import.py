"""BenchMARL configs as ``TrainConfig`` fields: each BenchMARL key is mapped, or named in an error or a warning.

``TrainConfig.from_benchmarl(...)`` and ``torchrl-vd train --benchmarl ...`` read BenchMARL's own yaml files
(train/benchmarl_files.py puts them together as Hydra does, :func:`~torchrl_vd.train.benchmarl_files.import_benchmarl`)
and translate them here, key by key. The translation
follows what BenchMARL 1.5.2 does with each key (``benchmarl/experiment/experiment.py``,
``algorithms/{qmix,vdn,iql}.py``, ``models/{mlp,gru}.py``, ``environments/{vmas,pettingzoo}/common.py``). It also
sets what BenchMARL does but no key says:

* the team reward is the mean of the agents' rewards (``Qmix.process_batch``: ``reward.mean(-2)``), so
  ``env_kwargs.team_reward = "mean"``. IQL instead learns from each agent's own reward (``DQNLoss`` on
  ``(group, "reward")``), so ``loss.rewards = "individual"``;
* torchrl's ``VmasEnv`` reports VMAS's time limit as ``terminated``, so BenchMARL never bootstraps past it there
  (``bootstrap_time_limits=False``). PettingZoo reports ``truncated`` and BenchMARL does bootstrap (True);
* QMIX mixes with torchrl's ``QMixer``, whose hypernetworks have one layer (``mixer.hypernet_layers=1``); the TD
  targets have no double Q (``double_q=False``); no agent id is appended (``agent_id=False``).

The tables below (:data:`EXPERIMENT_KEYS`, :data:`ALGORITHM_KEYS`, :data:`MODEL_KEYS`) list every key of
BenchMARL 1.5.2's yaml files for these parts. docs/COMING_FROM_BENCHMARL.md shows them
(``python -m torchrl_vd.train.benchmarl_import`` prints them). A key outside the tables is an error that names its
close matches. A key whose value cannot be expressed here is an error when it changes what is learned, and a
warning when it changes only bookkeeping or the measurement. Pure Python: imports neither torch nor PyYAML.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from torchrl_vd.train.options import coerce

BENCHMARL_VERSION = "1.5.2"
"""The BenchMARL release whose keys the tables list (the version the tests read its yaml from)."""


class BenchmarlImportError(ValueError):
    """A BenchMARL config that cannot be imported: every problem found, each naming its key and its fix."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Cannot import the BenchMARL config: " + "; ".join(p.rstrip(".") for p in problems) + ".")


class BenchmarlImportWarning(UserWarning):
    """A BenchMARL key whose value is not honoured exactly. The import goes on, and the message says how the run
    differs."""


@dataclass(frozen=True)
class Key:
    """One BenchMARL key: the type BenchMARL's dataclass gives it, what it sets here, and how."""

    hint: Any
    """The type of the value. PyYAML reads ``1e-5`` as a string; Hydra would give a float, and so does the import."""
    ours: str
    """The ``TrainConfig`` field it sets, or ``—`` when it sets none."""
    note: str = ""
    """How it maps, or why it does not."""
    needed: bool = True
    """The translation needs the value. A config that lacks it is refused (BenchMARL requires every key)."""


_ONLY = "error for any other value"
_OFF_POLICY = "on-policy algorithms only: QMIX, VDN and IQL never read it"
EXPERIMENT_KEYS: dict[str, Key] = {
    "sampling_device": Key(str, "device", "one device holds the envs, the networks and the buffer; if the three "
                                          "devices differ, train_device is used (warning)"),
    "train_device": Key(str, "device", "see sampling_device"),
    "buffer_device": Key(str, "device", "`disk` (a memory-mapped buffer): the buffer stays on the device (warning)"),
    "share_policy_params": Key(bool, "share_params"),
    "prefer_continuous_actions": Key(bool, "—", "no effect: QMIX, VDN and IQL are discrete-only, so BenchMARL gives "
                                               "them discrete actions whatever this says", needed=False),
    "collect_with_grad": Key(bool, "—", "no effect on what is learned; `true`: ignored (warning)", needed=False),
    "parallel_collection": Key(bool, "—", "speed only (PettingZoo copies in worker processes): see `collector`",
                               needed=False),
    "gamma": Key(float, "gamma"),
    "lr": Key(float, "lr", "with `optimizer='adam'`"),
    "adam_eps": Key(float, "optimizer_eps"),
    "adam_extra_kwargs": Key(dict, "—", "`{}` only: other Adam arguments are an error", needed=False),
    "clip_grad_norm": Key(bool, "grad_clip", "`true`: grad_clip = clip_grad_val (global norm); `false` clips each "
                                             "value: an error unless clip_grad_val is null"),
    "clip_grad_val": Key(float | None, "grad_clip", "null: grad_clip=0 (no clipping); 0 (BenchMARL would zero "
                                                    "every gradient): error"),
    "soft_target_update": Key(bool, "target_update", "`true`: target_update = polyak_tau; `false`: target_update = "
                                                     "hard_target_update_frequency"),
    "polyak_tau": Key(float, "target_update", "θ⁻ ← (1 − τ) θ⁻ + τ θ after each gradient step, as BenchMARL's "
                                              "SoftUpdate; τ ≥ 1: error"),
    "hard_target_update_frequency": Key(int, "target_update", "torchrl's HardUpdate(value_network_update_interval=N) "
                                                              "on both sides: a copy every N + 1 gradient steps"),
    "exploration_eps_init": Key(float, "eps_start"),
    "exploration_eps_end": Key(float, "eps_end"),
    "exploration_anneal_frames": Key(int | None, "eps_frames", "null: a third of the run's frames, as BenchMARL"),
    "max_n_iters": Key(int | None, "frames", "frames = iterations × frames per batch (the smaller budget when "
                                             "max_n_frames is set too)"),
    "max_n_frames": Key(int | None, "frames", "rounded up to whole iterations, as BenchMARL runs them"),
    "on_policy_collected_frames_per_batch": Key(int, "—", _OFF_POLICY, needed=False),
    "on_policy_n_envs_per_worker": Key(int, "—", _OFF_POLICY, needed=False),
    "on_policy_n_minibatch_iters": Key(int, "—", _OFF_POLICY, needed=False),
    "on_policy_minibatch_size": Key(int, "—", _OFF_POLICY, needed=False),
    "off_policy_collected_frames_per_batch": Key(int, "frames_per_batch"),
    "off_policy_n_envs_per_worker": Key(int, "num_envs"),
    "off_policy_n_optimizer_steps": Key(int, "updates_per_batch", "gradient steps after each collected batch, "
                                                                  "from the first batch on"),
    "off_policy_train_batch_size": Key(int, "batch_size", "gru: whole sequences, ⌈size / seq_len⌉ × seq_len"),
    "off_policy_memory_size": Key(int, "buffer_size", "gru: ⌈size / seq_len⌉ × seq_len"),
    "off_policy_init_random_frames": Key(int, "learning_starts", "0 only: BenchMARL acts uniformly at random for "
                                                                 "those frames and still trains on them; error"),
    "off_policy_use_prioritized_replay_buffer": Key(bool, "—", "`false` (uniform replay) only: no prioritized replay "
                                                               "here; error"),
    "off_policy_prb_alpha": Key(float, "—", "prioritized replay only", needed=False),
    "off_policy_prb_beta": Key(float, "—", "prioritized replay only", needed=False),
    "evaluation": Key(bool, "eval_every", "`false`: eval_every=0 (a run here is still evaluated once, at its end)"),
    "render": Key(bool, "—", "videos for the loggers only", needed=False),
    "evaluation_interval": Key(int, "eval_every", "BenchMARL also evaluates after its first iteration"),
    "evaluation_episodes": Key(int, "eval_episodes"),
    "evaluation_deterministic_actions": Key(bool, "—", "`true`: greedy, as every evaluation here; `false`: evaluated "
                                                       "greedily anyway (warning)", needed=False),
    "evaluation_static": Key(bool, "—", "evaluations here replay the same episodes each time (seed + 10 000), as "
                                        "BenchMARL's `true` does", needed=False),
    "loggers": Key(tuple[str, ...], "loggers", "csv (metrics.csv is always written), tensorboard, wandb; "
                                               "mlflow: dropped (warning)", needed=False),
    "project_name": Key(str, "—", "the wandb project", needed=False),
    "wandb_extra_kwargs": Key(dict, "—", "not used (wandb runs offline here)", needed=False),
    "create_json": Key(bool, "—", "the marl-eval JSON: `torchrl-vd export RUN --format marl-eval`", needed=False),
    "save_folder": Key(str | None, "—", "a run's directory is `--out` (a value here: warning)", needed=False),
    "restore_file": Key(str | None, "—", "null only: BenchMARL checkpoints cannot be read here (`--resume` continues "
                                         "a torchrl_vd run); error", needed=False),
    "restore_map_location": Key(Any, "—", "checkpoint loading only", needed=False),
    "checkpoint_interval": Key(int, "checkpoint_every", "0: at the end only. A checkpoint here also starts new "
                                                        "episodes (docs/TRAINING.md); BenchMARL's leaves the envs"),
    "checkpoint_at_end": Key(bool, "—", "a run here always checkpoints at its end", needed=False),
    "keep_checkpoints_num": Key(int | None, "—", "a run here keeps its last two checkpoints", needed=False),
    "exclude_buffer_from_checkpoint": Key(bool, "—", "checkpoints here always hold the buffer (exact resume)",
                                          needed=False),
}
"""``conf/experiment/base_experiment.yaml`` (``ExperimentConfig``), every key."""

_DELAY = Key(bool, "target_update", "`true`: target networks updated as the experiment says; `false`: error")
_LOSS = Key(str, "loss.loss_function", "l2 (δ², mean), l1, smooth_l1: the same distances")
ALGORITHM_KEYS: dict[str, dict[str, Key]] = {
    "qmix": {"mixing_embed_dim": Key(int, "mixer.mixing_embed_dim", "with mixer.hypernet_layers=1 (torchrl's "
                                                                    "QMixer)"),
             "delay_value": _DELAY, "loss_function": _LOSS},
    "vdn": {"delay_value": _DELAY, "loss_function": _LOSS},
    "iql": {"delay_value": _DELAY, "loss_function": _LOSS},
}
"""``conf/algorithm/{qmix,vdn,iql}.yaml``, every key. BenchMARL's other algorithms are actor-critic: not imported."""

_NAME = Key(str, "agent", "mlp, gru (the model the file defines)")
_LAYER = Key(str, "—", f"`torch.nn.Linear` only; {_ONLY}")
_ACTIVATION = Key(str, "activation", "`torch.nn.ReLU`, `torch.nn.Tanh` or `torch.nn.ELU`")
_NULL = Key(dict | None, "—", f"null only; {_ONLY}")
_NORM = Key(str | None, "—", f"null only; {_ONLY}")
_MLP_LAYERS = {"layer_class": _LAYER, "activation_class": _ACTIVATION, "activation_kwargs": _NULL,
               "norm_class": _NORM, "norm_kwargs": Key(dict | None, "—", "unused without norm_class", needed=False)}
MODEL_KEYS: dict[str, dict[str, Key]] = {
    "mlp": {"name": _NAME, "num_cells": Key(tuple[int, ...], "hidden"), **_MLP_LAYERS,
            "num_feature_dims": Key(int, "—", f"1 only (flat observations); {_ONLY}", needed=False)},
    "gru": {"name": _NAME, "hidden_size": Key(int, "hidden[-1]", "the GRU width"),
            "n_layers": Key(int, "—", f"1 only; {_ONLY}"), "bias": Key(bool, "—", f"`true` only; {_ONLY}"),
            "dropout": Key(float, "—", f"0 only; {_ONLY}"), "compile": Key(bool, "—", "speed only", needed=False),
            "mlp_num_cells": Key(tuple[int, ...], "hidden[:-1]", "BenchMARL's MLP comes after the GRU, ours before it "
                                                      "(warning)"),
            **{f"mlp_{k}": v for k, v in _MLP_LAYERS.items()}},
}
"""``conf/model/layers/{mlp,gru}.yaml``, every key. ``lstm``, ``cnn``, ``gnn``, ``deepsets`` and ``sequence`` models
are not imported."""

ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "ELU": "elu"}
PETTINGZOO_GROUPS = {"simple_adversary": "adversary, agent", "simple_crypto": "eve, bob, alice",
                     "simple_push": "adversary, agent", "simple_speaker_listener": "speaker, listener",
                     "simple_tag": "adversary, agent", "simple_world_comm": "leadadversary, adversary, agent"}
"""BenchMARL's PettingZoo tasks whose agents form several groups (torchrl groups ``name_<i>`` agents by name)."""
CONTINUOUS_ONLY = {"pettingzoo/multiwalker", "pettingzoo/waterworld"}


@dataclass
class BenchmarlConfig:
    """A BenchMARL run's parts, read (train/benchmarl_files.py) but not yet translated."""

    experiment: dict
    algorithm: str
    """The algorithm's name: the file name of ``conf/algorithm/<name>.yaml`` (qmix, vdn, iql)."""
    algorithm_config: dict
    task: str
    """``<env>/<task>`` as BenchMARL names it, e.g. ``vmas/balance`` or ``pettingzoo/simple_spread``."""
    task_config: dict
    model_config: dict
    seed: int = 0


class _Report:
    """The problems (errors) and warnings of one translation, each prefixed by the key it is about."""

    def __init__(self):
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, key: str, text: str) -> None:
        self.errors.append(f"{key}: {text}")

    def warn(self, key: str, text: str) -> None:
        self.warnings.append(f"{key}: {text}")


def benchmarl_fields(bm: BenchmarlConfig) -> tuple[dict[str, Any], list[str]]:
    """The ``TrainConfig`` fields of a BenchMARL run and the warnings of its import. Every problem found is raised at
    once in one :class:`BenchmarlImportError` (when a part is missing keys, the translation stops there)."""
    r = _Report()
    e = _checked("experiment", bm.experiment, EXPERIMENT_KEYS, r)
    if bm.algorithm not in ALGORITHM_KEYS:
        r.error("algorithm", f"{bm.algorithm!r} cannot be imported: BenchMARL's value-based algorithms are "
                             f"{', '.join(ALGORITHM_KEYS)}; the others are actor-critic methods not implemented here")
    a = _checked("algorithm", bm.algorithm_config, ALGORITHM_KEYS.get(bm.algorithm, {}), r)
    model = str(bm.model_config.get("name", "(no name)")) if "layers" not in bm.model_config else "sequence"
    if model not in MODEL_KEYS:
        r.error("model", f"BenchMARL's {model!r} model cannot be imported: the agents here are "
                         f"{' or '.join(MODEL_KEYS)} (model=layers/mlp or model=layers/gru)")
    m = _checked("model", bm.model_config, MODEL_KEYS.get(model, {}), r)
    parts = ((e, EXPERIMENT_KEYS), (a, ALGORITHM_KEYS.get(bm.algorithm)), (m, MODEL_KEYS.get(model)))
    if not all(table is not None and all(k in got for k, spec in table.items() if spec.needed) for got, table in parts):
        raise BenchmarlImportError(r.errors)
    fields = {**_run_fields(e, r), **_algorithm_fields(bm.algorithm, a, r), **_task_fields(bm.task, bm.task_config, r),
              "seed": int(bm.seed)}
    fields.update(_model_fields(model, m, e, r))
    if r.errors:
        raise BenchmarlImportError(r.errors)
    return fields, r.warnings


def _checked(section: str, values: dict, table: dict[str, Key], r: _Report) -> dict[str, Any]:
    """``values`` with each value coerced to its key's type. Unknown keys, missing needed keys and values of the
    wrong type are reported to ``r``."""
    out: dict[str, Any] = {}
    if not table:  # an algorithm or model that cannot be imported: already reported
        return out
    for key, value in values.items():
        if key not in table:
            close = difflib.get_close_matches(key, list(table), n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            r.error(f"{section}.{key}", f"not a BenchMARL {BENCHMARL_VERSION} {section} key{hint}; its keys: "
                                        f"{', '.join(table)}")
            continue
        try:
            out[key] = coerce(f"{section}.{key}", value, table[key].hint)
        except ValueError:
            hint = table[key].hint
            r.error(f"{section}.{key}", f"expects {getattr(hint, '__name__', None) or hint}, got {value!r}")
    missing = [k for k, spec in table.items() if spec.needed and k not in values]
    if missing:
        r.error(section, f"missing key(s) {', '.join(missing)}: BenchMARL needs every key of its {section} config. "
                         "Give its whole file (or BenchMARL's conf directory, under an overlay such as a fine-tuned "
                         "config.yaml)")
    return out


def _run_fields(e: dict, r: _Report) -> dict[str, Any]:
    """Collection, replay, optimisation, exploration, evaluation and bookkeeping: the experiment keys."""
    fpb = e["off_policy_collected_frames_per_batch"]
    max_frames = _max_frames(e, fpb, r)
    anneal = e["exploration_anneal_frames"]
    return dict(
        num_envs=e["off_policy_n_envs_per_worker"], frames_per_batch=fpb,
        frames=-(-max_frames // fpb) * fpb,  # BenchMARL runs ⌈max_frames / fpb⌉ whole iterations
        updates_per_batch=e["off_policy_n_optimizer_steps"], batch_size=e["off_policy_train_batch_size"],
        buffer_size=e["off_policy_memory_size"], learning_starts=_refuse_unsupported(e, r),
        gamma=e["gamma"], lr=e["lr"], optimizer="adam", optimizer_eps=e["adam_eps"], grad_clip=_grad_clip(e, r),
        target_update=_target_update(e, r), double_q=False,
        eps_start=e["exploration_eps_init"], eps_end=e["exploration_eps_end"],
        eps_frames=max_frames // 3 if anneal is None else anneal,
        share_params=e["share_policy_params"], device=_device(e, r),
        eval_every=_eval_every(e, fpb, r), eval_episodes=e["evaluation_episodes"],
        checkpoint_every=_checkpoint_every(e, fpb, r), loggers=_loggers(e, r),
        reward_scale=1.0, standardise_rewards=False, td_lambda=None,
    )


def _max_frames(e: dict, fpb: int, r: _Report) -> int:
    """BenchMARL's ``get_max_n_frames``: max_n_frames, max_n_iters × fpb, or the smaller of the two."""
    budgets = [b for b in (e["max_n_frames"], None if e["max_n_iters"] is None else e["max_n_iters"] * fpb)
               if b is not None]
    if not budgets:
        r.error("experiment.max_n_frames", "max_n_frames and max_n_iters are both null: set one (BenchMARL refuses "
                                           "this config too)")
        return fpb
    return min(budgets)


def _refuse_unsupported(e: dict, r: _Report) -> int:
    """Report the keys whose only importable value is their default; return ``learning_starts`` (0). BenchMARL's
    first ``off_policy_init_random_frames`` frames come from a uniform random policy and it trains on them from the
    first batch on: ``learning_starts`` (no gradient step yet) is another thing."""
    for key, default in (("off_policy_init_random_frames", 0), ("off_policy_use_prioritized_replay_buffer", False),
                         ("adam_extra_kwargs", {}), ("restore_file", None)):
        if e.get(key, default) not in (default,):
            r.error(f"experiment.{key}", f"{e[key]!r} has no counterpart here ({EXPERIMENT_KEYS[key].note}): set "
                                         f"{key}={'null' if default is None else default!r}")
    return 0


def _grad_clip(e: dict, r: _Report) -> float:
    val = e["clip_grad_val"]
    if val is None:
        return 0.0
    if not e["clip_grad_norm"]:
        r.error("experiment.clip_grad_norm", "false clips each gradient value (clip_grad_value_), which is not done "
                                             "here (grad_clip clips the global norm): set clip_grad_norm=true, or "
                                             "clip_grad_val=null for no clipping")
    if val <= 0:
        r.error("experiment.clip_grad_val", f"{val} would zero every gradient in BenchMARL (here grad_clip=0 means no "
                                            "clipping): set clip_grad_val=null for no clipping, or a positive value")
    return float(val)


def _target_update(e: dict, r: _Report) -> float:
    """Polyak τ (< 1) or torchrl's ``HardUpdate`` interval (≥ 1). The learner builds the same updater that
    BenchMARL builds (train/learner.py)."""
    if e["soft_target_update"]:
        tau = e["polyak_tau"]
        if not 0 < tau < 1:
            r.error("experiment.polyak_tau", f"τ={tau}: target_update takes a τ in (0, 1) (a value ≥ 1 is a "
                                             "hard-update interval)")
        return tau
    every = e["hard_target_update_frequency"]
    if every < 1:
        r.error("experiment.hard_target_update_frequency", f"{every} (a copy after every step) has no counterpart: "
                                                           "target_update takes an interval ≥ 1")
    return every


def _device(e: dict, r: _Report) -> str:
    sampling, train, buffer = e["sampling_device"], e["train_device"], e["buffer_device"]
    if buffer == "disk":
        r.warn("experiment.buffer_device", f"'disk' (a memory-mapped buffer) is not available here: the buffer stays "
                                           f"on {train}")
    if len({sampling, train} | ({buffer} - {"disk"})) > 1:
        r.warn("experiment.train_device", f"one device holds the envs, networks and buffer here: device={train!r} "
                                          f"(BenchMARL: sampling {sampling}, train {train}, buffer {buffer})")
    return train


def _eval_every(e: dict, fpb: int, r: _Report) -> int:
    if e.get("evaluation_deterministic_actions", True) is False:
        r.warn("experiment.evaluation_deterministic_actions", "false (ε-greedy evaluation) is not done here: every "
                                                              "evaluation is greedy")
    if not e["evaluation"]:
        return 0
    if e["evaluation_interval"] % fpb:
        r.error("experiment.evaluation_interval", f"{e['evaluation_interval']} is not a multiple of "
                                                  f"off_policy_collected_frames_per_batch ({fpb}); BenchMARL refuses it "
                                                  "too")
    return e["evaluation_interval"]


def _checkpoint_every(e: dict, fpb: int, r: _Report) -> int:
    every = e["checkpoint_interval"]
    if every % fpb:
        r.error("experiment.checkpoint_interval", f"{every} is not a multiple of off_policy_collected_frames_per_batch "
                                                  f"({fpb}); BenchMARL refuses it too")
    if e.get("save_folder") is not None:
        r.warn("experiment.save_folder", f"{e['save_folder']!r} is not used: give the run directory with --out "
                                         "(TrainConfig.out_dir)")
    if e.get("collect_with_grad"):
        r.warn("experiment.collect_with_grad", "true is ignored: collection here runs without gradients (it does not "
                                               "change what QMIX, VDN or IQL learn)")
    return every


def _loggers(e: dict, r: _Report) -> tuple[str, ...]:
    kept = tuple(name for name in e.get("loggers", ()) if name in ("tensorboard", "wandb"))
    dropped = [name for name in e.get("loggers", ()) if name not in (*kept, "csv")]  # metrics.csv: always
    if dropped:
        r.warn("experiment.loggers", f"{dropped} dropped: the loggers here are csv (metrics.csv, always), tensorboard "
                                     "and wandb")
    return kept


def _algorithm_fields(name: str, a: dict, r: _Report) -> dict[str, Any]:
    if not a["delay_value"]:
        r.error("algorithm.delay_value", "false (no target networks) has no counterpart: the losses here always "
                                         "bootstrap from target networks; set delay_value=true")
    if a["loss_function"] not in ("l2", "l1", "smooth_l1"):
        r.error("algorithm.loss_function", f"{a['loss_function']!r}: BenchMARL's distances are l2, l1, smooth_l1")
    loss = {"loss_function": a["loss_function"]}
    if name == "iql":
        loss["rewards"] = "individual"  # BenchMARL's IQL: DQNLoss on each agent's own reward
    mixer = {"mixing_embed_dim": a["mixing_embed_dim"], "hypernet_layers": 1} if name == "qmix" else {}
    return {"algo": name, "mixer_kwargs": mixer, "loss_kwargs": loss}


def _task_fields(task: str, t: dict, r: _Report) -> dict[str, Any]:
    """The env, its arguments (the task yaml's keys, passed to the scenario or env as BenchMARL passes them) and
    how time limits are treated."""
    family, _, name = task.partition("/")
    if family == "vmas":
        return {"env": task, "env_kwargs": {**t, "team_reward": "mean"}, "bootstrap_time_limits": False}
    if family != "pettingzoo":
        r.error("task", f"{task!r}: BenchMARL's {family} tasks cannot be imported (importable: vmas/*, pettingzoo/*)")
        return {}
    if task in CONTINUOUS_ONLY:
        r.error("task", f"{task!r} has continuous actions only; QMIX, VDN and IQL need discrete ones")
    if name in PETTINGZOO_GROUPS:
        r.error("task", f"BenchMARL splits the agents of {task} into the groups {PETTINGZOO_GROUPS[name]} and trains "
                        f"each group on its own. A run here trains one team: use `torchrl-vd train --env pettingzoo/"
                        f"{t.get('task', name)}` to train all the agents as one team")
    kwargs = dict(t)
    env_id, max_cycles = kwargs.pop("task", None), kwargs.pop("max_cycles", None)
    if env_id is None:
        r.error("task.task", "missing: BenchMARL's pettingzoo task yaml names the env (e.g. task: simple_spread_v3)")
        return {}
    return {"env": f"pettingzoo/{env_id}", "env_kwargs": {**kwargs, "max_steps": max_cycles, "team_reward": "mean"},
            "bootstrap_time_limits": True}


def _layers(m: dict, prefix: str, r: _Report) -> str:
    """The activation of an MLP's keys (``prefix`` ``mlp_`` for the GRU model's head); others must be the plain ones."""
    if m[f"{prefix}layer_class"] != "torch.nn.Linear":
        r.error(f"model.{prefix}layer_class", f"{m[f'{prefix}layer_class']!r}: the layers here are torch.nn.Linear")
    for key in ("activation_kwargs", "norm_class"):
        if m[f"{prefix}{key}"] is not None:
            r.error(f"model.{prefix}{key}", f"{m[f'{prefix}{key}']!r} has no counterpart here: set it to null")
    module, _, cls = m[f"{prefix}activation_class"].rpartition(".")
    if module not in ("torch.nn", "torch.nn.modules.activation") or cls not in ACTIVATIONS:
        r.error(f"model.{prefix}activation_class", f"{m[f'{prefix}activation_class']!r}: the activations here are "
                                                   f"{', '.join('torch.nn.' + c for c in ACTIVATIONS)}")
        return "relu"
    return ACTIVATIONS[cls]


def _model_fields(model: str, m: dict, e: dict, r: _Report) -> dict[str, Any]:
    """The agent network. A GRU agent also sets its sequence layout: BenchMARL stores each env's whole collected
    chunk (``frames_per_batch / num_envs`` steps) as one sequence and counts batch and memory in whole sequences."""
    if model == "mlp":
        if m.get("num_feature_dims", 1) != 1:
            r.error("model.num_feature_dims", f"{m['num_feature_dims']}: the agents here read flat observations (1)")
        return {"agent": "mlp", "hidden": tuple(m["num_cells"]), "activation": _layers(m, "", r), "agent_id": False}
    for key, only in (("n_layers", 1), ("bias", True), ("dropout", 0)):
        if m[key] != only:
            r.error(f"model.{key}", f"{m[key]!r}: the GRU agent here has {key}={only}")
    seq = -(-e["off_policy_collected_frames_per_batch"] // e["off_policy_n_envs_per_worker"])
    hidden = (*m["mlp_num_cells"], m["hidden_size"])
    r.warn("model.mlp_num_cells", f"BenchMARL's gru model is GRU({m['hidden_size']}) → MLP{list(m['mlp_num_cells'])}; "
                                  f"the GRU agent here is MLP → GRU → linear: imported as hidden={hidden} (the same "
                                  "widths, the MLP before the GRU)")
    r.warn("model", "BenchMARL starts every sampled sequence from a zero hidden state (no burn-in); here each sequence "
                    "starts from the hidden state the collector stored for that step (burn_in=0)")
    return {"agent": "gru", "hidden": hidden, "activation": _layers(m, "mlp_", r), "agent_id": False,
            "last_action": False, "seq_len": seq, "burn_in": 0,
            "batch_size": math.ceil(e["off_policy_train_batch_size"] / seq) * seq,
            "buffer_size": math.ceil(e["off_policy_memory_size"] / seq) * seq}


def mapping_markdown() -> str:
    """The key tables as Markdown (docs/COMING_FROM_BENCHMARL.md; tests/test_benchmarl_import.py checks the page)."""
    lines = []
    for title, table in [("experiment", EXPERIMENT_KEYS),
                         *((f"algorithm/{name}", keys) for name, keys in ALGORITHM_KEYS.items()),
                         *((f"model/layers/{name}", keys) for name, keys in MODEL_KEYS.items())]:
        lines += [f"| `{title}` key | here | how |", "| --- | --- | --- |"]
        lines += [f"| `{key}` | {'`' + k.ours + '`' if k.ours != '—' else '—'} | {k.note or 'the same'} |"
                  for key, k in table.items()]
        lines.append("")
    return "\n".join(lines)


__all__ = ["ALGORITHM_KEYS", "BENCHMARL_VERSION", "BenchmarlConfig", "BenchmarlImportError", "BenchmarlImportWarning",
           "EXPERIMENT_KEYS", "Key", "MODEL_KEYS", "benchmarl_fields", "mapping_markdown"]


if __name__ == "__main__":  # python -m torchrl_vd.train.benchmarl_import: the tables of docs/COMING_FROM_BENCHMARL.md
    print(mapping_markdown(), end="")
