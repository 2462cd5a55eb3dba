"""The suites of ``torchrl-vd reproduce``: what to run and what to compare it with.

Plain data, so that env settings, presets and reference numbers are finalized in this one file, and the command
line lists the suites without importing torch. The one computed part: the ``vmas`` entries are the BenchMARL import
(pure Python, torchrl_vd/train/benchmarl_import.py) of the BenchMARL run they are compared with.

``SUITES[name]`` is a dict:

* ``description``: one line.
* ``metric``: how one run becomes one number, a name in ``torchrl_vd.reproduce.metrics.METRICS``
  (``final_eval_return``: summary.json's greedy evaluation; ``last10_train_return``: the mean of the
  last 10 logged ``train_return`` values of metrics.csv, MARLlib's convention; ``epymarl_max_return``: each
  seed's greedy evaluation return at the evaluation step whose mean over all seeds is highest, EPyMARL's
  "maximum return"; ``mean_eval_return``: the mean of a seed's evaluations, EPyMARL's "average return").
* ``curves`` (optional): the x axes (``"frames"``, ``"wall_s"``) of the greedy-evaluation curves the report draws
  and writes to results.json, and a wall-clock table in RESULTS.md; without it, the ε-greedy training return
  against frames.
* ``quick``: the ``--quick`` smoke version of a long suite, ``{"frames": int, "seeds": [...],
  "overrides": {...}}`` applied to every entry (its runs go to ``OUT/<suite>-quick``), or None when
  the suite is already short.
* ``entries``: one dict per (task, algo):

  - ``task``: ``TrainConfig.env`` (``family/task``); ``algo``: ``TrainConfig.algo``. The env family's
    and the algorithm's presets (train/presets.py) are applied first, then
  - ``overrides``: any ``TrainConfig`` fields (dotted keys reach into dicts, as ``--set`` does);
  - ``seeds``: list of ints; ``frames``: total environment frames per run;
  - ``scale``: our metric times ``scale`` is in the reference's units (e.g. the number of agents if
    the reference sums over agents and our team reward averages them); 1.0 when the units agree;
  - ``reference``: None (nothing published), a published constant
    ``{"value", "ci", "ci_kind", "units", "source"}`` (``ci`` is the half-width ±), or a results file
    ``{"file", "units", "source"[, "task", "algo", "ci_kind"]}``: a CSV or JSON list of records with
    columns ``task, algo, value`` and either ``ci`` (one row: that value ± ci) or one row per seed
    (the reference is then their mean ± 95% t-interval). ``task``/``algo`` name the rows when the
    file spells them differently from the entry; a relative ``file`` names a file in the package's
    ``torchrl_vd/reproduce/references/`` folder (package data, installed with the wheel), an absolute one any
    file. A missing file or row leaves the reference *pending* (shown, not an error).
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------- mpe
# MARLlib's MPE results (github.com/Replicable-MARL/MARLlib, results/mpe_cooperative/<task>/<algo>_gru_<task>/,
# results commit 306629c: 4 share_policy__curve_file_*.csv per run, `step,reward` every 10k steps to 2M).
# Recomputed there: mean over seeds of the last 10 logged values per seed, ± the population std over the
# 4 seeds: simple_spread VDN -189.3 ± 3.2, QMIX -190.5 ± 1.6; speaker_listener VDN -35.3 ± 2.9, QMIX -25.7 ± 2.7.
# Their units are not ours, for two reasons established from MARLlib's code and PettingZoo's history:
# 1. MARLlib gives every agent the sum of all agents' rewards (RllibMPE_FCOOP) and RLlib's group wrapper adds
#    those copies up: the logged episode reward is n x (our team reward, the sum over agents).
# 2. PettingZoo <= 1.22.3 (MARLlib's) charged each agent a -1 collision with itself every step in
#    simple_spread (fixed in 1.22.4, commit ec7138b3; mpe2, ours, has the fix): with local_ratio 0.5 that is
#    -37.5 per episode for 3 agents, i.e. -112.5 in MARLlib's units.
# So simple_spread: M = 3 T - 112.5, T = (M + 112.5) / 3; speaker_listener (2 agents, no collisions):
# M = 2 T. A uniform-random policy scores -346.6 ± 70.4 (simple_spread) and -164.2 ± 134.3
# (speaker_listener) in MARLlib's units on PettingZoo 1.12 with MARLlib's reward handling (1000 episodes),
# -347.6 converted from mpe2 with the formula above; a scripted near-optimal simple_spread policy scores
# -25.2 in our units (-188 in theirs): MARLlib's trained agents are near the optimum.
# The references below are converted into our units (team reward summed over agents, mpe2).
MARLLIB_SOURCE = ("MARLlib (Hu et al., JMLR 24(315), 2023), results/mpe_cooperative at commit 306629c, "
                  "recomputed from its per-seed curve files and converted to our units (torchrl_vd/reproduce/suites.py)")
MARLLIB_UNITS = ("episode team reward (sum over agents, mpe2), mean of the last 10 logged values per seed; "
                 "MARLlib's M converted: simple_spread T = (M + 112.5) / 3, speaker_listener T = M / 2")
MARLLIB_CI_KIND = "± population std over MARLlib's 4 seeds, converted"

# MARLlib's VDN/QMIX config for MPE (its params.json at that commit, marllib/marl/algos/core/VD/iql_vdn_qmix.py,
# models/zoo/encoder/base_encoder.py and RLlib's defaults): Linear(obs->128) + tanh (RLlib's default
# fcnet_activation) + GRU 256, RMSprop lr 5e-4 (torch's eps 1e-8: MARLlib passes none), 32 episodes per batch and
# one gradient step per episode, buffer 5000 episodes, hard target update every 200 updates (5000 steps), eps 1 ->
# 0.05 over 50k steps, double Q, QMIX mixer embed 256 with one-layer hypernetworks, the team reward standardised
# per minibatch (reward_standardize), and the 25-step limit treated as terminal (PettingZoo 1.12 reported
# max_cycles as done: no bootstrap there). No agent id (MARLlib gives none). Not reproduced: the encoder layer's
# initialisation (RLlib's SlimFC: normc(1.0) weights, zero bias; ours: torch's default; the GRU cell and the Q head
# keep torch's defaults on both sides, models/zoo/rnn/jointQ_rnn.py).
MPE_OVERRIDES = {
    "env_kwargs": {"max_steps": 25},
    "agent": "gru",
    "hidden": [128, 256],
    "activation": "tanh",
    "agent_id": False,
    "optimizer": "rmsprop",
    "optimizer_eps": 1e-8,
    "lr": 5e-4,
    "num_envs": 32,
    "frames_per_batch": 800,
    "batch_size": 800,
    "updates_per_batch": 32,
    "buffer_size": 125_000,
    "target_update": 200,
    "eps_start": 1.0,
    "eps_end": 0.05,
    "eps_frames": 50_000,
    "double_q": True,
    "standardise_rewards": "batch",
    "bootstrap_time_limits": False,
    "checkpoint_every": 200_000,
}
MPE_ALGO = {"qmix": {"mixer_kwargs": {"mixing_embed_dim": 256, "hypernet_layers": 1}}}
# MARLlib's learning reward before standardisation is the team reward / n^2 (its wrapper gives each agent sum / n,
# its loss divides by n again): the scale cancels in the standardisation except against its 1e-5.
MPE_TASK = {"pettingzoo/simple_spread_v3": {"reward_scale": 1 / 9},
            "pettingzoo/simple_speaker_listener_v4": {"reward_scale": 1 / 4}}


def _marllib(value: float, ci: float, *, agents: int, offset: float) -> dict:
    """MARLlib's M ± ci converted to our team reward T = (M - offset) / agents."""
    return {"value": (value - offset) / agents, "ci": ci / agents, "ci_kind": MARLLIB_CI_KIND,
            "units": MARLLIB_UNITS, "source": f"{MARLLIB_SOURCE}; published M = {value} ± {ci}"}


_SPREAD = dict(agents=3, offset=-112.5)
_LISTENER = dict(agents=2, offset=0.0)
MPE_REFERENCES = {
    ("pettingzoo/simple_spread_v3", "vdn"): _marllib(-189.3, 3.2, **_SPREAD),
    ("pettingzoo/simple_spread_v3", "qmix"): _marllib(-190.5, 1.6, **_SPREAD),
    ("pettingzoo/simple_speaker_listener_v4", "vdn"): _marllib(-35.3, 2.9, **_LISTENER),
    ("pettingzoo/simple_speaker_listener_v4", "qmix"): _marllib(-25.7, 2.7, **_LISTENER),
}

MPE = {
    "description": ("MPE simple_spread / simple_speaker_listener vs MARLlib's published VDN and QMIX "
                    "(2M frames, 4 seeds)"),
    "metric": "last10_train_return",
    "quick": {"frames": 6_400, "seeds": [0, 1], "overrides": {"checkpoint_every": 0}},
    "entries": [
        {"task": task, "algo": algo, "overrides": {**MPE_OVERRIDES, **MPE_TASK[task], **MPE_ALGO.get(algo, {})},
         "seeds": [0, 1, 2, 3],
         "frames": 2_000_000,
         "scale": 1.0, "reference": MPE_REFERENCES.get((task, algo))}
        for task in ("pettingzoo/simple_spread_v3", "pettingzoo/simple_speaker_listener_v4")
        for algo in ("vdn", "qmix", "qtran", "qtran-alt")
    ],
}

# -------------------------------------------------------------------------------------------- mpe-xuance
# XuanCe's simple_spread_v3 benchmark (agi-brain/xuance-benchmarks @adec00d, MPE/simple_spread_v3/<algo>/results/
# seed_{1..5}/learning_curve.csv and config.json; XuanCe 1.3.3): VDN, QMIX, OW-QMIX (its WQMIX) and IQL, 16 envs,
# one gradient step of 256 transitions per 400 frames from frame 1000 (training_frequency 25 vector steps), buffer
# 100k transitions, Adam 1e-3 (eps 1e-5), no gradient clip, double Q, a hard target copy every 100 updates (200 for
# WQMIX), ε 1 -> 0.05 linear over 156,250 frames (VDN/QMIX: 2.5M / 16 parallel envs), 312,500 (WQMIX), 2.5M (IQL),
# the team reward as the mean over agents (reward_scale 1/3 of our sum; IQL: each agent's own reward), bootstrapping
# through the 25-step limit. MLP agents 64x64 (WQMIX 128x128) with parameter sharing and agent id, except QMIX
# (separate networks; mixer 128, hypernetworks 2 x 128). Not reproduced: XuanCe's one ε draw per vector step for
# every agent of every env (ours: per agent), its agent id concatenated after the first layer (ours: at the input),
# orthogonal initialisation and an LR decaying linearly to half over the run.
XUANCE_FILE = "xuance_simple_spread.csv"  # in the references folder: each seed's avg_return at 1M steps
XUANCE_SOURCE = ("XuanCe 1.3.3 benchmark runs (agi-brain/xuance-benchmarks @adec00d, 5 seeds; per-seed greedy returns "
                 f"at 1M steps in torchrl_vd/reproduce/references/{XUANCE_FILE}, whole curves in "
                 "benchmarks/reference/xuance_simple_spread_curves.csv)")
XUANCE_UNITS = ("mean over the 3 agents of each agent's 25-step episode return (greedy, XuanCe's avg_return); ours: "
                "the team return (sum over agents) / 3")
XUANCE_TRAIN = {
    "env_kwargs": {"max_steps": 25}, "agent": "mlp", "hidden": [64, 64], "agent_id": True, "num_envs": 16,
    "frames_per_batch": 400, "updates_per_batch": 1, "batch_size": 256, "buffer_size": 100_000, "lr": 1e-3,
    "optimizer": "adam", "optimizer_eps": 1e-5, "grad_clip": 0.0, "learning_starts": 1000, "target_update": 100,
    "eps_start": 1.0, "eps_end": 0.05, "eps_frames": 156_250, "reward_scale": 1 / 3, "double_q": True,
    "bootstrap_time_limits": True, "eval_every": 100_000, "eval_episodes": 16, "checkpoint_every": 200_000,
}
XUANCE_ALGO = {
    "qmix": {"share_params": False, "agent_id": None,
             "mixer_kwargs": {"mixing_embed_dim": 128, "hypernet_layers": 2, "hypernet_embed": 128}},
    "ow-qmix": {"hidden": [128, 128], "eps_frames": 312_500, "target_update": 200,
                "mixer_kwargs": {"mixing_embed_dim": 32, "hypernet_embed": 64, "central_embed_dim": 256}},
    "iql": {"eps_frames": 2_500_000, "reward_scale": 1.0, "loss_kwargs": {"rewards": "individual"}},
}
XUANCE_FRAMES = 1_000_000  # of XuanCe's 10M: what 12 runs take about 2.5 h for on one core here

MPE_XUANCE = {
    "description": "MPE simple_spread in XuanCe's configuration vs XuanCe's own VDN, QMIX, WQMIX and IQL (1M frames)",
    "metric": "final_eval_return",
    "quick": {"frames": 4_000, "seeds": [0, 1], "overrides": {"checkpoint_every": 0, "eval_every": 2_000}},
    "entries": [
        {"task": "pettingzoo/simple_spread_v3", "algo": algo,
         "overrides": {**XUANCE_TRAIN, **XUANCE_ALGO.get(algo, {})},
         "seeds": [0, 1, 2], "frames": XUANCE_FRAMES, "scale": 1 / 3,
         "reference": {"file": XUANCE_FILE, "units": XUANCE_UNITS, "source": XUANCE_SOURCE}}
        for algo in ("vdn", "qmix", "ow-qmix", "iql")
    ],
}

# -------------------------------------------------------------------------------------------- vmas
# Reference: BenchMARL 1.5.2 runs of the same config, written to this file of the references folder by
# benchmarks/benchmarl_reference.py (rows task, algo, seed, value: BenchMARL's greedy evaluation return at 300k
# frames, one row per seed).
BENCHMARL_VMAS_FILE = "benchmarl_vmas.csv"
BENCHMARL_SOURCE = ("BenchMARL 1.5.2 runs of the same config (torchrl_vd/reproduce/references/"
                    f"{BENCHMARL_VMAS_FILE}, benchmarks/benchmarl_reference.py)")
BENCHMARL_UNITS = "greedy episode return, team reward = mean of the agents' rewards"

# The BenchMARL run behind those rows, in BenchMARL's own keys. First the values BenchMARL 1.5.2's yaml gives
# each key the import reads (conf/experiment/base_experiment.yaml, algorithm/{qmix,vdn}.yaml,
# task/vmas/<task>.yaml, model/layers/mlp.yaml). Then the reference script's changes
# (benchmarks/_benchmarl_worker.py). Our entries are the import of that run (torchrl_vd/train/benchmarl_import.py):
# tests/test_benchmarl_import.py imports the released yaml with BENCHMARL_VMAS_CHANGES and checks that the result
# is these entries' configs, field by field.
BENCHMARL_EXPERIMENT = {
    "sampling_device": "cpu", "train_device": "cpu", "buffer_device": "cpu", "share_policy_params": True,
    "gamma": 0.99, "lr": 5e-5, "adam_eps": 1e-6, "clip_grad_norm": True, "clip_grad_val": 5.0,
    "soft_target_update": True, "polyak_tau": 0.005, "hard_target_update_frequency": 5,
    "exploration_eps_init": 0.8, "exploration_eps_end": 0.01, "exploration_anneal_frames": None,
    "max_n_iters": None, "max_n_frames": 3_000_000, "off_policy_collected_frames_per_batch": 6000,
    "off_policy_n_envs_per_worker": 10, "off_policy_n_optimizer_steps": 1000, "off_policy_train_batch_size": 128,
    "off_policy_memory_size": 1_000_000, "off_policy_init_random_frames": 0,
    "off_policy_use_prioritized_replay_buffer": False, "evaluation": True, "evaluation_interval": 120_000,
    "evaluation_episodes": 10, "checkpoint_interval": 0,
}
BENCHMARL_ALGORITHM = {"qmix": {"mixing_embed_dim": 32, "delay_value": True, "loss_function": "l2"},
                       "vdn": {"delay_value": True, "loss_function": "l2"}}
BENCHMARL_VMAS_TASK = {
    "vmas/balance": {"max_steps": 100, "n_agents": 4, "random_package_pos_on_line": True, "package_mass": 5},
    "vmas/navigation": {"max_steps": 100, "n_agents": 3, "collisions": True, "agents_with_same_goal": 1,
                        "split_goals": False, "observe_all_goals": False, "shared_rew": False, "lidar_range": 0.35,
                        "agent_radius": 0.1},
    "vmas/sampling": {"max_steps": 100, "n_agents": 3, "shared_rew": False, "n_gaussians": 3, "lidar_range": 0.2,
                      "cov": 0.05, "collisions": True, "spawn_same_pos": False},
}
BENCHMARL_MLP = {"name": "mlp", "num_cells": [256, 256], "layer_class": "torch.nn.Linear",
                 "activation_class": "torch.nn.Tanh", "activation_kwargs": None, "norm_class": None}
# The reference script's changes, as overrides on BenchMARL's command line would give them:
BENCHMARL_VMAS_CHANGES = {
    "experiment.max_n_frames": 300_000,                 # 50 iterations of 6000 frames
    "experiment.off_policy_n_envs_per_worker": 60,      # 60 envs x 100 steps per batch (BenchMARL's fine-tuned VMAS)
    "experiment.off_policy_n_optimizer_steps": 200,     # 200 of its 1000 gradient steps per batch (RESULTS.md §1)
    "experiment.off_policy_memory_size": 300_000,       # every frame of the run
    "experiment.evaluation": False,                     # one greedy evaluation of 100 episodes, at the end
    "experiment.evaluation_episodes": 100,
    "experiment.loggers": [],                           # no wandb (metrics.csv on our side, always)
    "experiment.checkpoint_interval": 60_000,           # ours only: resumable runs (BenchMARL's leave its runs as
                                                        # they are; the script makes none)
    "model.activation_class": "torch.nn.ReLU",          # ReLU on both sides (BenchMARL's default: Tanh)
}


def _benchmarl_vmas_fields(task: str, algo: str) -> dict:
    """Our config of the reference run of ``algo`` on ``task`` (the BenchMARL import: no torch, no yaml)."""
    from torchrl_vd.train.benchmarl_files import merge
    from torchrl_vd.train.benchmarl_import import BenchmarlConfig, benchmarl_fields

    changes: dict = {}
    for key, value in BENCHMARL_VMAS_CHANGES.items():
        group, name = key.split(".")
        changes[group] = {**changes.get(group, {}), name: value}
    fields, notes = benchmarl_fields(BenchmarlConfig(
        experiment=merge(BENCHMARL_EXPERIMENT, changes["experiment"]), algorithm=algo,
        algorithm_config=BENCHMARL_ALGORITHM[algo], task=task, task_config=BENCHMARL_VMAS_TASK[task],
        model_config=merge(BENCHMARL_MLP, changes["model"])))
    if notes:
        raise ValueError(f"the vmas suite's BenchMARL run does not import exactly: {notes}")
    return fields


# Read by the benchmarks (bench_whole_process.py, benchmarl_reference.py): the imported run's fields, by part.
_VMAS_FIELDS = {(task, algo): _benchmarl_vmas_fields(task, algo) for task in BENCHMARL_VMAS_TASK
                for algo in BENCHMARL_ALGORITHM}
VMAS_TRAIN = {k: v for k, v in _VMAS_FIELDS["vmas/balance", "qmix"].items()
              if k not in ("algo", "env", "env_kwargs", "mixer_kwargs", "loss_kwargs", "seed", "frames")}
VMAS_ENV = {task: _VMAS_FIELDS[task, "qmix"]["env_kwargs"] for task in BENCHMARL_VMAS_TASK}
VMAS_ALGO = {algo: {k: _VMAS_FIELDS["vmas/balance", algo][k] for k in ("mixer_kwargs", "loss_kwargs")}
             for algo in BENCHMARL_ALGORITHM}

VMAS = {
    "description": "VMAS balance / navigation / sampling, QMIX and VDN vs BenchMARL runs of the same config",
    "metric": "final_eval_return",
    "quick": {"frames": 12_000, "seeds": [0, 1],
              "overrides": {"eps_frames": 4_000, "buffer_size": 12_000, "updates_per_batch": 10,
                            "eval_episodes": 8, "checkpoint_every": 0}},
    "entries": [
        {"task": task, "algo": algo, "overrides": fields, "seeds": [0, 1, 2], "frames": fields["frames"],
         "scale": 1.0,
         "reference": {"file": BENCHMARL_VMAS_FILE, "units": BENCHMARL_UNITS, "source": BENCHMARL_SOURCE}}
        for (task, algo), fields in _VMAS_FIELDS.items()
    ],
}

# --------------------------------------------------------------------------------------------- lbf
# EPyMARL's LBF benchmark task (Papoudakis et al., NeurIPS 2021 datasets track): Foraging-8x8-2p-2f-coop, 50-step
# episodes, the family preset (EPyMARL's QMIX/VDN defaults, torchrl_vd/train/config.py). EPyMARL's budget and
# evaluation (uoe-agents/epymarl src/config/envs/gymma.yaml at 4bcbb1c: t_max 2,050,000, 100 greedy test episodes
# every 50k steps) and its "maximum return" metric (the paper, Sec. 4). LBF normalises rewards (lbforaging's
# environment.py, normalize_reward=True): clearing every food gives a team return of 1.0 per episode.
# The paper's QMIX/VDN table cells are not copied in yet: the entries carry no reference until someone copies
# them in here with their source (table and page).
EPYMARL_LBF_REFERENCES: dict[tuple[str, str], dict] = {}
LBF = {
    "description": "LBF Foraging-8x8-2p-2f-coop, QMIX and VDN with EPyMARL's config vs EPyMARL's published returns",
    "metric": "epymarl_max_return",
    "quick": {"frames": 1_000, "seeds": [0], "overrides": {"eval_every": 500, "eval_episodes": 4,
                                                            "checkpoint_every": 0}},
    "entries": [
        {"task": "lbf/Foraging-8x8-2p-2f-coop-v3", "algo": algo, "overrides": {"checkpoint_every": 200_000},
         "seeds": [0, 1, 2], "frames": 2_000_000, "scale": 1.0,
         "reference": EPYMARL_LBF_REFERENCES.get(("lbf/Foraging-8x8-2p-2f-coop-v3", algo))}
        for algo in ("qmix", "vdn")
    ],
}

# -------------------------------------------------------------------------------------------- smax
# JaxMARL's own QMIX (baselines/QLearning/qmix_rnn.py with ql_rnn_smax.yaml, FLAIROx/JaxMARL commit c793d09, run
# unmodified from a checkout: benchmarks/setup_jaxmarl_reference.sh) on this machine by
# benchmarks/jaxmarl_qmix_reference.py at the same budget, one row per seed in the file below
# (JaxMARL publishes its SMAX QMIX results only as plots). Both sides use the yaml's config with two changes
# that make 512k frames fit a 2-core CPU: GRU 64 instead of 512 (the yaml's 512 runs at ~220 env steps/s in
# JaxMARL on one core here) and lr 5e-4 (pymarl's SMAC value for a 64-wide agent) instead of 5e-5; ε decays over
# 10% of the run as the yaml's EPS_DECAY does, and learning starts where JaxMARL's buffer first samples (32
# rollouts of 16 envs x 128 steps = 65,536 steps). Known differences the reference keeps: RAdam (ours Adam),
# every update resets its 16 envs (ours continues episodes across batches).
JAXMARL_SMAX_FILE = "jaxmarl_smax.csv"  # in the references folder
SMAX_FRAMES = 512_000  # 250 JaxMARL updates of 16 x 128 steps
SMAX_TRAIN = {"hidden": [64], "lr": 5e-4, "eps_frames": SMAX_FRAMES // 10, "learning_starts": 65_536,
              "eval_every": SMAX_FRAMES // 10, "eval_episodes": 128, "checkpoint_every": 102_400,
              "mixer_kwargs": {"mixing_embed_dim": 64, "hypernet_embed": 256}}
SMAX = {
    "description": "SMAX 3m, QMIX with JaxMARL's ql_rnn_smax config (GRU 64, lr 5e-4) vs JaxMARL's own QMIX run here",
    "metric": "final_eval_win_rate",
    "quick": {"frames": 4_096, "seeds": [0], "overrides": {"learning_starts": 2_048, "eval_every": 0,
                                                            "eval_episodes": 4, "checkpoint_every": 0}},
    "entries": [
        {"task": "smax/3m", "algo": "qmix", "overrides": SMAX_TRAIN, "seeds": [0, 1, 2], "frames": SMAX_FRAMES,
         "scale": 1.0,
         "reference": {"file": JAXMARL_SMAX_FILE, "units": "greedy win rate (share of test battles won)",
                       "source": "JaxMARL's qmix_rnn.py (FLAIROx/JaxMARL c793d09) run here by "
                                 "benchmarks/jaxmarl_qmix_reference.py, same config and frames"}},
    ],
}

# ------------------------------------------------------------------------------------------- pqn-compare
# PQN-VDN (Gallici et al. 2025; JaxMARL's pqn_vdn_ff/rnn) beside our QMIX and IQL at equal frames, against frames
# and against wall-clock (greedy evaluations with 95% CI bands; `"curves"`). No published number is the reference:
# JaxMARL's own pqn_vdn_rnn.py is run on SMAX 3m at the same budget by benchmarks/jaxmarl_pqn_reference.py.
# VMAS balance: BenchMARL's task config (VMAS_ENV) for all three; each algorithm with its own presets on the family
# (`torchrl-vd train --algo A --env vmas/balance`: QMIX and IQL the BenchMARL-shaped family preset, PQN-VDN JaxMARL's
# MPE network and schedule with γ 0.99, λ 0.85, docs/PRESETS.md). SMAX 3m: QMIX and IQL as the `smax` suite runs
# QMIX (JaxMARL's ql_rnn_smax with a GRU of 64 and lr 5e-4); PQN-VDN JaxMARL's pqn_vdn_rnn_smax config (its
# preset) with the same width change, 2 x Dense(64) + GRU 64 for 2 x 512 + GRU 512 (its lr 2.5e-4, decaying, is
# kept). Budgets: every run of the suite ~1.5 h on a quiet 2-core box with 2 runs at a time (docs/REPRODUCE.md).
PQN_VMAS_FRAMES = 1_000_000
PQN_SMAX_FRAMES = 31 * 128 * 128  # 507,904: JaxMARL's 31 updates of 128 envs x 128 steps in TOTAL_TIMESTEPS 512k
PQN_VMAS = {"env_kwargs": VMAS_ENV["vmas/balance"], "eval_every": 50_000, "eval_episodes": 32,
            "checkpoint_every": 200_000}
PQN_SMAX_EVAL = {"eval_every": SMAX_FRAMES // 10, "eval_episodes": 128, "checkpoint_every": 102_400}
# (QMIX and IQL collect 2048 frames per batch: 248 batches in PQN_SMAX_FRAMES; their ε decays over 51.2k frames)
PQN_SMAX = {
    "qmix": SMAX_TRAIN,
    "iql": {k: v for k, v in SMAX_TRAIN.items() if k != "mixer_kwargs"},
    "pqn-vdn": {"hidden": [64, 64], **PQN_SMAX_EVAL},
}
PQN_COMPARE = {
    "description": ("PQN-VDN vs QMIX vs IQL on VMAS balance (1M frames) and SMAX 3m (508k frames), 3 seeds: greedy "
                    "return / win rate against frames and wall-clock"),
    "metric": "final_eval",
    "curves": ["frames", "wall_s"],
    "quick": {"frames": 16_384, "seeds": [0, 1],
              "overrides": {"eval_every": 8_192, "eval_episodes": 4, "checkpoint_every": 0, "learning_starts": 0}},
    "entries": [
        {"task": "vmas/balance", "algo": algo, "overrides": PQN_VMAS, "seeds": [0, 1, 2], "frames": PQN_VMAS_FRAMES,
         "scale": 1.0, "reference": None}
        for algo in ("pqn-vdn", "qmix", "iql")
    ] + [
        {"task": "smax/3m", "algo": algo, "overrides": PQN_SMAX[algo], "seeds": [0, 1, 2], "frames": PQN_SMAX_FRAMES,
         "scale": 1.0,
         "reference": {"file": "jaxmarl_pqn_smax.csv", "units": "greedy win rate (share of test battles won)",
                       "source": "JaxMARL's pqn_vdn_rnn.py (FLAIROx/JaxMARL c793d09) run here by "
                                 "benchmarks/jaxmarl_pqn_reference.py, same config and frames",
                       "make": ("python benchmarks/jaxmarl_pqn_reference.py --map 3m --timesteps 512000 --set "
                                "HIDDEN_SIZE=64 --seed S --append-reference "
                                "torchrl_vd/reproduce/references/jaxmarl_pqn_smax.csv (S = 0, 1, 2; needs jax "
                                "and a JaxMARL checkout, see the script)")}
         if algo == "pqn-vdn" else None}
        for algo in ("pqn-vdn", "qmix", "iql")
    ],
}

# ------------------------------------------------------------------------------------------- quick
# A few thousand frames per run, 8 runs: exercises the harness end to end (tests/test_reproduce.py).
QUICK_MATRIX = {"num_envs": 32, "frames_per_batch": 256, "updates_per_batch": 16, "batch_size": 64,
                "eps_frames": 1_024, "eval_episodes": 8}
QUICK_VMAS = {"env_kwargs": {"max_steps": 20}, "num_envs": 20, "frames_per_batch": 200, "updates_per_batch": 8,
              "batch_size": 64, "eps_frames": 500, "eval_episodes": 4}  # VMAS costs per step: few steps, many envs
# Not a published run: the climbing game's optimal joint payoff (Claus & Boutilier 1998), which a
# greedy policy that found the joint optimum earns; it exercises the verdict column.
CLIMBING_OPTIMUM = {"value": 11.0, "ci": 0.0, "ci_kind": "exact", "units": "payoff of the one-step game",
                    "source": "climbing game's optimal joint payoff (Claus & Boutilier 1998), not a published run"}

QUICK = {
    "description": ("smoke test of the harness: matrix/climbing and vmas/balance, VDN and QMIX, 2 seeds, "
                    "a few thousand frames"),
    "metric": "final_eval_return",
    "quick": None,
    "entries": [
        {"task": "matrix/climbing", "algo": algo, "overrides": QUICK_MATRIX, "seeds": [0, 1], "frames": 2_048,
         "scale": 1.0, "reference": CLIMBING_OPTIMUM}
        for algo in ("vdn", "qmix")
    ] + [
        {"task": "vmas/balance", "algo": algo, "overrides": QUICK_VMAS, "seeds": [0, 1], "frames": 1_000,
         "scale": 1.0, "reference": None}
        for algo in ("vdn", "qmix")
    ],
}

SUITES = {"mpe": MPE, "mpe-xuance": MPE_XUANCE, "vmas": VMAS, "lbf": LBF, "smax": SMAX, "pqn-compare": PQN_COMPARE,
          "quick": QUICK}
