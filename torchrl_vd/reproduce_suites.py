"""The suites of ``torchrl-vd reproduce`` (torchrl_vd/reproduce.py): what to run and what to compare it with.

Plain data, so that env settings, presets and reference numbers are finalized in this one file.

``SUITES[name]`` is a dict:

* ``description``: one line.
* ``metric``: how one run becomes one number, a name in ``torchrl_vd.reproduce.METRICS``
  (``final_eval_return``: summary.json's greedy evaluation; ``last10_train_return``: the mean of the
  last 10 logged ``train_return`` values of metrics.csv, MARLlib's convention).
* ``quick``: the ``--quick`` smoke version of a long suite, ``{"frames": int, "seeds": [...],
  "overrides": {...}}`` applied to every entry (its runs go to ``OUT/<suite>-quick``), or None when
  the suite is already short.
* ``entries``: one dict per (task, algo):

  - ``task``: ``TrainConfig.env`` (``family/task``); ``algo``: ``TrainConfig.algo``. The env family's
    and the algorithm's presets (``TrainConfig.preset``) are applied first, then
  - ``overrides``: any ``TrainConfig`` fields (dotted keys reach into dicts, as ``--set`` does);
  - ``seeds``: list of ints; ``frames``: total environment frames per run;
  - ``scale``: our metric times ``scale`` is in the reference's units (e.g. the number of agents if
    the reference sums over agents and our team reward averages them); 1.0 when the units agree;
  - ``reference``: None (nothing published), a published constant
    ``{"value", "ci", "ci_kind", "units", "source"}`` (``ci`` is the half-width ±), or a results file
    ``{"file", "units", "source"[, "task", "algo", "ci_kind"]}``: a CSV or JSON list of records with
    columns ``task, algo, value`` and either ``ci`` (one row: that value ± ci) or one row per seed
    (the reference is then their mean ± 95% t-interval). ``task``/``algo`` name the rows when the
    file spells them differently from the entry; a relative ``file`` is relative to the repository
    root. A missing file or row leaves the reference *pending* (shown, not an error).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------- mpe
# MARLlib's MPE numbers as quoted in issue #14: episode reward summed over agents, the mean of the last
# 10 logged values per seed, 2M environment steps, 4 seeds, "mean ± x" as MARLlib publishes it.
MARLLIB_SOURCE = ("MARLlib (Hu et al., 'MARLlib: A Scalable and Efficient Multi-agent Reinforcement Learning "
                  "Library', JMLR 24(315), 2023; github.com/Replicable-MARL/MARLlib), MPE results table, "
                  "as quoted in issue #14")
MARLLIB_UNITS = "episode reward summed over agents; mean of the last 10 logged values per seed"
MARLLIB_CI_KIND = "± as published by MARLlib (4 seeds)"

# Settings to be finalized against MARLlib's MPE configs (max_cycles=25, discrete actions); our team
# reward sums the agents' rewards (the pettingzoo adapter's default), MARLlib's convention, so scale=1.
MPE_OVERRIDES = {
    "env_kwargs": {"max_steps": 25},
    "num_envs": 32,
    "frames_per_batch": 3_200,
    "checkpoint_every": 200_000,
}


def _marllib(value: float, ci: float) -> dict:
    return {"value": value, "ci": ci, "ci_kind": MARLLIB_CI_KIND, "units": MARLLIB_UNITS, "source": MARLLIB_SOURCE}


MPE_REFERENCES = {
    ("pettingzoo/simple_spread_v3", "vdn"): _marllib(-189.3, 3.2),
    ("pettingzoo/simple_spread_v3", "qmix"): _marllib(-190.5, 1.6),
    ("pettingzoo/simple_speaker_listener_v4", "vdn"): _marllib(-35.3, 2.9),
    ("pettingzoo/simple_speaker_listener_v4", "qmix"): _marllib(-25.7, 2.7),
}

MPE = {
    "description": ("MPE simple_spread / simple_speaker_listener vs MARLlib's published VDN and QMIX "
                    "(2M frames, 4 seeds)"),
    "metric": "last10_train_return",
    "quick": {"frames": 6_400, "seeds": [0, 1], "overrides": {"checkpoint_every": 0}},
    "entries": [
        {"task": task, "algo": algo, "overrides": MPE_OVERRIDES, "seeds": [0, 1, 2, 3], "frames": 2_000_000,
         "scale": 1.0, "reference": MPE_REFERENCES.get((task, algo))}
        for task in ("pettingzoo/simple_spread_v3", "pettingzoo/simple_speaker_listener_v4")
        for algo in ("vdn", "qmix", "qtran", "qtran-alt")
    ],
}

# -------------------------------------------------------------------------------------------- vmas
# Reference: BenchMARL 1.5.2 runs of the same config, to be written to this file (rows task, algo, seed,
# value: BenchMARL's greedy evaluation return at 300k frames, one row per seed).
BENCHMARL_VMAS_FILE = "benchmarks/reference/benchmarl_vmas.csv"
BENCHMARL_SOURCE = f"BenchMARL 1.5.2 runs of the same config ({BENCHMARL_VMAS_FILE})"
BENCHMARL_UNITS = "greedy episode return, team reward = mean of the agents' rewards"

# BenchMARL's QMIX/VDN defaults, as matched in benchmarks/bench_e2e.py (RESULTS.md §1); the per-task env
# settings follow BenchMARL's conf/task/vmas/<task>.yaml (to be checked there).
VMAS_TRAIN = {
    "num_envs": 60,
    "frames_per_batch": 6_000,
    "updates_per_batch": 200,
    "batch_size": 128,
    "hidden": [256, 256],
    "lr": 5e-5,
    "grad_clip": 5.0,
    "target_update": 0.005,
    "gamma": 0.99,
    "eps_start": 0.8,
    "eps_end": 0.01,
    "eps_frames": 100_000,
    "double_q": False,
    "buffer_size": 300_000,
    "eval_episodes": 100,
    "checkpoint_every": 60_000,
}
VMAS_ENV = {
    "vmas/balance": {"n_agents": 4, "max_steps": 100, "team_reward": "mean"},
    "vmas/navigation": {"n_agents": 3, "max_steps": 100, "team_reward": "mean"},
    "vmas/sampling": {"n_agents": 3, "max_steps": 100, "team_reward": "mean"},
}
VMAS_ALGO = {
    "qmix": {"mixer_kwargs": {"mixing_embed_dim": 32, "hypernet_layers": 2, "hypernet_embed": 64}},
    "vdn": {},
}

VMAS = {
    "description": "VMAS balance / navigation / sampling, QMIX and VDN vs BenchMARL runs of the same config",
    "metric": "final_eval_return",
    "quick": {"frames": 12_000, "seeds": [0, 1],
              "overrides": {"eps_frames": 4_000, "buffer_size": 12_000, "updates_per_batch": 10,
                            "eval_episodes": 8, "checkpoint_every": 0}},
    "entries": [
        {"task": task, "algo": algo,
         "overrides": {**VMAS_TRAIN, "env_kwargs": env_kwargs, **VMAS_ALGO[algo]},
         "seeds": [0, 1, 2], "frames": 300_000, "scale": 1.0,
         "reference": {"file": BENCHMARL_VMAS_FILE, "units": BENCHMARL_UNITS, "source": BENCHMARL_SOURCE}}
        for task, env_kwargs in VMAS_ENV.items()
        for algo in ("qmix", "vdn")
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

SUITES = {"mpe": MPE, "vmas": VMAS, "quick": QUICK}
